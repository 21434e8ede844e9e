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

#[derive(Clone, Debug)]
struct Entry {
    owner: Owner,
    msrs: Vec<u32>,
    pci: Vec<String>,
    mask: u64,
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
    pci: Vec<String>,
    #[serde(default)]
    mask: Option<i64>,
}

static ACTIVE: OnceLock<OwnerDb> = OnceLock::new();

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
        let repr: FileRepr = toml::from_str(text).map_err(|e| ParseError {
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            what: e.message().to_string(),
        })?;
        let mut entries = Vec::new();
        for e in repr.owner {
            if e.msr.is_empty() && e.pci.is_empty() {
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
            entries.push(Entry {
                owner: Owner {
                    driver: e.driver,
                    source: e.source,
                    function: e.function,
                    restores: e.restores,
                    note: e.note,
                },
                msrs,
                pci: e.pci,
                mask: e.mask.map_or(u64::MAX, |m| m as u64),
            });
        }
        Ok(OwnerDb { entries })
    }

    /// Candidate owners of MSR `index` when the bits in `changed` differ. Entries whose
    /// mask overlaps `changed` come first; when none does, every entry for the register.
    pub fn for_msr(&self, index: u32, changed: u64) -> Vec<&Owner> {
        self.matching(|e| e.msrs.contains(&index), changed)
    }

    /// Candidate owners of a PCI register (a key from `decode::pci`, e.g. `pcie.lnkctl`).
    pub fn for_pci(&self, key: &str, changed: u64) -> Vec<&Owner> {
        self.matching(|e| e.pci.iter().any(|k| k == key), changed)
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
    fn an_entry_must_name_a_register() {
        let e =
            OwnerDb::from_toml("[[owner]]\ndriver='x'\nsource='y'\nfunction='z'\nrestores='no'\n")
                .unwrap_err();
        assert!(e.what.contains("names no msr"));
    }
}
