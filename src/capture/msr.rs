//! MSR reading: one `pread` of 8 bytes at offset = MSR index on `DIR/dev/cpu/N/msr`,
//! little-endian. A short read, EIO or EPERM means unreadable on that CPU: recorded as
//! such, never as 0. Each CPU is read by its own thread, pinned to that CPU on a live
//! system so that every read is local (no inter-processor interrupt per read).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::regdb::RegDb;
use crate::snapshot::CpuMsrs;

/// What to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsrSelection {
    /// Every MSR in the register database.
    Known,
    /// Probe the architectural ranges for every readable MSR.
    Scan,
    /// The MSRs and ranges given (`0x10,0x1a0,0x200-0x20f`).
    List(Vec<(u32, u32)>),
}

/// The ranges `--msrs scan` probes.
pub const SCAN_RANGES: [(u32, u32); 3] = [
    (0x0000_0000, 0x0000_1fff),
    (0xc000_0000, 0xc000_1fff),
    (0xc001_0000, 0xc001_1fff),
];

impl MsrSelection {
    /// Parse `known`, `scan`, or a list of MSR numbers and inclusive ranges.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "known" => return Ok(MsrSelection::Known),
            "scan" => return Ok(MsrSelection::Scan),
            _ => {}
        }
        let num = |t: &str| -> Result<u32, String> {
            let t = t.trim();
            let v = if t.starts_with("0x") || t.starts_with("0X") {
                crate::snapshot::parse_hex(t)
            } else {
                t.parse::<u64>().ok()
            };
            v.and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("not an MSR number: {t:?} (use hex like 0x1a0)"))
        };
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let v = num(part)?;
                    (v, v)
                }
            };
            if b < a {
                return Err(format!("empty MSR range {part:?}"));
            }
            if b - a >= 1 << 20 {
                return Err(format!("MSR range {part:?} is larger than 1M registers"));
            }
            out.push((a, b));
        }
        if out.is_empty() {
            return Err("expected known, scan, or a list like 0x10,0x200-0x20f".into());
        }
        Ok(MsrSelection::List(out))
    }

    /// The indices to read, ascending, without the never-read ones (returned apart).
    pub fn indices(&self, db: &RegDb) -> (Vec<u32>, Vec<u32>) {
        let mut all: Vec<u32> = match self {
            MsrSelection::Known => db.known_msrs().map(|d| d.index).collect(),
            MsrSelection::Scan => SCAN_RANGES.iter().flat_map(|&(a, b)| a..=b).collect(),
            MsrSelection::List(ranges) => ranges.iter().flat_map(|&(a, b)| a..=b).collect(),
        };
        all.sort_unstable();
        all.dedup();
        all.into_iter().partition(|&i| db.never_read(i).is_none())
    }

    pub fn describe(&self) -> String {
        match self {
            MsrSelection::Known => "known".into(),
            MsrSelection::Scan => "scan".into(),
            MsrSelection::List(r) => r
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        format!("{a:#x}")
                    } else {
                        format!("{a:#x}-{b:#x}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// Why one MSR could not be read.
pub fn describe_read_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EIO) => "EIO".into(),
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::ENXIO) => "ENXIO (CPU offline)".into(),
        _ => e.to_string(),
    }
}

/// Something that reads MSRs of one CPU. The file implementation is the real one; tests
/// inject faults through their own.
pub trait CpuMsrReader: Send {
    /// The value, or why it could not be read.
    fn read(&mut self, index: u32) -> Result<u64, String>;
    /// True when the reader is a regular file standing in for the device.
    fn regular_file(&self) -> bool {
        false
    }
}

/// Opens the MSR reader of a CPU.
pub trait MsrSource: Sync {
    fn open(&self, cpu: u32) -> io::Result<Box<dyn CpuMsrReader>>;
    /// The path shown in messages for `cpu`.
    fn path(&self, cpu: u32) -> PathBuf;
}

/// `ROOT/dev/cpu/N/msr`, opened read-only.
pub struct FileMsrSource {
    pub root: PathBuf,
}

struct FileReader {
    file: File,
    regular: bool,
}

impl CpuMsrReader for FileReader {
    fn read(&mut self, index: u32) -> Result<u64, String> {
        let mut buf = [0u8; 8];
        let mut got = 0;
        // pread can return fewer bytes than asked on a regular file near its end.
        while got < 8 {
            match self
                .file
                .read_at(&mut buf[got..], index as u64 + got as u64)
            {
                Ok(0) => return Err(format!("short read ({got} of 8 bytes)")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(describe_read_error(&e)),
            }
        }
        Ok(u64::from_le_bytes(buf))
    }
    fn regular_file(&self) -> bool {
        self.regular
    }
}

impl MsrSource for FileMsrSource {
    fn open(&self, cpu: u32) -> io::Result<Box<dyn CpuMsrReader>> {
        // Read-only: regdrift never writes an MSR.
        let file = File::open(self.path(cpu))?;
        let regular = file.metadata()?.file_type().is_file();
        Ok(Box::new(FileReader { file, regular }))
    }
    fn path(&self, cpu: u32) -> PathBuf {
        self.root.join(format!("dev/cpu/{cpu}/msr"))
    }
}

/// Pin the calling thread to `cpu`; false when the system does not allow it.
pub fn pin_to_cpu(cpu: u32) -> bool {
    if cpu as usize >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET stays in bounds (checked above) and
    // sched_setaffinity(0, …) affects only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Read `indices` on one CPU. In scan mode, unreadable MSRs are not listed (most of the
/// space faults on real hardware). `tick` is called every 256 reads with the count.
pub fn read_cpu(
    reader: &mut dyn CpuMsrReader,
    indices: &[u32],
    list_unreadable: bool,
    tick: &dyn Fn(u64),
) -> CpuMsrs {
    // Collected in order and built in one go (a later duplicate wins, as on insert).
    let mut values = Vec::with_capacity(indices.len());
    let mut unreadable = Vec::new();
    let mut since = 0u64;
    for &i in indices {
        match reader.read(i) {
            Ok(v) => values.push((i, v)),
            Err(why) => {
                if list_unreadable {
                    unreadable.push((i, why));
                }
            }
        }
        since += 1;
        if since == 256 {
            tick(since);
            since = 0;
        }
    }
    tick(since);
    CpuMsrs {
        values: values.into_iter().collect(),
        unreadable: unreadable.into_iter().collect(),
        phys_bits: None,
        regular_file: reader.regular_file(),
    }
}

/// CPUID leaf 0x80000008 EAX 7:0 (physical address bits) from `ROOT/dev/cpu/N/cpuid`.
pub fn phys_bits(root: &Path, cpu: u32) -> Result<u8, String> {
    let path = root.join(format!("dev/cpu/{cpu}/cpuid"));
    let f = File::open(&path).map_err(|e| describe_read_error(&e))?;
    let mut buf = [0u8; 16];
    let n = f
        .read_at(&mut buf, 0x8000_0008)
        .map_err(|e| describe_read_error(&e))?;
    if n < 4 {
        return Err(format!("short read ({n} of 16 bytes)"));
    }
    let eax = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let bits = (eax & 0xff) as u8;
    if (32..=64).contains(&bits) {
        Ok(bits)
    } else {
        Err(format!(
            "CPUID 0x80000008 reports {bits} physical address bits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selections() {
        assert_eq!(MsrSelection::parse("known").unwrap(), MsrSelection::Known);
        assert_eq!(
            MsrSelection::parse("0x10,0x1a0,0x200-0x20f").unwrap(),
            MsrSelection::List(vec![(0x10, 0x10), (0x1a0, 0x1a0), (0x200, 0x20f)])
        );
        assert!(MsrSelection::parse("0x20f-0x200").is_err());
        assert!(MsrSelection::parse("banana").is_err());
        assert!(MsrSelection::parse("0x0-0xffffffff").is_err());
        assert!(MsrSelection::parse("0x1ffffffff").is_err());
    }

    #[test]
    fn scan_skips_never_read() {
        let db = RegDb::embedded();
        let (read, skipped) = MsrSelection::Scan.indices(db);
        assert!(skipped.contains(&0x1f4) && skipped.contains(&0x1f5));
        assert!(!read.contains(&0x1f4));
        assert_eq!(read.len() + skipped.len(), 3 * 0x2000);
    }

    struct Faulty;
    impl CpuMsrReader for Faulty {
        fn read(&mut self, index: u32) -> Result<u64, String> {
            if index == 0x1fc {
                Err("EIO".into())
            } else {
                Ok(index as u64)
            }
        }
    }

    #[test]
    fn unreadable_is_recorded_not_zero() {
        let c = read_cpu(&mut Faulty, &[0x10, 0x1fc], true, &|_| {});
        assert_eq!(c.values.get(&0x10), Some(&0x10));
        assert!(!c.values.contains_key(&0x1fc));
        assert_eq!(c.unreadable.get(&0x1fc).map(String::as_str), Some("EIO"));
        let c = read_cpu(&mut Faulty, &[0x10, 0x1fc], false, &|_| {});
        assert!(c.unreadable.is_empty());
    }
}
