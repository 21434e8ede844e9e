//! PCI capture from sysfs: `ROOT/sys/bus/pci/devices/*` are symlinks into
//! `ROOT/sys/devices/...`; each device directory holds `config`, the id files and a
//! `driver` link. Symlinks are followed only while they stay inside the root.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::snapshot::{Bdf, PciDevice, PciSection, Problem};

/// Config space is at most 4 KiB.
const MAX_CONFIG: u64 = 4096;
/// Refuse a tree with more devices than this (a real machine has at most a few thousand).
pub const MAX_DEVICES: usize = 65536;

/// Resolve `path` and check that it stays under `root` (both canonical).
fn inside_root(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let real = fs::canonicalize(path).map_err(|e| e.to_string())?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(format!(
            "symlink leads out of the root to {}: refused",
            real.display()
        ))
    }
}

fn read_small(path: &Path) -> io::Result<String> {
    let mut s = String::new();
    fs::File::open(path)?.take(4096).read_to_string(&mut s)?;
    Ok(s)
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
fn short_config_note(len: usize, live: bool) -> Option<String> {
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
    let mut devices = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(bdf) = name.parse::<Bdf>() else {
            problems.push(Problem::new(
                "pci",
                Some(&entry.path()),
                "not a PCI address: skipped",
            ));
            continue;
        };
        if devices.len() >= MAX_DEVICES {
            problems.push(Problem::new(
                "pci",
                Some(&bus),
                format!("more than {MAX_DEVICES} devices: the rest were not read"),
            ));
            break;
        }
        let dir = match inside_root(&canon_root, &entry.path()) {
            Ok(d) => d,
            // Listed a moment ago, its directory gone now: removed mid-capture.
            Err(_) if fs::symlink_metadata(entry.path()).is_ok() && !entry.path().exists() => {
                problems.push(Problem::new(
                    "pci",
                    Some(&entry.path()),
                    "device vanished during capture",
                ));
                continue;
            }
            Err(why) => {
                problems.push(Problem::new("pci", Some(&entry.path()), why));
                continue;
            }
        };
        if let Some(dev) = read_device(&canon_root, &dir, live, problems) {
            devices.insert(bdf, dev);
        }
    }
    Some(PciSection { devices })
}

fn read_device(
    root: &Path,
    dir: &Path,
    live: bool,
    problems: &mut Vec<Problem>,
) -> Option<PciDevice> {
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
    // A bound driver's link must also stay inside the root, but its name is all we need;
    // resolving it is not necessary.
    let _ = root;
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
