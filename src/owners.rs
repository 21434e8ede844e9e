//! The owner table: which kernel code writes a register (or some of its bits), where, and
//! whether a shutdown or kexec path puts it back. From `assets/owners.toml` (embedded;
//! a user file can replace it with `--owners FILE` or `REGDRIFT_OWNERS`).
//!
//! ```toml
//! [[owner]]
//! driver = "intel_idle"
//! source = "drivers/idle/intel_idle.c"
//! function = "c1e_promotion_disable"
//! restores = "no"            # yes | no | partial | rewritten | unknown
//! note = "Clears C1E promotion at init; nothing sets it back before a kexec."
//! msr = [0x1fc]              # MSRs this entry covers …
//! mask = 0x2                 # … and the bits it writes (all bits when absent)
//! # msr_range = [{ first = 0x400, last = 0x47c, stride = 4 }]   # runs of MSRs
//! # pci = ["pcie.lnkctl"]    # or PCI register keys (see decode::pci)
//! ```

use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{FileError, ParseError};

const EMBEDDED: &str = include_str!("../assets/owners.toml");

/// Whether a shutdown or kexec path restores what the owner wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restores {
    /// A shutdown/kexec path puts the firmware value back.
    Yes,
    /// No path restores it: it survives into the next kernel.
    No,
    /// Some paths restore it (suspend, CPU offline), kexec does not.
    Partial,
    /// Not restored, but every boot writes it again, so it does not carry over.
    Rewritten,
    Unknown,
}

impl Restores {
    pub fn as_str(self) -> &'static str {
        match self {
            Restores::Yes => "yes",
            Restores::No => "no",
            Restores::Partial => "partial",
            Restores::Rewritten => "rewritten",
            Restores::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Subsystem or driver (`intel_idle`, `PCI core`, `MTRR`).
    pub driver: String,
    /// Kernel source file that writes it.
    pub source: String,
    /// Function(s) that write it.
    pub function: String,
    pub restores: Restores,
    pub note: String,
}

/// The most MSRs one `msr_range` may cover (the scan ranges hold 3 × 8192).
const MAX_RANGE_LEN: u32 = 1 << 16;

/// A run of MSRs: `first`, `first + stride`, … up to `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrRange {
    pub first: u32,
    pub last: u32,
    pub stride: u32,
}

impl MsrRange {
    pub fn contains(&self, index: u32) -> bool {
        (self.first..=self.last).contains(&index) && (index - self.first) % self.stride == 0
    }

    pub fn indices(&self) -> impl Iterator<Item = u32> {
        let (first, stride) = (self.first, self.stride);
        (0..=(self.last - first) / stride).map(move |k| first + k * stride)
    }
}

#[derive(Clone, Debug)]
struct Entry {
    owner: Owner,
    msrs: Vec<u32>,
    ranges: Vec<MsrRange>,
    pci: Vec<String>,
    mask: u64,
}

impl Entry {
    fn covers_msr(&self, index: u32) -> bool {
        self.msrs.contains(&index) || self.ranges.iter().any(|r| r.contains(index))
    }
}

#[derive(Clone, Debug, Default)]
pub struct OwnerDb {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default)]
    owner: Vec<EntryRepr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    driver: String,
    source: String,
    function: String,
    restores: Restores,
    #[serde(default)]
    note: String,
    #[serde(default)]
    msr: Vec<i64>,
    #[serde(default)]
    msr_range: Vec<RangeRepr>,
    #[serde(default)]
    pci: Vec<String>,
    #[serde(default)]
    mask: Option<i64>,
}

static ACTIVE: OnceLock<OwnerDb> = OnceLock::new();

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeRepr {
    first: i64,
    last: i64,
    #[serde(default)]
    stride: Option<i64>,
}

impl OwnerDb {
    /// The table in use: a user's file installed with [`OwnerDb::install`], else the
    /// embedded one.
    pub fn active() -> &'static OwnerDb {
        ACTIVE.get().unwrap_or_else(|| OwnerDb::embedded())
    }

    /// Use `db` instead of the embedded table from now on (once, at start-up).
    pub fn install(db: OwnerDb) -> bool {
        ACTIVE.set(db).is_ok()
    }

    pub fn embedded() -> &'static OwnerDb {
        static DB: OnceLock<OwnerDb> = OnceLock::new();
        DB.get_or_init(|| {
            OwnerDb::from_toml(EMBEDDED).expect("embedded assets/owners.toml is valid")
        })
    }

    pub fn load(path: &Path) -> Result<OwnerDb, FileError> {
        let text = crate::snapshot::read_text_file(path, 64 << 20)?;
        OwnerDb::from_toml(&text).map_err(|e| FileError::invalid(path, e.to_string()))
    }

    pub fn from_toml(text: &str) -> Result<OwnerDb, ParseError> {
        let repr: FileRepr = toml::from_str(text).map_err(|e| ParseError::from_toml(text, &e))?;
        let mut entries = Vec::new();
        for e in repr.owner {
            if e.msr.is_empty() && e.msr_range.is_empty() && e.pci.is_empty() {
                return Err(ParseError::new(format!(
                    "owner {} ({}) names no msr and no pci register",
                    e.driver, e.function
                )));
            }
            let msrs = e
                .msr
                .iter()
                .map(|&m| {
                    u32::try_from(m).map_err(|_| {
                        ParseError::new(format!("owner {}: MSR {m:#x} out of range", e.driver))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ranges = e
                .msr_range
                .iter()
                .map(|r| {
                    let bad = |what: &str| {
                        ParseError::new(format!(
                            "owner {}: msr_range {:#x}..{:#x}: {what}",
                            e.driver, r.first, r.last
                        ))
                    };
                    let first = u32::try_from(r.first).map_err(|_| bad("first out of range"))?;
                    let last = u32::try_from(r.last).map_err(|_| bad("last out of range"))?;
                    let stride = u32::try_from(r.stride.unwrap_or(1))
                        .ok()
                        .filter(|&s| s > 0)
                        .ok_or_else(|| bad("stride must be a positive number"))?;
                    if last < first {
                        return Err(bad("last is below first"));
                    }
                    if (last - first) / stride >= MAX_RANGE_LEN {
                        return Err(bad("covers too many MSRs"));
                    }
                    Ok(MsrRange {
                        first,
                        last,
                        stride,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries.push(Entry {
                owner: Owner {
                    driver: e.driver,
                    source: e.source,
                    function: e.function,
                    restores: e.restores,
                    note: e.note,
                },
                msrs,
                ranges,
                pci: e.pci,
                mask: e.mask.map_or(u64::MAX, |m| m as u64),
            });
        }
        Ok(OwnerDb { entries })
    }

    /// Candidate owners of MSR `index` when the bits in `changed` differ. Entries whose
    /// mask overlaps `changed` come first; when none does, every entry for the register.
    pub fn for_msr(&self, index: u32, changed: u64) -> Vec<&Owner> {
        self.matching(|e| e.covers_msr(index), changed)
    }

    /// Candidate owners of a PCI register (a key from `decode::pci`, e.g. `pcie.lnkctl`).
    pub fn for_pci(&self, key: &str, changed: u64) -> Vec<&Owner> {
        self.matching(|e| e.pci.iter().any(|k| k == key), changed)
    }

    /// Every MSR index some entry covers, ascending, without repeats.
    pub fn msr_indices(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .entries
            .iter()
            .flat_map(|e| {
                e.msrs
                    .iter()
                    .copied()
                    .chain(e.ranges.iter().flat_map(|r| r.indices()))
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Every PCI register key some entry covers, sorted, without repeats.
    pub fn pci_keys(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .entries
            .iter()
            .flat_map(|e| e.pci.iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Every entry: the owner, the MSRs it covers (ranges expanded), its PCI keys and the
    /// mask of bits it writes.
    pub fn entries(&self) -> impl Iterator<Item = (&Owner, Vec<u32>, &[String], u64)> {
        self.entries.iter().map(|e| {
            let msrs = e
                .msrs
                .iter()
                .copied()
                .chain(e.ranges.iter().flat_map(|r| r.indices()))
                .collect();
            (&e.owner, msrs, e.pci.as_slice(), e.mask)
        })
    }

    fn matching(&self, covers: impl Fn(&Entry) -> bool, changed: u64) -> Vec<&Owner> {
        let all: Vec<&Entry> = self.entries.iter().filter(|e| covers(e)).collect();
        let precise: Vec<&Owner> = all
            .iter()
            .filter(|e| e.mask & changed != 0)
            .map(|e| &e.owner)
            .collect();
        if precise.is_empty() {
            all.into_iter().map(|e| &e.owner).collect()
        } else {
            precise
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_loads() {
        assert!(!OwnerDb::embedded().for_msr(0x1fc, 0x2).is_empty());
    }

    #[test]
    fn masks_pick_the_writer_of_the_changed_bits() {
        let db = OwnerDb::from_toml(
            r#"
[[owner]]
driver = "intel_idle"
source = "drivers/idle/intel_idle.c"
function = "auto_demotion_disable"
restores = "no"
msr = [0xe2]
mask = 0x6000000

[[owner]]
driver = "BIOS lock"
source = "-"
function = "-"
restores = "unknown"
msr = [0xe2]
mask = 0x8000

[[owner]]
driver = "ASPM"
source = "drivers/pci/pcie/aspm.c"
function = "pcie_config_aspm_link"
restores = "no"
pci = ["pcie.lnkctl"]
mask = 0x3
"#,
        )
        .unwrap();
        let o = db.for_msr(0xe2, 1 << 25);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].driver, "intel_idle");
        // No entry covers bit 0: both are candidates.
        assert_eq!(db.for_msr(0xe2, 1).len(), 2);
        assert_eq!(db.for_pci("pcie.lnkctl", 0x2)[0].driver, "ASPM");
        assert!(db.for_pci("msi.control", 1).is_empty());
    }

    #[test]
    fn ranges_cover_their_strided_indices() {
        let db = OwnerDb::from_toml(
            r#"
[[owner]]
driver = "MCE"
source = "arch/x86/kernel/cpu/mce/core.c"
function = "__mcheck_cpu_init_clear_banks"
restores = "rewritten"
msr_range = [{ first = 0x400, last = 0x40c, stride = 4 }, { first = 0x280, last = 0x281 }]
"#,
        )
        .unwrap();
        assert_eq!(db.for_msr(0x408, 1).len(), 1);
        assert!(db.for_msr(0x409, 1).is_empty());
        assert!(db.for_msr(0x410, 1).is_empty());
        assert_eq!(db.for_msr(0x281, 1)[0].restores, Restores::Rewritten);
        assert_eq!(
            db.msr_indices(),
            vec![0x280, 0x281, 0x400, 0x404, 0x408, 0x40c]
        );
        let (owner, msrs, pci, mask) = db.entries().next().unwrap();
        assert_eq!(owner.driver, "MCE");
        assert_eq!(msrs.len(), 6);
        assert!(pci.is_empty());
        assert_eq!(mask, u64::MAX);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let entry = |range: &str| {
            format!(
                "[[owner]]\ndriver='x'\nsource='y'\nfunction='z'\nrestores='no'\nmsr_range = [{range}]\n"
            )
        };
        for (range, what) in [
            ("{ first = 2, last = 1 }", "below first"),
            ("{ first = 1, last = 2, stride = 0 }", "stride"),
            ("{ first = 1, last = 2, stride = -4 }", "stride"),
            ("{ first = -1, last = 2 }", "first out of range"),
            ("{ first = 1, last = 0x100000000 }", "last out of range"),
            ("{ first = 0, last = 0xffffffff }", "too many"),
        ] {
            let e = OwnerDb::from_toml(&entry(range)).unwrap_err();
            assert!(e.what.contains(what), "{range}: {e}");
        }
    }

    #[test]
    fn an_entry_must_name_a_register() {
        let e =
            OwnerDb::from_toml("[[owner]]\ndriver='x'\nsource='y'\nfunction='z'\nrestores='no'\n")
                .unwrap_err();
        assert!(e.what.contains("names no msr"));
    }
}
