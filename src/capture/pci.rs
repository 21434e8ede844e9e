//! PCI capture from sysfs: `ROOT/sys/bus/pci/devices/*` are symlinks into
//! `ROOT/sys/devices/...`; each device directory holds `config`, the id files and a
//! `driver` link. Symlinks are followed only while they stay inside the root.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::snapshot::{Bdf, PciDevice, PciSection, Problem};

/// Config space is at most 4 KiB.
const MAX_CONFIG: u64 = 4096;
/// Refuse a tree with more devices than this (a real machine has at most a few thousand).
pub const MAX_DEVICES: usize = 65536;

/// Resolve `path` and check that it stays under `root` (both canonical).
fn inside_root(root: &Path, path: &Path, links: &mut Links) -> Result<PathBuf, String> {
    let real = links.canonicalize(path).map_err(|e| e.to_string())?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(format!(
            "symlink leads out of the root to {}: refused",
            real.display()
        ))
    }
}

/// Resolves the bus's device links to what [`fs::canonicalize`] gives, with a few system
/// calls instead of one per path component: the link is read once, its leading `..`
/// applied to the canonical bus directory, the directory holding the device canonicalized
/// once for all the devices in it, and the device's own name checked not to be a link.
/// Anything else (an absolute target, `..` further in, a link at the end) goes through
/// `fs::canonicalize`.
struct Links {
    bus: Option<PathBuf>,
    parents: HashMap<PathBuf, Option<PathBuf>>,
}

impl Links {
    fn new(bus: &Path) -> Links {
        Links {
            bus: fs::canonicalize(bus).ok(),
            parents: HashMap::new(),
        }
    }

    fn canonicalize(&mut self, path: &Path) -> io::Result<PathBuf> {
        match self.quick(path) {
            Some(p) => Ok(p),
            None => fs::canonicalize(path),
        }
    }

    fn quick(&mut self, path: &Path) -> Option<PathBuf> {
        let target = fs::read_link(path).ok()?;
        let mut base = self.bus.clone()?;
        let mut parts = target.components().peekable();
        while parts.next_if_eq(&Component::ParentDir).is_some() {
            if !base.pop() {
                return None;
            }
        }
        let mut rest = Vec::new();
        for c in parts {
            match c {
                Component::Normal(n) => rest.push(n),
                _ => return None,
            }
        }
        let (name, dirs) = rest.split_last()?;
        base.extend(dirs);
        let parent = match self.parents.get(&base) {
            Some(p) => p.clone()?,
            None => {
                let p = fs::canonicalize(&base).ok();
                self.parents.insert(base, p.clone());
                p?
            }
        };
        let real = parent.join(name);
        let meta = fs::symlink_metadata(&real).ok()?;
        (!meta.file_type().is_symlink()).then_some(real)
    }
}

/// A small text file (a sysfs attribute): one read when it fits 64 bytes, as sysfs gives
/// an attribute whole.
fn read_small(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut buf = [0u8; 64];
    let n = loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    let mut bytes = buf[..n].to_vec();
    if n == buf.len() {
        f.take(4096 - n as u64).read_to_end(&mut bytes)?;
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_hex_file(path: &Path) -> Option<u64> {
    read_small(path)
        .ok()
        .and_then(|s| crate::snapshot::parse_hex(s.trim()))
}

fn vanished(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV))
}

/// Why a config space is shorter than the device's.
pub fn short_config_note(len: usize, live: bool) -> Option<String> {
    match len {
        4096 => None,
        64 if live => {
            Some("only 64 bytes: the kernel shows the rest of config space to root only".into())
        }
        64 => Some("only 64 bytes of config space".into()),
        256 => Some(
            "256 bytes: a conventional PCI device, or no extended config access (MMCONFIG)".into(),
        ),
        n => Some(format!("{n} bytes of config space")),
    }
}

/// Capture every PCI device under `root`. Problems are recorded, not fatal.
pub fn capture(root: &Path, live: bool, problems: &mut Vec<Problem>) -> Option<PciSection> {
    let bus = root.join("sys/bus/pci/devices");
    let entries = match fs::read_dir(&bus) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::new("pci", Some(&bus), format!("cannot list: {e}")));
            return None;
        }
    };
    let canon_root = match fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) => {
            problems.push(Problem::new("pci", Some(root), e.to_string()));
            return None;
        }
    };
    // Listed first, then read by a few threads (on a live machine every config space is
    // a thousand dword reads through the PCI config mechanism). Problems keep the order
    // of the listing whatever thread meets them.
    let mut listed: Vec<(usize, Bdf, PathBuf)> = Vec::new();
    let mut found: Vec<(usize, Vec<Problem>)> = Vec::new();
    for (n, entry) in entries.flatten().enumerate() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(bdf) = name.parse::<Bdf>() else {
            found.push((
                n,
                vec![Problem::new(
                    "pci",
                    Some(&entry.path()),
                    "not a PCI address: skipped",
                )],
            ));
            continue;
        };
        if listed.len() >= MAX_DEVICES {
            found.push((
                n,
                vec![Problem::new(
                    "pci",
                    Some(&bus),
                    format!("more than {MAX_DEVICES} devices: the rest were not read"),
                )],
            ));
            break;
        }
        listed.push((n, bdf, entry.path()));
    }
    let read = |part: &[(usize, Bdf, PathBuf)]| {
        let mut links = Links::new(&bus);
        part.iter()
            .map(|(n, bdf, path)| {
                let mut problems = Vec::new();
                let dev = match inside_root(&canon_root, path, &mut links) {
                    Ok(dir) => read_device(&dir, live, &mut problems),
                    // Listed a moment ago, its directory gone now: removed mid-capture.
                    Err(_) if fs::symlink_metadata(path).is_ok() && !path.exists() => {
                        problems.push(Problem::new(
                            "pci",
                            Some(path),
                            "device vanished during capture",
                        ));
                        None
                    }
                    Err(why) => {
                        problems.push(Problem::new("pci", Some(path), why));
                        None
                    }
                };
                (*n, *bdf, dev, problems)
            })
            .collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(listed.len().div_ceil(64))
        .max(1);
    let results = if threads == 1 {
        read(&listed)
    } else {
        let chunk = listed.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = listed
                .chunks(chunk)
                .map(|part| s.spawn(|| read(part)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut devices = BTreeMap::new();
    for (n, bdf, dev, probs) in results {
        if !probs.is_empty() {
            found.push((n, probs));
        }
        if let Some(dev) = dev {
            devices.insert(bdf, dev);
        }
    }
    found.sort_by_key(|(n, _)| *n);
    problems.extend(found.into_iter().flat_map(|(_, p)| p));
    Some(PciSection { devices })
}

fn read_device(dir: &Path, live: bool, problems: &mut Vec<Problem>) -> Option<PciDevice> {
    let config_path = dir.join("config");
    let mut config = Vec::with_capacity(4096);
    let mut gone = false;
    match fs::File::open(&config_path) {
        Ok(f) => {
            if let Err(e) = f.take(MAX_CONFIG).read_to_end(&mut config) {
                if vanished(&e) {
                    gone = true;
                } else {
                    problems.push(Problem::new("pci", Some(&config_path), e.to_string()));
                }
            }
        }
        Err(e) if vanished(&e) => {
            // Listed a moment ago, gone now: the device was removed mid-read.
            problems.push(Problem::new(
                "pci",
                Some(&config_path),
                "device vanished during capture",
            ));
            return None;
        }
        Err(e) => {
            problems.push(Problem::new("pci", Some(&config_path), e.to_string()));
            return None;
        }
    }
    let b = |i: usize| config.get(i).copied().unwrap_or(0);
    let id = |file: &str, from_config: u64| -> u64 {
        read_hex_file(&dir.join(file)).unwrap_or(from_config)
    };
    let header_type = b(0x0e) & 0x7f;
    let w = |i: usize| u16::from_le_bytes([b(i), b(i + 1)]) as u64;
    let subsystem = |file: &str, off: usize| -> Option<u16> {
        read_hex_file(&dir.join(file))
            .or_else(|| (header_type == 0 && config.len() >= 0x30).then(|| w(off)))
            .and_then(|v| u16::try_from(v).ok())
    };
    let driver = match fs::read_link(dir.join("driver")) {
        Ok(target) => target.file_name().map(|n| n.to_string_lossy().into_owned()),
        Err(_) => None,
    };
    if !gone && !dir.exists() {
        gone = true;
    }
    let len = config.len();
    Some(PciDevice {
        vendor: id("vendor", w(0)) as u16,
        device: id("device", w(2)) as u16,
        class: (id("class", u32::from_le_bytes([b(9), b(10), b(11), 0]) as u64) & 0xff_ffff) as u32,
        revision: id("revision", b(8) as u64) as u8,
        subsystem_vendor: subsystem("subsystem_vendor", 0x2c),
        subsystem_device: subsystem("subsystem_device", 0x2e),
        driver,
        config,
        config_note: if gone {
            Some(format!("device vanished during capture after {len} bytes"))
        } else {
            short_config_note(len, live)
        },
        vanished: gone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_as_canonicalize_does() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let bus = d.join("sys/bus/pci/devices");
        fs::create_dir_all(&bus).unwrap();
        fs::create_dir_all(d.join("sys/devices/pci0000:00/0000:00:1f.2")).unwrap();
        fs::create_dir_all(d.join("outside/dev")).unwrap();
        fs::create_dir_all(d.join("sys/devices/real")).unwrap();
        fs::create_dir_all(d.join("sys/devices/real/0000:00:03.0")).unwrap();
        // A segment directory that is itself a link, and one leading out.
        symlink("real", d.join("sys/devices/pci0000:01")).unwrap();
        symlink("../../outside", d.join("sys/devices/pci0000:02")).unwrap();
        // A device name that is a link.
        symlink(
            "../../../outside/dev",
            d.join("sys/devices/pci0000:00/0000:00:04.0"),
        )
        .unwrap();
        let cases = [
            (
                "0000:00:1f.2",
                "../../../devices/pci0000:00/0000:00:1f.2".to_string(),
            ),
            (
                "0000:00:03.0",
                "../../../devices/pci0000:01/0000:00:03.0".into(),
            ),
            ("0000:00:05.0", "../../../devices/pci0000:02/dev".into()),
            (
                "0000:00:04.0",
                "../../../devices/pci0000:00/0000:00:04.0".into(),
            ),
            ("0000:00:06.0", "../../../../outside/dev".into()),
            (
                "0000:00:07.0",
                "../../../devices/./pci0000:00/0000:00:1f.2".into(),
            ),
            (
                "0000:00:08.0",
                "../../../devices/real/../pci0000:00/0000:00:1f.2".into(),
            ),
            ("0000:00:09.0", d.join("outside/dev").display().to_string()),
            ("0000:00:0a.0", "../../../devices/pci0000:00/missing".into()),
            ("0000:00:0b.0", "../../../../../../../../../../../..".into()),
        ];
        for (name, target) in &cases {
            symlink(target, bus.join(name)).unwrap();
        }
        let mut links = Links::new(&bus);
        for (name, target) in &cases {
            let p = bus.join(name);
            let want = fs::canonicalize(&p).map_err(|e| e.kind());
            let got = links.canonicalize(&p).map_err(|e| e.kind());
            assert_eq!(got, want, "{name} -> {target}");
        }
        // The resolution is used for the root check: the links leading out are refused.
        let root = fs::canonicalize(d).unwrap().join("sys");
        assert!(inside_root(&root, &bus.join("0000:00:1f.2"), &mut links).is_ok());
        assert!(inside_root(&root, &bus.join("0000:00:03.0"), &mut links).is_ok());
        for name in ["0000:00:05.0", "0000:00:04.0", "0000:00:06.0"] {
            let e = inside_root(&root, &bus.join(name), &mut links).unwrap_err();
            assert!(e.contains("out of the root"), "{name}: {e}");
        }
    }

    #[test]
    fn small_files_read_whole() {
        // Files made through the fixture builder: capture code writes nothing.
        let dir = tempfile::tempdir().unwrap();
        let f = crate::fixture::FixtureRoot::new(dir.path()).unwrap();
        let p = dir.path().join("proc/mtrr");
        f.proc_mtrr("0x8086\n").unwrap();
        assert_eq!(read_small(&p).unwrap(), "0x8086\n");
        let long = "x".repeat(5000);
        f.proc_mtrr(&long).unwrap();
        assert_eq!(read_small(&p).unwrap(), long[..4096]);
        // Not UTF-8.
        f.msrs(0, &[(0, 0x30ff30)]).unwrap();
        assert!(read_small(&dir.path().join("dev/cpu/0/msr")).is_err());
    }
}
