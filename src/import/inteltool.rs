//! coreboot inteltool logs (`inteltool -a`, `inteltool -M`) → the `msr` section of a
//! snapshot.
//!
//! inteltool prints its MSRs in sections under `=`-ruled headings:
//!
//! ```text
//! ===================== SHARED MSRs (All Cores) =====================
//!  MSR 0x00000017 = 0x001C0000:0x98708B2A (IA32_PLATFORM_ID)
//! ====================== UNIQUE MSRs  (core 0) ======================
//!  MSR 0x0000001B = 0x00000000:0xFEE00900 (IA32_APIC_BASE)
//!  (*) MSR 0x0000020E = 0xFFFFFFFF:0xFFFFFFFF (IA32_MTRR_PHYSBASE7)
//! ```
//!
//! Values are `hi:lo`. A line marked `(*)` is an MSR inteltool could not read (it prints all
//! ones for it): it is recorded as unreadable, not as a value. A heading with `MSR` and
//! `core N` (or `cpu N`) opens the section of logical CPU N (inteltool reads
//! `/dev/cpu/N/msr`); a heading with `MSR` and no core number is a shared section, which
//! inteltool reads on CPU 0 only: its values are given to every CPU of the file, with a
//! warning saying so (a per-core value of the same MSR wins). MSR lines outside any MSR
//! section count as shared. The other sections (GPIO, RCBA, PMBASE, MCHBAR, EPBAR, DMIBAR,
//! PCIEXBAR, SPI, AHCI, SGX…) carry no MSRs and are skipped, named in one warning. A log
//! without MSRs is refused, quoting inteltool's own error when it printed one (`Error:
//! Dumping MSRs on this CPU (0x0306c0) is not (yet) supported.`).

use std::collections::{BTreeMap, BTreeSet};

use super::{
    body, excerpt, finish, new_snapshot, ranges, set_msr_section, Entry, ImportError, Imported,
    MsrTable, Warnings, MSR_NOT_CARRIED,
};

/// The importer's name in `meta.origin`.
pub const IMPORTER: &str = "inteltool";

/// Whether `text` looks like an inteltool log: its first line `CPU: ID 0x…`, or an MSR line
/// in inteltool's form.
pub fn looks_like(text: &str) -> bool {
    let text = body(text);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    if first.is_some_and(|l| l.starts_with("CPU: ID 0x")) {
        return true;
    }
    text.lines().any(|l| msr_line(l).is_some())
}

/// What a heading opens.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Section {
    /// Before any heading, or after a closing rule.
    None,
    /// A section without MSRs.
    Other,
    /// MSRs of one CPU, or shared (`None`).
    Msrs(Option<u32>),
}

/// One MSR line: the MSR, its reading, and its name.
#[derive(Debug, PartialEq, Eq)]
struct MsrLine<'a> {
    msr: u32,
    entry: Entry,
    name: &'a str,
}

/// Parse an inteltool log; `file` is recorded as the origin.
pub fn parse_inteltool(text: &str, file: &str) -> Result<Imported, ImportError> {
    let mut w = Warnings::default();
    let mut table = MsrTable::default();
    let mut shared: BTreeMap<u32, (Entry, usize)> = BTreeMap::new();
    let mut section = Section::None;
    let mut skipped: Vec<String> = Vec::new();
    let mut inteltool_errors: Vec<String> = Vec::new();
    let mut per_core: BTreeSet<u32> = BTreeSet::new();
    let mut loose = false;

    for (i, line) in body(text).lines().enumerate() {
        let n = i + 1;
        if let Some(title) = heading(line) {
            section = classify(title);
            match &section {
                Section::Msrs(Some(cpu)) => {
                    per_core.insert(*cpu);
                }
                Section::Other => {
                    let t = excerpt(title);
                    if skipped.len() < 32 && !skipped.contains(&t) {
                        skipped.push(t);
                    }
                }
                _ => {}
            }
            continue;
        }
        if let Some(m) = msr_line(line) {
            match section {
                Section::Msrs(Some(cpu)) => {
                    if !table.put(cpu, m.msr, m.entry, n, &mut w) {
                        break;
                    }
                }
                Section::Msrs(None) | Section::None | Section::Other => {
                    if section != Section::Msrs(None) {
                        loose = true;
                    }
                    shared.insert(m.msr, (m.entry, n));
                }
            }
            continue;
        }
        let t = line.trim();
        if t.starts_with("Error:") && t.contains("MSR") {
            inteltool_errors.push(excerpt(t));
        } else if matches!(section, Section::Msrs(_))
            && !t.is_empty()
            && !t.starts_with("(*) Some MSRs could not be read")
        {
            w.at(n, format!("not an MSR line: `{}` ignored", excerpt(t)));
        }
    }

    if table.is_empty() && shared.is_empty() {
        return Err(ImportError::new(match inteltool_errors.first() {
            Some(e) => format!("no MSRs in this inteltool log: inteltool said `{e}`"),
            None => "no MSR line found: expected inteltool -a/-M output with lines such as \
                     `MSR 0x000001A0 = 0x00000000:0x00850089 (IA32_MISC_ENABLE)`"
                .to_string(),
        }));
    }
    if !shared.is_empty() && !table.is_full() {
        let mut cpus = per_core.clone();
        cpus.insert(0);
        if loose {
            w.push("MSR lines outside an MSR section were taken as shared by all CPUs");
        }
        w.push(format!(
            "inteltool reads the shared MSRs on CPU 0 only: their values were given to \
             CPU{} {}",
            if cpus.len() == 1 { "" } else { "s" },
            ranges(&cpus, false)
        ));
        let mut conflict = false;
        'all: for (&msr, (entry, line)) in &shared {
            for &cpu in &cpus {
                match table.get(cpu, msr) {
                    Some(own) => {
                        if own != *entry && !conflict {
                            conflict = true;
                            w.at(
                                *line,
                                format!(
                                    "MSR {msr:#x} is in the shared section ({entry}) and in \
                                     core {cpu}'s ({own}): the per-core values were kept"
                                ),
                            );
                        }
                    }
                    None => {
                        if !table.put(cpu, msr, entry.clone(), *line, &mut w) {
                            break 'all;
                        }
                    }
                }
            }
        }
    }
    if !skipped.is_empty() {
        w.push(format!(
            "skipped inteltool sections without MSRs: {}",
            skipped.join(", ")
        ));
    }
    let mut snap = new_snapshot(IMPORTER, file);
    set_msr_section(&mut snap, table);
    Ok(finish(IMPORTER, file, snap, w, MSR_NOT_CARRIED))
}

/// The title of a `====== TITLE ======` heading (empty for a rule of `=` alone).
fn heading(line: &str) -> Option<&str> {
    let t = line.trim();
    if t.len() >= 6 && t.starts_with("===") && t.ends_with("===") {
        Some(t.trim_matches('=').trim())
    } else {
        None
    }
}

/// What a heading opens: `UNIQUE MSRs  (core 3)` → CPU 3, `SHARED MSRs (All Cores)` → shared.
fn classify(title: &str) -> Section {
    if title.is_empty() {
        return Section::None;
    }
    let lower = title.to_ascii_lowercase();
    if !lower.contains("msr") {
        return Section::Other;
    }
    for key in ["core", "cpu"] {
        let mut from = 0;
        while let Some(p) = lower.get(from..).and_then(|s| s.find(key)) {
            let after = lower.get(from + p + key.len()..).unwrap_or("");
            let digits: String = after
                .trim_start_matches([' ', '#'])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<u32>() {
                return Section::Msrs(Some(n));
            }
            from += p + key.len();
        }
    }
    Section::Msrs(None)
}

/// ` (*) MSR 0x0000020E = 0xFFFFFFFF:0xFFFFFFFF (IA32_MTRR_PHYSBASE7)`.
fn msr_line(line: &str) -> Option<MsrLine<'_>> {
    let t = line.trim_start();
    let (unreadable, t) = match t.strip_prefix("(*)") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    let t = t.strip_prefix("MSR ")?;
    let (addr, rest) = t.split_once(" = ")?;
    let msr = u32::try_from(hex_prefixed(addr.trim(), 8)?).ok()?;
    let rest = rest.trim();
    let (value, name) = match rest.split_once(char::is_whitespace) {
        Some((v, n)) => (v, n.trim()),
        None => (rest, ""),
    };
    let value = match value.split_once(':') {
        Some((hi, lo)) => (hex_prefixed(hi, 8)? << 32) | hex_prefixed(lo, 8)?,
        None => hex_prefixed(value, 16)?,
    };
    let name = name
        .strip_prefix('(')
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or(name);
    let entry = if unreadable {
        Entry::Unreadable(format!(
            "unreadable: inteltool marked it (*) and printed {value:#x}"
        ))
    } else {
        Entry::Value(value)
    };
    Some(MsrLine { msr, entry, name })
}

/// `0x` and 1 to `max` hex digits.
fn hex_prefixed(s: &str, max: usize) -> Option<u64> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if h.is_empty() || h.len() > max || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "CPU: ID 0x6fb, Processor Type 0x0, Family 0x6, Model 0xf, Stepping 0xb\n\
        \n============= GPIOS =============\n\ngpiobase+0x0000: 0x19fe77c2 (GPIO_USE_SEL)\n\
        \n===================== SHARED MSRs (All Cores) =====================\n \
        MSR 0x000001A0 = 0x00000043:0x64850489 (IA32_MISC_ENABLES)\n\
        \n====================== UNIQUE MSRs  (core 0) ======================\n \
        MSR 0x0000001B = 0x00000000:0xFEE00900 (IA32_APIC_BASE)\n \
        (*) MSR 0x0000020E = 0xFFFFFFFF:0xFFFFFFFF (IA32_MTRR_PHYSBASE7)\n\
        \n====================== UNIQUE MSRs  (core 1) ======================\n \
        MSR 0x0000001B = 0x00000000:0xFEE00800 (IA32_APIC_BASE)\n\
        \n(*) Some MSRs could not be read. The marked values are unreliable.\n\
        \n============= AMBs ============\n";

    #[test]
    fn shared_and_per_core_sections() {
        let imp = parse_inteltool(LOG, "log").unwrap();
        let msr = imp.snapshot.msr.as_ref().unwrap();
        assert_eq!(msr.cpus.len(), 2);
        assert_eq!(msr.cpus[&0].values[&0x1b], 0xfee00900);
        assert_eq!(msr.cpus[&1].values[&0x1b], 0xfee00800);
        for cpu in [0, 1] {
            assert_eq!(msr.cpus[&cpu].values[&0x1a0], 0x43_6485_0489);
        }
        assert!(msr.cpus[&0].unreadable[&0x20e].contains("(*)"));
        assert!(!msr.cpus[&0].values.contains_key(&0x20e));
        assert_eq!(msr.selection, "0x1b,0x1a0,0x20e");
        assert_eq!(imp.snapshot.meta.cpus_online.as_deref(), Some("0-1"));
        assert_eq!(imp.warnings.len(), 2, "{:?}", imp.warnings);
        assert!(imp.warnings[0].contains("given to CPUs 0-1"));
        assert_eq!(
            imp.warnings[1],
            "skipped inteltool sections without MSRs: GPIOS, AMBs"
        );
    }

    #[test]
    fn per_core_wins_over_shared() {
        let log = "=== MSRs ===\nMSR 0x10 = 0x0:0x1\n=== MSRs (core 2) ===\nMSR 0x10 = 0x0:0x2\n";
        let imp = parse_inteltool(log, "l").unwrap();
        let msr = imp.snapshot.msr.as_ref().unwrap();
        assert_eq!(msr.cpus[&2].values[&0x10], 2);
        assert_eq!(msr.cpus[&0].values[&0x10], 1);
        assert!(imp
            .warnings
            .iter()
            .any(|w| w.contains("per-core values were kept")));
    }

    #[test]
    fn logs_without_msrs_are_refused_with_inteltools_reason() {
        let log = "CPU: ID 0x306c3\n============= RCBA ==============\n\n\
                   Error: Dumping MSRs on this CPU (0x0306c0) is not (yet) supported.\n";
        let e = parse_inteltool(log, "l").unwrap_err().to_string();
        assert!(
            e.contains("inteltool said `Error: Dumping MSRs on this CPU"),
            "{e}"
        );
        let e = parse_inteltool("nothing here", "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no MSR line found"), "{e}");
    }

    #[test]
    fn loose_lines_and_junk_in_sections() {
        let log = " MSR 0x000001A0 = 0x00000000:0x00850089 (IA32_MISC_ENABLE)\n\
                   === UNIQUE MSRs (core 1) ===\nWarning: the range exceeds the maximum\n";
        let imp = parse_inteltool(log, "l").unwrap();
        let w = imp.warnings.join("\n");
        assert!(w.contains("outside an MSR section"), "{w}");
        assert!(w.contains("line 3: not an MSR line"), "{w}");
        assert_eq!(imp.snapshot.msr.unwrap().cpus[&1].values[&0x1a0], 0x850089);
    }

    #[test]
    fn line_forms() {
        assert_eq!(
            msr_line(" MSR 0x000001A0 = 0x00000000:0x00850089 (IA32_MISC_ENABLE)"),
            Some(MsrLine {
                msr: 0x1a0,
                entry: Entry::Value(0x850089),
                name: "IA32_MISC_ENABLE"
            })
        );
        assert_eq!(
            msr_line("MSR 0x10 = 0x123456789"),
            Some(MsrLine {
                msr: 0x10,
                entry: Entry::Value(0x1_2345_6789),
                name: ""
            })
        );
        assert!(matches!(
            msr_line(" (*) MSR 0x0000020F = 0xFFFFFFFF:0xFFFFFFFF (X)").map(|m| m.entry),
            Some(Entry::Unreadable(_))
        ));
        assert_eq!(msr_line("MSR 0x1 = 0x1:0x123456789"), None);
        assert_eq!(msr_line("MSR 0x100000000 = 0x0:0x0"), None);
        assert_eq!(msr_line("MSR 1a0 = 0x0:0x0"), None);
        assert_eq!(msr_line("gpiobase+0x0000: 0x19fe77c2 (GPIO_USE_SEL)"), None);
        assert_eq!(msr_line("MSR 0x1a0 = "), None);
    }

    #[test]
    fn headings() {
        assert_eq!(
            heading("===================== SHARED MSRs (All Cores) ====="),
            Some("SHARED MSRs (All Cores)")
        );
        assert_eq!(heading("======================"), Some(""));
        assert_eq!(heading("------- GPIO Group GPP_A -------"), None);
        assert_eq!(heading("=="), None);
        assert_eq!(classify("UNIQUE MSRs  (core 11)"), Section::Msrs(Some(11)));
        assert_eq!(classify("MSRs (CPU #3)"), Section::Msrs(Some(3)));
        assert_eq!(classify("SHARED MSRs (All Cores)"), Section::Msrs(None));
        assert_eq!(classify("Dumping INTEL SGX status"), Section::Other);
        assert_eq!(classify(""), Section::None);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for log in [
            "=== MSRs (core 99999999999999999999) ===\nMSR 0x1 = 0x0:0x1\n",
            "=== MSRs (core 70000) ===\nMSR 0x1 = 0x0:0x1\n",
            "(*)",
            "(*) MSR",
            "MSR 0x = 0x:0x",
            "=== ÿ MSR ÿ core ÿ ===\nMSR 0x1 = 0x0:0x1 (ÿ\n",
        ] {
            let _ = parse_inteltool(log, "l");
        }
        // A CPU number beyond the limit is left out with a warning.
        let imp = parse_inteltool("=== MSRs (core 70000) ===\nMSR 0x1 = 0x0:0x1\n", "l");
        assert!(imp.is_err());
    }
}
