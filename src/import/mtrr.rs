//! The text of /proc/mtrr → the `mtrr` section of a snapshot (kept as text, checked line
//! by line with [`crate::decode::mtrr::parse_proc_mtrr`]).
//!
//! Accepted: `regNN: base=0x… (  NMB), size= NMB, count=N: TYPE` (kernels since 2.6) and the
//! older order `regNN: base=0x… (  NMB), size= NMB: TYPE, count=N`; sizes in KB, MB or GB;
//! blank lines. Any other line is refused with its number. An empty file imports as no
//! ranges, with a warning.

use std::collections::BTreeSet;

use crate::decode::mtrr::parse_proc_mtrr;
use crate::snapshot::MtrrSection;

use super::{body, excerpt, finish, new_snapshot, ImportError, Imported, Warnings};

/// The importer's name in `meta.origin`.
pub const IMPORTER: &str = "proc-mtrr";

/// Whether `text` starts like /proc/mtrr (`regNN: base=`).
pub fn looks_like(text: &str) -> bool {
    body(text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .and_then(|l| l.strip_prefix("reg"))
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(n, rest)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && rest.trim_start().starts_with("base=")
        })
}

/// Parse the text of /proc/mtrr; `file` is recorded as the origin.
pub fn parse_mtrr(text: &str, file: &str) -> Result<Imported, ImportError> {
    let text = body(text);
    let lines = parse_proc_mtrr(text).map_err(|e| ImportError {
        line: e.line,
        what: format!("not a /proc/mtrr line: {}", e.what),
    })?;
    let mut w = Warnings::default();
    if lines.is_empty() {
        w.push(
            "no MTRR lines: the kernel listed no variable range (MTRRs off, or a VM without them)",
        );
    }
    let mut seen = BTreeSet::new();
    for l in &lines {
        if !seen.insert(l.reg) {
            w.push(format!("reg{:02} is listed more than once", l.reg));
        }
        if l.mem_type().is_none() {
            w.push(format!(
                "reg{:02}: unknown memory type `{}`",
                l.reg,
                excerpt(&l.type_name)
            ));
        }
    }
    let mut snap = new_snapshot(IMPORTER, file);
    snap.mtrr = Some(MtrrSection {
        phys_bits: None,
        proc_mtrr: Some(text.to_string()),
    });
    Ok(finish(
        IMPORTER,
        file,
        snap,
        w,
        &[
            (
                "msr",
                "a /proc/mtrr dump carries no MSR values (not even the MTRR MSRs themselves)",
            ),
            ("pci", "a /proc/mtrr dump carries no PCI config space"),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_both_orders() {
        let text = "reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n\
                    reg01: base=0xdff80000 (3583MB), size= 512KB: uncachable, count=1\n";
        let imp = parse_mtrr(text, "m.txt").unwrap();
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        let m = imp.snapshot.mtrr.as_ref().unwrap();
        assert_eq!(m.proc_mtrr.as_deref(), Some(text));
        assert!(imp.snapshot.msr.is_none() && imp.snapshot.pci.is_none());
        assert_eq!(imp.snapshot.meta.problems.len(), 2);
    }

    #[test]
    fn refuses_other_lines_with_their_number() {
        let e = parse_mtrr(
            "reg00: base=0x0 (0MB), size= 4KB, count=1: write-back\n00:1f.2 SATA\n",
            "m",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string().starts_with("line 2: not a /proc/mtrr line"),
            "{e}"
        );
        assert!(parse_mtrr("\u{0}\u{0}\u{0}", "m").is_err());
    }

    #[test]
    fn empty_and_odd_files_warn() {
        let imp = parse_mtrr("\n\n", "m").unwrap();
        assert!(imp.warnings[0].contains("no MTRR lines"));
        let imp = parse_mtrr(
            "reg00: base=0x0 (0MB), size= 4KB, count=1: write-back\n\
             reg00: base=0x0 (0MB), size= 4KB, count=1: ?\n",
            "m",
        )
        .unwrap();
        assert_eq!(imp.warnings.len(), 2, "{:?}", imp.warnings);
    }

    #[test]
    fn shape() {
        assert!(looks_like(
            "\n  reg07: base=0x0ffc00000 ( 4092MB), size=    4MB"
        ));
        assert!(!looks_like("register: base="));
        assert!(!looks_like("reg00 base=0x0"));
        assert!(!looks_like(""));
    }
}
