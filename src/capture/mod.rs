//! Capture: read every source under a root (`/` on a live machine) into a [`Snapshot`].
//! Sources that cannot be read are recorded in `meta.problems`; capture goes on with what
//! it can read. Nothing here ever writes: MSR devices and config files are opened
//! read-only.

pub mod meta;
pub mod msr;
pub mod pci;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::decode::mtrr;
use crate::regdb::RegDb;
use crate::report::parse_cpu_list;
use crate::snapshot::{MsrSection, MtrrSection, Origin, Problem, Snapshot};
use msr::{FileMsrSource, MsrSelection, MsrSource};

/// Which sources to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sources {
    pub msr: bool,
    pub mtrr: bool,
    pub pci: bool,
}

impl Sources {
    pub const ALL: Sources = Sources {
        msr: true,
        mtrr: true,
        pci: true,
    };

    /// Parse `msr,mtrr,pci` (any subset).
    pub fn parse(s: &str) -> Result<Sources, String> {
        let mut out = Sources {
            msr: false,
            mtrr: false,
            pci: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "msr" => out.msr = true,
                "mtrr" => out.mtrr = true,
                "pci" => out.pci = true,
                other => {
                    return Err(format!(
                        "unknown source {other:?}: expected msr, mtrr or pci"
                    ))
                }
            }
        }
        if out
            == (Sources {
                msr: false,
                mtrr: false,
                pci: false,
            })
        {
            return Err("no source given: expected msr, mtrr and/or pci".into());
        }
        Ok(out)
    }
}

#[derive(Clone, Debug)]
pub struct CaptureOptions {
    pub root: PathBuf,
    pub msrs: MsrSelection,
    pub sources: Sources,
    /// Only these CPUs (default: every online CPU).
    pub cpus: Option<Vec<u32>>,
    /// Physical address width for MTRR masks, overriding CPUID.
    pub phys_bits: Option<u8>,
    /// Show a progress bar (on a terminal, for scans).
    pub progress: bool,
    /// Whether the root is a live machine (advice such as `modprobe msr` is given only
    /// there); `None`: the root is live when it is `/`.
    pub live: Option<bool>,
}

impl CaptureOptions {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CaptureOptions {
            root: root.into(),
            msrs: MsrSelection::Known,
            sources: Sources::ALL,
            cpus: None,
            phys_bits: None,
            progress: false,
            live: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("root {path} is not a directory")]
    BadRoot { path: PathBuf },
}

/// The CPUs to read: the online list when there is one, else the `dev/cpu/N` entries.
fn discover_cpus(root: &Path, problems: &mut Vec<Problem>) -> Vec<u32> {
    let online = root.join("sys/devices/system/cpu/online");
    if let Ok(text) = fs::read_to_string(&online) {
        match parse_cpu_list(&text) {
            Some(list) if !list.is_empty() => return list,
            _ => problems.push(Problem::new(
                "msr",
                Some(&online),
                format!(
                    "unparsable CPU list {:?}",
                    crate::sanitize::inert(text.trim())
                ),
            )),
        }
    }
    let mut cpus: Vec<u32> = fs::read_dir(root.join("dev/cpu"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    cpus.sort_unstable();
    cpus
}

fn is_live(root: &Path) -> bool {
    fs::canonicalize(root)
        .map(|r| r == Path::new("/"))
        .unwrap_or(false)
}

/// Capture with the MSR devices under the root.
pub fn capture(opts: &CaptureOptions, db: &RegDb) -> Result<Snapshot, CaptureError> {
    let source = FileMsrSource {
        root: opts.root.clone(),
    };
    capture_with(opts, db, &source)
}

/// Capture reading MSRs through `source` (tests inject faults here).
pub fn capture_with(
    opts: &CaptureOptions,
    db: &RegDb,
    source: &dyn MsrSource,
) -> Result<Snapshot, CaptureError> {
    let root = &opts.root;
    if !root.is_dir() {
        return Err(CaptureError::BadRoot { path: root.clone() });
    }
    let live = opts.live.unwrap_or_else(|| is_live(root));
    let mut snap = Snapshot::new(Origin::Capture {
        root: root.display().to_string(),
    });
    meta::fill(root, &mut snap.meta);
    let mut problems = Vec::new();

    if opts.sources.msr || opts.sources.mtrr {
        let (msr_section, mtrr_phys) = capture_msrs(opts, db, source, live, &mut problems);
        snap.msr = msr_section;
        if opts.sources.mtrr {
            let proc_path = root.join("proc/mtrr");
            let proc_mtrr = match fs::read_to_string(&proc_path) {
                Ok(t) => Some(t),
                Err(e) => {
                    problems.push(Problem::new(
                        "mtrr",
                        Some(&proc_path),
                        format!("missing: {e}"),
                    ));
                    None
                }
            };
            snap.mtrr = Some(MtrrSection {
                phys_bits: opts.phys_bits.or(mtrr_phys),
                proc_mtrr,
            });
        }
    }
    if opts.sources.pci {
        snap.pci = pci::capture(root, live, &mut problems);
    }
    snap.meta.problems.extend(problems);
    Ok(snap)
}

fn capture_msrs(
    opts: &CaptureOptions,
    db: &RegDb,
    source: &dyn MsrSource,
    live: bool,
    problems: &mut Vec<Problem>,
) -> (Option<MsrSection>, Option<u8>) {
    let root = &opts.root;
    let mut cpus = discover_cpus(root, problems);
    if let Some(only) = &opts.cpus {
        let want: BTreeSet<u32> = only.iter().copied().collect();
        for c in want.iter().filter(|c| !cpus.contains(c)) {
            problems.push(Problem::new("msr", None, format!("cpu {c} is not online")));
        }
        cpus.retain(|c| want.contains(c));
    }
    let (mut indices, selection) = if opts.sources.msr {
        let (read, skipped) = opts.msrs.indices(db);
        if !skipped.is_empty() && opts.msrs != MsrSelection::Scan {
            problems.push(Problem::new(
                "msr",
                None,
                format!(
                    "{} MSRs on the never-read list were skipped ({})",
                    skipped.len(),
                    skipped
                        .iter()
                        .take(8)
                        .map(|i| format!("{i:#x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        (read, opts.msrs.describe())
    } else {
        (Vec::new(), "mtrr".to_string())
    };
    if opts.sources.mtrr {
        indices.extend(mtrr::mtrr_msrs(16));
        indices.sort_unstable();
        indices.dedup();
        indices.retain(|&i| db.never_read(i).is_none());
    }
    let list_unreadable = opts.msrs != MsrSelection::Scan || !opts.sources.msr;

    // Open every CPU's device first, so a missing driver is reported once, clearly.
    let mut readers = Vec::new();
    for &cpu in &cpus {
        match source.open(cpu) {
            Ok(r) => readers.push((cpu, r)),
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound if live => {
                        "no MSR device: load the msr module (modprobe msr)".to_string()
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "permission denied: reading MSRs needs root (CAP_SYS_RAWIO)".to_string()
                    }
                    _ => msr::describe_read_error(&e),
                };
                problems.push(Problem::new("msr", Some(&source.path(cpu)), why));
            }
        }
    }
    if cpus.is_empty() {
        problems.push(Problem::new(
            "msr",
            Some(&root.join("dev/cpu")),
            if live {
                "no CPUs found: load the msr module (modprobe msr)".to_string()
            } else {
                "no CPUs found".to_string()
            },
        ));
    }

    let bar = (opts.progress && !readers.is_empty()).then(|| {
        let b = indicatif::ProgressBar::new((readers.len() * indices.len()) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} reading MSRs {bar:40} {pos}/{len} ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let tick = |n: u64| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    };
    let results: Vec<(u32, crate::snapshot::CpuMsrs)> = std::thread::scope(|s| {
        let handles: Vec<_> = readers
            .into_iter()
            .map(|(cpu, mut reader)| {
                let indices = &indices;
                let tick = &tick;
                s.spawn(move || {
                    if live {
                        msr::pin_to_cpu(cpu);
                    }
                    let mut got = msr::read_cpu(reader.as_mut(), indices, list_unreadable, tick);
                    // MTRRcap may report more variable ranges than the 16 read above.
                    if let Some(&cap) = got.values.get(&mtrr::MTRRCAP) {
                        let vcnt = (cap & 0xff) as u32;
                        if vcnt > 16 {
                            let extra: Vec<u32> = mtrr::mtrr_msrs(vcnt)
                                .into_iter()
                                .filter(|i| !got.values.contains_key(i))
                                .collect();
                            let more = msr::read_cpu(reader.as_mut(), &extra, true, &|_| {});
                            got.values.extend(more.values);
                            got.unreadable.extend(more.unreadable);
                        }
                    }
                    (cpu, got)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let mut section = MsrSection {
        selection,
        cpus: Default::default(),
    };
    let mut first_phys = None;
    let mut cpuid_problem = None;
    for (cpu, mut got) in results {
        match msr::phys_bits(root, cpu) {
            Ok(b) => {
                got.phys_bits = Some(b);
                first_phys.get_or_insert(b);
            }
            Err(why) if cpuid_problem.is_none() => {
                cpuid_problem = Some(Problem::new(
                    "cpuid",
                    Some(&root.join(format!("dev/cpu/{cpu}/cpuid"))),
                    format!(
                        "physical address width unknown ({why}): MTRR masks are decoded \
                         with 36 bits unless --phys-bits is given"
                    ),
                ));
            }
            Err(_) => {}
        }
        section.cpus.insert(cpu, got);
    }
    if let Some(p) = cpuid_problem {
        if first_phys.is_none() && opts.phys_bits.is_none() && opts.sources.mtrr {
            problems.push(p);
        }
    }
    (Some(section), first_phys)
}
