//! Capture on fixture roots, with faults injected through the MSR reader.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use regdrift::capture::msr::{CpuMsrReader, MsrSelection, MsrSource};
use regdrift::capture::{capture, capture_with, CaptureOptions, Sources};
use regdrift::diff::{diff, DiffOptions};
use regdrift::regdb::RegDb;
use regdrift::report::Kind;

/// MSRs held in memory, with faults: per-CPU EIO sets, CPUs that are offline.
#[derive(Default)]
struct MapSource {
    cpus: BTreeMap<u32, BTreeMap<u32, u64>>,
    eio: BTreeMap<u32, Vec<u32>>,
    offline: Vec<u32>,
    reads: Mutex<Vec<(u32, u32)>>,
}

struct MapReader<'a> {
    cpu: u32,
    src: &'a MapSource,
}

impl CpuMsrReader for MapReader<'static> {
    fn read(&mut self, index: u32) -> Result<u64, String> {
        self.src.reads.lock().unwrap().push((self.cpu, index));
        if self
            .src
            .eio
            .get(&self.cpu)
            .is_some_and(|l| l.contains(&index))
        {
            return Err("EIO".into());
        }
        self.src.cpus[&self.cpu]
            .get(&index)
            .copied()
            .ok_or_else(|| "EIO".to_string())
    }
}

impl MsrSource for &'static MapSource {
    fn open(&self, cpu: u32) -> io::Result<Box<dyn CpuMsrReader>> {
        if self.offline.contains(&cpu) {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        if !self.cpus.contains_key(&cpu) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(Box::new(MapReader { cpu, src: self }))
    }
    fn path(&self, cpu: u32) -> PathBuf {
        PathBuf::from(format!("/dev/cpu/{cpu}/msr"))
    }
}

fn mtrr_msrs(planted: bool) -> BTreeMap<u32, u64> {
    let mut v: BTreeMap<u32, u64> = BTreeMap::new();
    v.insert(0xfe, 0x508);
    v.insert(0x2ff, 0xc06);
    for m in [
        0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
    ] {
        v.insert(m, 0x0606_0606_0606_0606);
    }
    for i in 0..16 {
        v.insert(0x200 + i, 0);
    }
    v.insert(0x200, 0x8000_0000);
    v.insert(0x201, 0xff_8000_0800);
    if planted {
        v.insert(0x202, 0x4000_0001);
        v.insert(0x203, 0xff_f000_0800);
    }
    v.insert(0x1a0, 0x850089);
    v
}

fn leak(s: MapSource) -> &'static MapSource {
    Box::leak(Box::new(s))
}

fn opts(root: &std::path::Path) -> CaptureOptions {
    CaptureOptions::new(root)
}

#[test]
fn mtrr_added_through_proc_mtrr_is_decoded_as_a_new_wc_range() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = common::cold_machine(root, 0);
    f.proc_mtrr("reg00: base=0x080000000 ( 2048MB), size= 2048MB, count=1: uncachable\n")
        .unwrap();
    let src = |planted| {
        let mut s = MapSource::default();
        for cpu in 0..common::CPUS {
            s.cpus.insert(cpu, mtrr_msrs(planted));
        }
        leak(s)
    };
    let cold = capture_with(&opts(root), RegDb::embedded(), &src(false)).unwrap();
    f.proc_mtrr(
        "reg00: base=0x080000000 ( 2048MB), size= 2048MB, count=1: uncachable\n\
         reg01: base=0x040000000 ( 1024MB), size=  256MB, count=1: write-combining\n",
    )
    .unwrap();
    let kexec = capture_with(&opts(root), RegDb::embedded(), &src(true)).unwrap();
    assert_eq!(kexec.mtrr.as_ref().unwrap().phys_bits, Some(39));
    let r = diff(&cold, &kexec, &DiffOptions::default());
    assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
    let m: Vec<_> = r
        .divergences
        .iter()
        .filter(|d| d.kind != Kind::Pci)
        .collect();
    assert_eq!(m.len(), 1, "{m:#?}");
    let d = m[0];
    assert_eq!(d.kind, Kind::Mtrr);
    assert_eq!(d.name, "variable range 1");
    assert_eq!(d.cpus, vec![0, 1, 2, 3]);
    assert_eq!(
        d.current.as_ref().unwrap().to_string(),
        "0x40000000-0x4fffffff (256MB) WC"
    );
    assert!(
        d.notes.iter().any(|n| n == "new WC range"),
        "{:#?}",
        d.notes
    );
    assert!(d.notes.iter().any(|n| n.contains("reg01: base=0x40000000")));
    assert_eq!(
        d.fields.len(),
        2,
        "PHYSBASE1 and PHYSMASK1: {:#?}",
        d.fields
    );
}

#[test]
fn eio_on_one_cpu_and_an_offline_cpu_are_recorded_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    common::cold_machine(dir.path(), 0);
    let mut s = MapSource::default();
    for cpu in 0..common::CPUS {
        s.cpus.insert(cpu, mtrr_msrs(false));
    }
    s.eio.insert(1, vec![0x1a0]);
    s.offline.push(3);
    let mut o = opts(dir.path());
    o.msrs = MsrSelection::parse("0x1a0").unwrap();
    o.sources = Sources::parse("msr").unwrap();
    let snap = capture_with(&o, RegDb::embedded(), &leak(s)).unwrap();
    let msr = snap.msr.as_ref().unwrap();
    assert_eq!(msr.cpus.len(), 3, "cpu 3 offline");
    assert_eq!(
        msr.cpus[&1].unreadable.get(&0x1a0).map(String::as_str),
        Some("EIO")
    );
    assert!(!msr.cpus[&1].values.contains_key(&0x1a0));
    assert_eq!(msr.cpus[&0].values.get(&0x1a0), Some(&0x850089));
    let p = &snap.meta.problems;
    assert!(
        p.iter()
            .any(|p| p.source == "msr" && p.reason.contains("ENXIO")),
        "{p:#?}"
    );
}

#[test]
fn never_read_msrs_are_never_read_on_any_cpu() {
    let dir = tempfile::tempdir().unwrap();
    common::cold_machine(dir.path(), 0);
    let mut s = MapSource::default();
    for cpu in 0..2 {
        s.cpus.insert(cpu, BTreeMap::new());
    }
    let src = leak(s);
    let mut o = opts(dir.path());
    o.cpus = Some(vec![0, 1]);
    for sel in ["scan", "known", "0x1f0-0x1ff"] {
        o.msrs = MsrSelection::parse(sel).unwrap();
        capture_with(&o, RegDb::embedded(), &src).unwrap();
    }
    let reads = src.reads.lock().unwrap();
    assert!(reads.len() > 3 * 0x2000, "the scan ran: {}", reads.len());
    for (cpu, index) in reads.iter() {
        assert!(
            RegDb::embedded().never_read(*index).is_none(),
            "read never-read MSR {index:#x} on cpu {cpu}"
        );
    }
}

#[test]
fn short_config_space_is_kept_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = common::cold_machine(dir.path(), 0);
    let bdf = "0000:00:1f.6".parse().unwrap();
    let full = common::simple_device(0x8086, 0x0d4f, 0x020000);
    f.pci_device(bdf, &full[..64], Some("e1000e")).unwrap();
    let snap = capture(&opts(dir.path()), RegDb::embedded()).unwrap();
    let dev = &snap.pci.as_ref().unwrap().devices[&bdf];
    assert_eq!(dev.config.len(), 64);
    assert!(dev.config_note.as_deref().unwrap().contains("64 bytes"));
    assert_eq!(dev.driver.as_deref(), Some("e1000e"));
    assert_eq!(
        (dev.vendor, dev.device, dev.class),
        (0x8086, 0x0d4f, 0x020000)
    );
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    let outside = dir.path().join("outside/0000:00:05.0");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("config"), [0x86, 0x80, 0, 0]).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("sys/bus/pci/devices/0000:00:05.0")).unwrap();
    let snap = capture(&opts(&root), RegDb::embedded()).unwrap();
    let bdf = "0000:00:05.0".parse().unwrap();
    assert!(!snap.pci.as_ref().unwrap().devices.contains_key(&bdf));
    assert!(snap
        .meta
        .problems
        .iter()
        .any(|p| p.reason.contains("out of the root")));
}

#[test]
fn missing_sources_are_problems_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let snap = capture(&opts(dir.path()), RegDb::embedded()).unwrap();
    assert!(snap.msr.as_ref().unwrap().cpus.is_empty());
    let sources: Vec<&str> = snap
        .meta
        .problems
        .iter()
        .map(|p| p.source.as_str())
        .collect();
    for s in ["msr", "mtrr", "pci", "meta"] {
        assert!(sources.contains(&s), "{s} missing from {sources:?}");
    }
    let e = capture(&opts(&dir.path().join("nope")), RegDb::embedded()).unwrap_err();
    assert!(e.to_string().contains("nope"));
}

#[test]
fn fixture_refuses_overlapping_msrs() {
    let dir = tempfile::tempdir().unwrap();
    let f = regdrift::fixture::FixtureRoot::new(dir.path()).unwrap();
    let e = f
        .msrs(0, &[(0x200, 0x4000_0001), (0x201, 0xff_f000_0800)])
        .unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
}
