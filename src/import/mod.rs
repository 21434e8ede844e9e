//! Import: turn the dumps people already have into snapshots, so that any old dump can
//! serve as a baseline or a comparison point.
//!
//! | importer | reads | fills |
//! | --- | --- | --- |
//! | [`lspci`] | `lspci -x`, `-xxx`, `-xxxx`, alone or mixed with `-v…-vvv`/`-nn` text | `pci` |
//! | [`mtrr`] | the text of `/proc/mtrr` (current and 2.4-era line orders) | `mtrr` |
//! | [`msr`] | `rdmsr` output (see the module for the accepted forms) | `msr` |
//! | [`inteltool`] | coreboot `inteltool -a` / `-M` logs (MSR sections) | `msr` |
//!
//! Every importer is a pure parser over text: it takes the text and the file name (used
//! only to record where the snapshot came from, in `meta.origin`) and returns the snapshot
//! with only the sections the dump carries, plus warnings for what it could not carry.
//! Warnings are also kept in the snapshot as `meta.problems`, so that `diff` and reports
//! can say what an imported side lacks. Errors name the line and what was expected.
//!
//! [`load_any`] opens a file that is either a snapshot or a dump of a recognised kind
//! ([`detect`]) and imports the latter on the fly; `diff` uses it for both of its sides.
//!
//! Hostile input is refused or imported in part with a warning, never a panic: files are
//! read up to [`MAX_IMPORT_BYTES`], device and value counts are bounded, and no length
//! read from a file sizes an allocation.

pub mod inteltool;
pub mod lspci;
pub mod msr;
pub mod mtrr;

pub use inteltool::parse_inteltool;
pub use lspci::{parse_lspci, write_lspci};
pub use msr::parse_rdmsr;
pub use mtrr::parse_mtrr;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::atomic::Output;
use crate::error::{FileError, ParseError};
use crate::sanitize::inert;
use crate::snapshot::{self, CpuMsrs, MsrSection, Origin, Problem, Snapshot};

/// An importer's error: the line (where there is one) and what was expected there.
pub type ImportError = ParseError;

/// The largest dump regdrift will read (an `lspci -vvvxxxx` of a 2000-device server is
/// about 50 MiB).
pub const MAX_IMPORT_BYTES: u64 = 128 << 20;

/// Warnings kept per import; the rest are counted.
const MAX_WARNINGS: usize = 64;

/// MSR values kept per import (256 CPUs with 4096 MSRs each).
pub(crate) const MAX_MSR_VALUES: usize = 1 << 20;

/// The highest logical CPU number accepted from a dump.
pub(crate) const MAX_CPU: u32 = 65_535;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regdrift snapshot (JSON).
    Snapshot,
    /// An lspci hex dump.
    Lspci,
    /// The text of /proc/mtrr.
    ProcMtrr,
    /// rdmsr output.
    Rdmsr,
    /// A coreboot inteltool log.
    Inteltool,
}

impl Kind {
    /// The importer's name, as recorded in `meta.origin.importer`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Lspci => lspci::IMPORTER,
            Kind::ProcMtrr => mtrr::IMPORTER,
            Kind::Rdmsr => msr::IMPORTER,
            Kind::Inteltool => inteltool::IMPORTER,
        }
    }
}

/// A snapshot made from a dump, and what the dump could not carry or the importer had to
/// leave out (also recorded in `snapshot.meta.problems`).
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub snapshot: Snapshot,
    pub warnings: Vec<String>,
}

/// What `text` is, by its shape: a snapshot (JSON), /proc/mtrr, an inteltool log, an lspci
/// dump or rdmsr output; `None` for anything else.
pub fn detect(text: &str) -> Option<Kind> {
    if text.trim_start().starts_with('{') {
        return Some(Kind::Snapshot);
    }
    if mtrr::looks_like(text) {
        return Some(Kind::ProcMtrr);
    }
    if inteltool::looks_like(text) {
        return Some(Kind::Inteltool);
    }
    if lspci::looks_like(text) {
        return Some(Kind::Lspci);
    }
    if msr::looks_like(text) {
        return Some(Kind::Rdmsr);
    }
    None
}

/// Import `text` as a dump of `kind`. A snapshot is parsed as one (no warnings).
pub fn import_text(kind: Kind, text: &str, file: &str) -> Result<Imported, ImportError> {
    match kind {
        Kind::Snapshot => Snapshot::from_json(text)
            .map(|snapshot| Imported {
                snapshot,
                warnings: Vec::new(),
            })
            .map_err(ParseError::new),
        Kind::Lspci => lspci::parse_lspci(text, file),
        Kind::ProcMtrr => mtrr::parse_mtrr(text, file),
        Kind::Rdmsr => msr::parse_rdmsr(text, file),
        Kind::Inteltool => inteltool::parse_inteltool(text, file),
    }
}

/// Import an MSR dump: a coreboot inteltool log, or else rdmsr output.
pub fn parse_msr(text: &str, file: &str) -> Result<Imported, ImportError> {
    if inteltool::looks_like(text) {
        inteltool::parse_inteltool(text, file)
    } else {
        msr::parse_rdmsr(text, file)
    }
}

const NOT_RECOGNISED: &str = "neither a regdrift snapshot nor a dump regdrift can import \
     (lspci -xxx/-xxxx, /proc/mtrr, rdmsr output, coreboot inteltool log)";

/// Load `path` as a snapshot; a dump of a recognised kind is imported on the fly (its
/// warnings are in `meta.problems`). Errors name the file and, for text formats, the line.
pub fn load_any(path: &Path) -> Result<Snapshot, FileError> {
    let text = snapshot::read_text_file(path, MAX_IMPORT_BYTES)?;
    let name = path.display().to_string();
    match detect(&text) {
        Some(Kind::Snapshot) => {
            Snapshot::from_json(&text).map_err(|what| FileError::invalid(path, what))
        }
        Some(kind) => import_text(kind, &text, &name)
            .map(|imported| imported.snapshot)
            .map_err(|e| FileError::invalid(path, format!("{} dump: {e}", kind.name()))),
        None => Err(FileError::invalid(path, NOT_RECOGNISED)),
    }
}

// ---------------------------------------------------------------------------------------
// The command: `regdrift import lspci|mtrr|msr|auto FILE [-o snap.json]`

/// What kind of dump `regdrift import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportKind {
    /// lspci -x/-xxx/-xxxx, alone or mixed with -v/-vv/-vvv/-nn text.
    Lspci,
    /// The text of /proc/mtrr.
    Mtrr,
    /// rdmsr output or a coreboot inteltool log.
    Msr,
    /// Detect the kind from the text.
    Auto,
}

/// Arguments of `regdrift import`.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The kind of dump.
    #[arg(value_enum, value_name = "KIND")]
    pub kind: ImportKind,
    /// The dump to read; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the snapshot to this file (atomically); `-` or nothing writes to standard
    /// output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Run `regdrift import`; returns the exit status (0).
pub fn run(args: ImportArgs) -> anyhow::Result<u8> {
    let (text, name) = read_input(&args.file)?;
    let shown = inert(&name).into_owned();
    let result = match args.kind {
        ImportKind::Lspci => lspci::parse_lspci(&text, &name),
        ImportKind::Mtrr => mtrr::parse_mtrr(&text, &name),
        ImportKind::Msr => parse_msr(&text, &name),
        ImportKind::Auto => match detect(&text) {
            Some(Kind::Snapshot) => {
                eprintln!("regdrift: {shown} is a regdrift snapshot already: written as it is");
                import_text(Kind::Snapshot, &text, &name)
            }
            Some(kind) => import_text(kind, &text, &name),
            None => bail!("{shown}: {NOT_RECOGNISED}"),
        },
    };
    let imported = result.map_err(|e| FileError::invalid(&name, e.to_string()))?;
    for w in &imported.warnings {
        eprintln!("regdrift: warning: {shown}: {}", inert(w));
    }
    let out = Output::from_arg(args.output.as_deref());
    imported
        .snapshot
        .save(&out)
        .context("cannot write the snapshot")?;
    eprintln!("regdrift: {}", summary(&imported.snapshot, &shown));
    Ok(0)
}

/// The text of `path`, or of standard input for `-`, with the name to record.
fn read_input(path: &Path) -> anyhow::Result<(String, String)> {
    if path.as_os_str() != "-" {
        let text = snapshot::read_text_file(path, MAX_IMPORT_BYTES)?;
        return Ok((text, path.display().to_string()));
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_IMPORT_BYTES + 1)
        .read_to_end(&mut buf)
        .context("cannot read standard input")?;
    if buf.len() as u64 > MAX_IMPORT_BYTES {
        bail!(
            "<stdin>: larger than {} MiB: refused",
            MAX_IMPORT_BYTES >> 20
        );
    }
    let text = String::from_utf8(buf).map_err(|e| {
        anyhow::anyhow!(
            "<stdin>: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((text, "<stdin>".to_string()))
}

/// `imported lspci dump laptop.txt: 25 PCI devices`.
fn summary(snap: &Snapshot, file: &str) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if let Some(pci) = &snap.pci {
        parts.push(plural(pci.devices.len(), "PCI device"));
    }
    if let Some(msr) = &snap.msr {
        let values: usize = msr
            .cpus
            .values()
            .map(|c| c.values.len() + c.unreadable.len())
            .sum();
        parts.push(format!(
            "{} on {}",
            plural(values, "MSR value"),
            plural(msr.cpus.len(), "CPU")
        ));
    }
    if let Some(m) = &snap.mtrr {
        let n = m
            .proc_mtrr
            .as_deref()
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0);
        parts.push(plural(n, "/proc/mtrr line"));
    }
    let importer = match &snap.meta.origin {
        Origin::Import { importer, .. } => importer.as_str(),
        _ => "snapshot",
    };
    format!("imported {importer} dump {file}: {}", parts.join(", "))
}

// ---------------------------------------------------------------------------------------
// Shared by the importers

/// Warnings of one import, bounded.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    list: Vec<String>,
    more: usize,
}

impl Warnings {
    pub(crate) fn push(&mut self, w: impl Into<String>) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(w.into());
        } else {
            self.more += 1;
        }
    }

    /// A warning kept past the bound: one that says the import stopped or was cut short.
    pub(crate) fn always(&mut self, line: usize, w: impl std::fmt::Display) {
        self.list.push(format!("line {line}: {w}"));
    }

    /// A warning about line `line` (1-based).
    pub(crate) fn at(&mut self, line: usize, w: impl std::fmt::Display) {
        self.push(format!("line {line}: {w}"));
    }

    fn into_vec(self) -> Vec<String> {
        let mut v = self.list;
        if self.more > 0 {
            v.push(format!("… and {} more warnings", self.more));
        }
        v
    }
}

/// `text` without a leading byte-order mark (some editors add one).
pub(crate) fn body(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A short, inert quotation of text from a dump, for messages.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    let s = s.trim();
    let mut out: String = s.chars().take(MAX).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    inert(&out).into_owned()
}

/// An empty snapshot that records `importer` and `file` as its origin.
pub(crate) fn new_snapshot(importer: &str, file: &str) -> Snapshot {
    Snapshot::new(Origin::Import {
        importer: importer.to_string(),
        file: file.to_string(),
    })
}

/// Record what the dump does not carry and the warnings in `meta.problems`.
pub(crate) fn finish(
    importer: &str,
    file: &str,
    mut snapshot: Snapshot,
    warnings: Warnings,
    not_carried: &[(&str, &str)],
) -> Imported {
    let warnings = warnings.into_vec();
    for (source, reason) in not_carried {
        snapshot.meta.problems.push(Problem {
            source: (*source).to_string(),
            path: None,
            reason: (*reason).to_string(),
        });
    }
    for w in &warnings {
        snapshot.meta.problems.push(Problem {
            source: importer.to_string(),
            path: Some(file.to_string()),
            reason: w.clone(),
        });
    }
    Imported { snapshot, warnings }
}

/// `0-3,6` (decimal) or `0x10,0x200-0x20f` (hex) for a sorted set of numbers.
pub(crate) fn ranges(items: &BTreeSet<u32>, hex: bool) -> String {
    let fmt = |n: u32| {
        if hex {
            format!("{n:#x}")
        } else {
            n.to_string()
        }
    };
    let mut out = String::new();
    let mut iter = items.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while let Some(&next) = iter.peek() {
            if end.checked_add(1) == Some(next) {
                end = next;
                iter.next();
            } else {
                break;
            }
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&fmt(start));
        if end != start {
            let _ = write!(out, "-{}", fmt(end));
        }
    }
    out
}

/// One reading of an MSR in a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Value(u64),
    Unreadable(String),
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Value(v) => write!(f, "{v:#x}"),
            Entry::Unreadable(why) => write!(f, "unreadable ({why})"),
        }
    }
}

/// MSR readings per CPU, bounded in count.
#[derive(Debug)]
pub(crate) struct MsrTable {
    cpus: BTreeMap<u32, CpuMsrs>,
    entries: usize,
    limit: usize,
    full: bool,
}

impl Default for MsrTable {
    fn default() -> Self {
        MsrTable::with_limit(MAX_MSR_VALUES)
    }
}

impl MsrTable {
    /// A table that keeps at most `limit` readings.
    pub(crate) fn with_limit(limit: usize) -> Self {
        MsrTable {
            cpus: BTreeMap::new(),
            entries: 0,
            limit,
            full: false,
        }
    }

    /// The current reading of `msr` on `cpu`, if any.
    pub(crate) fn get(&self, cpu: u32, msr: u32) -> Option<Entry> {
        let c = self.cpus.get(&cpu)?;
        if let Some(&v) = c.values.get(&msr) {
            return Some(Entry::Value(v));
        }
        c.unreadable.get(&msr).map(|r| Entry::Unreadable(r.clone()))
    }

    /// Record a reading; a later reading of the same MSR on the same CPU replaces an earlier
    /// one (with a warning when they differ). Returns false once the table is full: the
    /// caller stops reading.
    pub(crate) fn put(
        &mut self,
        cpu: u32,
        msr: u32,
        entry: Entry,
        line: usize,
        w: &mut Warnings,
    ) -> bool {
        if cpu > MAX_CPU {
            w.at(line, format!("CPU {cpu} is beyond {MAX_CPU}: ignored"));
            return true;
        }
        match self.get(cpu, msr) {
            Some(old) if old == entry => return true,
            Some(old) => w.at(
                line,
                format!(
                    "CPU {cpu} MSR {msr:#x} is given again: {old} before, {entry} here; \
                     the later one was kept"
                ),
            ),
            None => {
                if self.entries >= self.limit {
                    if !self.full {
                        self.full = true;
                        w.always(
                            line,
                            format!(
                                "more than {} MSR values: the rest of the file was not \
                                 imported",
                                self.limit
                            ),
                        );
                    }
                    return false;
                }
                self.entries += 1;
            }
        }
        let c = self.cpus.entry(cpu).or_default();
        match entry {
            Entry::Value(v) => {
                c.unreadable.remove(&msr);
                c.values.insert(msr, v);
            }
            Entry::Unreadable(why) => {
                c.values.remove(&msr);
                c.unreadable.insert(msr, why);
            }
        }
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    pub(crate) fn cpu_set(&self) -> BTreeSet<u32> {
        self.cpus.keys().copied().collect()
    }

    /// The MSR section; `selection` lists every MSR the dump holds, as ranges.
    pub(crate) fn into_section(self) -> MsrSection {
        let msrs: BTreeSet<u32> = self
            .cpus
            .values()
            .flat_map(|c| c.values.keys().chain(c.unreadable.keys()).copied())
            .collect();
        MsrSection {
            selection: ranges(&msrs, true),
            cpus: self.cpus,
        }
    }
}

/// Fill the MSR section and `meta.cpus_online` of `snap` from `table`.
pub(crate) fn set_msr_section(snap: &mut Snapshot, table: MsrTable) {
    snap.meta.cpus_online = Some(ranges(&table.cpu_set(), false));
    snap.msr = Some(table.into_section());
}

/// What an MSR dump does not carry.
pub(crate) const MSR_NOT_CARRIED: &[(&str, &str)] = &[
    ("mtrr", "an MSR dump carries no /proc/mtrr text"),
    ("pci", "an MSR dump carries no PCI config space"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_runs() {
        let set: BTreeSet<u32> = [0, 1, 2, 3, 6, 8, 9].into_iter().collect();
        assert_eq!(ranges(&set, false), "0-3,6,8-9");
        let set: BTreeSet<u32> = [0x10, 0x200, 0x201, 0x202].into_iter().collect();
        assert_eq!(ranges(&set, true), "0x10,0x200-0x202");
        assert_eq!(ranges(&BTreeSet::new(), true), "");
        let set: BTreeSet<u32> = [u32::MAX - 1, u32::MAX].into_iter().collect();
        assert_eq!(ranges(&set, true), "0xfffffffe-0xffffffff");
    }

    #[test]
    fn excerpts_are_short_and_inert() {
        assert_eq!(excerpt("  abc "), "abc");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), 61);
        assert_eq!(excerpt("a\x1b[31mb"), "a\\x1b[31mb");
    }

    #[test]
    fn warnings_are_bounded() {
        let mut w = Warnings::default();
        for i in 0..1000 {
            w.at(i, "x");
        }
        let v = w.into_vec();
        assert_eq!(v.len(), MAX_WARNINGS + 1);
        assert!(v.last().unwrap().contains("936 more"), "{:?}", v.last());
    }

    #[test]
    fn msr_table_replaces_and_warns() {
        let mut w = Warnings::default();
        let mut t = MsrTable::default();
        assert!(t.put(0, 0x1a0, Entry::Value(1), 1, &mut w));
        assert!(t.put(0, 0x1a0, Entry::Value(1), 2, &mut w));
        assert!(w.list.is_empty());
        assert!(t.put(0, 0x1a0, Entry::Unreadable("EIO".into()), 3, &mut w));
        assert_eq!(w.list.len(), 1);
        assert!(w.list[0].starts_with("line 3: CPU 0 MSR 0x1a0 is given again"));
        assert_eq!(t.get(0, 0x1a0), Some(Entry::Unreadable("EIO".into())));
        assert!(t.put(MAX_CPU + 1, 0x10, Entry::Value(0), 4, &mut w));
        assert_eq!(t.get(MAX_CPU + 1, 0x10), None);
        let s = t.into_section();
        assert_eq!(s.selection, "0x1a0");
        assert!(s.cpus[&0].values.is_empty());
    }

    #[test]
    fn detect_kinds() {
        assert_eq!(detect("  {\"format\": 1}"), Some(Kind::Snapshot));
        assert_eq!(
            detect("reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n"),
            Some(Kind::ProcMtrr)
        );
        assert_eq!(
            detect("00:1f.2 SATA controller: Intel\n00: 86 80 29 3b\n"),
            Some(Kind::Lspci)
        );
        assert_eq!(
            detect(" MSR 0x000001A0 = 0x00000000:0x00850089 (IA32_MISC_ENABLE)\n"),
            Some(Kind::Inteltool)
        );
        assert_eq!(detect("cpu0 0x1a0 0x850089\n"), Some(Kind::Rdmsr));
        assert_eq!(detect("# 0x1a0\n850089\n850089\n"), Some(Kind::Rdmsr));
        assert_eq!(detect("hello world\n"), None);
        assert_eq!(detect(""), None);
        assert_eq!(detect("\0\0\u{1}garbage\u{7f}"), None);
    }

    #[test]
    fn load_any_reads_snapshots_and_dumps() {
        let dir = tempfile::tempdir().unwrap();
        let snap_path = dir.path().join("a.json");
        let snap = new_snapshot("lspci", "x");
        std::fs::write(&snap_path, snap.to_json()).unwrap();
        assert_eq!(load_any(&snap_path).unwrap(), snap);

        let dump = dir.path().join("mtrr.txt");
        std::fs::write(
            &dump,
            "reg00: base=0x080000000 ( 2048MB), size= 2048MB, count=1: uncachable\n",
        )
        .unwrap();
        let s = load_any(&dump).unwrap();
        assert!(matches!(&s.meta.origin, Origin::Import { importer, file }
            if importer == "proc-mtrr" && file.ends_with("mtrr.txt")));
        assert!(s.mtrr.is_some() && s.pci.is_none() && s.msr.is_none());

        let junk = dir.path().join("junk.txt");
        std::fs::write(&junk, "just some words\n").unwrap();
        let e = load_any(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.txt") && e.contains("neither a regdrift snapshot"),
            "{e}"
        );

        let bad = dir.path().join("bad-lspci.txt");
        std::fs::write(&bad, "00:1f.2 SATA controller\n\tControl: I/O+\n").unwrap();
        let e = load_any(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad-lspci.txt: lspci dump:") && e.contains("-x"),
            "{e}"
        );

        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
        let e = load_any(&binary).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }
}
