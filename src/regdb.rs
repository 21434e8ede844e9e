//! The register database: MSR names, bit fields, volatility and the never-read list, from
//! `assets/msrs.toml` (embedded at build time; a user file can replace it with
//! `--regdb FILE` or `REGDRIFT_REGDB`).
//!
//! Schema (TOML):
//!
//! ```toml
//! [[msr]]
//! index = 0x1a0
//! name = "IA32_MISC_ENABLE"
//! description = "Miscellaneous feature enables"
//! # volatile = "counter"      # changes by itself (TSC, APERF, PMCs, energy status)
//! # volatile = "per-boot"     # rewritten differently at every boot (KASLR addresses, stacks)
//! # count = 8, stride = 1     # a run of registers; "{n}" in names is the register's number
//! # aliases = ["MSR_MISC_ENABLE"]   # other names of the register (other manuals, other
//! #                                 # models); "{n}" works here too
//! # vendor = "intel"          # or "amd": only that vendor's CPUs implement it
//! [[msr.field]]
//! name = "FAST_STRINGS"
//! bits = "0"                  # or "7:0"
//! description = "Fast-strings enable"
//! # values = { "0" = "UC", "6" = "WB" }
//! # volatile = "counter"
//!
//! [[never_read]]
//! first = 0x1f4               # PRMRR
//! last = 0x1f5
//! reason = "PRMRR reads have crashed machines (chipsec issue #887)"
//! ```
//!
//! An MSR on the never-read list may still be described (so that a value obtained some
//! other way, e.g. an imported dump, gets a name), but it is never part of
//! [`RegDb::known_msrs`], the set `--msrs known` reads on every CPU.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::decode::Field;
use crate::error::{FileError, ParseError};

const EMBEDDED: &str = include_str!("../assets/msrs.toml");

/// Why a register or bit changes without anyone having left it behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Volatility {
    /// Counts by itself: TSC, APERF/MPERF, PMCs, energy counters, status readouts.
    Counter,
    /// Written by every boot with a boot-specific value: KASLR addresses, per-CPU stacks.
    PerBoot,
}

impl Volatility {
    pub fn describe(self) -> &'static str {
        match self {
            Volatility::Counter => "counts by itself",
            Volatility::PerBoot => "rewritten at every boot (KASLR, per-CPU data)",
        }
    }
}

/// The CPU vendor that implements an MSR, where only one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Intel,
    Amd,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Intel => "intel",
            Vendor::Amd => "amd",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDef {
    pub name: String,
    pub mask: u64,
    pub description: String,
    /// Named values of the field (e.g. memory types).
    pub values: BTreeMap<u64, String>,
    pub volatile: Option<Volatility>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MsrDef {
    pub index: u32,
    pub name: String,
    /// Other names of the register (other manuals, other CPU models).
    pub aliases: Vec<String>,
    pub description: String,
    /// Only this vendor's CPUs implement it (`None`: both, or not recorded).
    pub vendor: Option<Vendor>,
    pub fields: Vec<FieldDef>,
    /// The whole register is volatile.
    pub volatile: Option<Volatility>,
}

impl MsrDef {
    /// The bits that change by themselves or per boot (all bits for a volatile register).
    pub fn volatile_mask(&self) -> u64 {
        if self.volatile.is_some() {
            return u64::MAX;
        }
        self.fields
            .iter()
            .filter(|f| f.volatile.is_some())
            .fold(0, |m, f| m | f.mask)
    }

    /// The volatility of the bits in `mask`: the register's, or the first volatile field's
    /// that overlaps.
    pub fn volatility_of(&self, mask: u64) -> Option<Volatility> {
        self.volatile.or_else(|| {
            self.fields
                .iter()
                .find(|f| f.volatile.is_some() && f.mask & mask != 0)
                .and_then(|f| f.volatile)
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NeverRead {
    pub first: u32,
    pub last: u32,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct RegDb {
    msrs: Vec<MsrDef>,
    by_index: HashMap<u32, usize>,
    never_read: Vec<NeverRead>,
}

// ---- file schema --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default)]
    msr: Vec<MsrRepr>,
    #[serde(default)]
    never_read: Vec<NeverReadRepr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MsrRepr {
    index: i64,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    vendor: Option<Vendor>,
    #[serde(default)]
    volatile: Option<Volatility>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    stride: Option<u32>,
    #[serde(default)]
    field: Vec<FieldRepr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldRepr {
    name: String,
    bits: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    values: BTreeMap<String, String>,
    #[serde(default)]
    volatile: Option<Volatility>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NeverReadRepr {
    first: i64,
    #[serde(default)]
    last: Option<i64>,
    reason: String,
}

/// Parse `"25"` or `"7:0"` (or `"0:7"`) into a mask.
pub fn parse_bits(s: &str) -> Result<u64, String> {
    let num = |t: &str| -> Result<u32, String> {
        let b: u32 = t
            .trim()
            .parse()
            .map_err(|_| format!("bad bit number {t:?}"))?;
        if b > 63 {
            return Err(format!("bit {b} is past 63"));
        }
        Ok(b)
    };
    let (hi, lo) = match s.split_once(':') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            (a.max(b), a.min(b))
        }
        None => {
            let b = num(s)?;
            (b, b)
        }
    };
    let width = hi - lo + 1;
    Ok(if width == 64 {
        u64::MAX
    } else {
        ((1u64 << width) - 1) << lo
    })
}

fn index_u32(v: i64, what: &str) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} {v:#x} is not a 32-bit MSR index"))
}

static ACTIVE: OnceLock<RegDb> = OnceLock::new();

impl RegDb {
    /// The database built into the binary (parsed once).
    pub fn embedded() -> &'static RegDb {
        static DB: OnceLock<RegDb> = OnceLock::new();
        DB.get_or_init(|| RegDb::from_toml(EMBEDDED).expect("embedded assets/msrs.toml is valid"))
    }

    /// The database in use: a user's file installed with [`RegDb::install`], else the
    /// embedded one.
    pub fn active() -> &'static RegDb {
        ACTIVE.get().unwrap_or_else(|| RegDb::embedded())
    }

    /// Use `db` instead of the embedded database from now on (once, at start-up).
    pub fn install(db: RegDb) -> bool {
        ACTIVE.set(db).is_ok()
    }

    /// Load a user's replacement database.
    pub fn load(path: &Path) -> Result<RegDb, FileError> {
        let text = crate::snapshot::read_text_file(path, 64 << 20)?;
        RegDb::from_toml(&text).map_err(|e| FileError::invalid(path, e.to_string()))
    }

    pub fn from_toml(text: &str) -> Result<RegDb, ParseError> {
        let repr: FileRepr = toml::from_str(text).map_err(|e| ParseError::from_toml(text, &e))?;
        let mut db = RegDb::default();
        for m in repr.msr {
            let base = index_u32(m.index, "index").map_err(ParseError::new)?;
            let mut fields = Vec::new();
            for f in &m.field {
                let mask = parse_bits(&f.bits)
                    .map_err(|e| ParseError::new(format!("{} field {}: {e}", m.name, f.name)))?;
                let mut values = BTreeMap::new();
                for (k, v) in &f.values {
                    let key = crate::snapshot::parse_hex(k)
                        .filter(|_| k.starts_with("0x"))
                        .or_else(|| k.parse().ok())
                        .ok_or_else(|| {
                            ParseError::new(format!(
                                "{} field {}: bad value key {k:?}",
                                m.name, f.name
                            ))
                        })?;
                    values.insert(key, v.clone());
                }
                fields.push(FieldDef {
                    name: f.name.clone(),
                    mask,
                    description: f.description.clone(),
                    values,
                    volatile: f.volatile,
                });
            }
            let count = m.count.unwrap_or(1);
            let stride = m.stride.unwrap_or(1);
            if count == 0 || count > 4096 {
                return Err(ParseError::new(format!(
                    "{}: count {count} out of range",
                    m.name
                )));
            }
            if stride == 0 && count > 1 {
                return Err(ParseError::new(format!("{}: stride 0 in a run", m.name)));
            }
            for n in 0..count {
                let index = n
                    .checked_mul(stride)
                    .and_then(|off| base.checked_add(off))
                    .ok_or_else(|| ParseError::new(format!("{}: index overflows", m.name)))?;
                let subst = |s: &str| s.replace("{n}", &n.to_string());
                let def = MsrDef {
                    index,
                    name: subst(&m.name),
                    aliases: m.aliases.iter().map(|a| subst(a)).collect(),
                    description: subst(&m.description),
                    vendor: m.vendor,
                    fields: fields
                        .iter()
                        .map(|f| FieldDef {
                            name: subst(&f.name),
                            description: subst(&f.description),
                            ..f.clone()
                        })
                        .collect(),
                    volatile: m.volatile,
                };
                if let Some(&i) = db.by_index.get(&index) {
                    return Err(ParseError::new(format!(
                        "MSR {index:#x} defined twice ({} and {})",
                        db.msrs[i].name, def.name
                    )));
                }
                db.by_index.insert(index, db.msrs.len());
                db.msrs.push(def);
            }
        }
        for n in repr.never_read {
            let first = index_u32(n.first, "never_read first").map_err(ParseError::new)?;
            let last =
                index_u32(n.last.unwrap_or(n.first), "never_read last").map_err(ParseError::new)?;
            if last < first {
                return Err(ParseError::new(format!(
                    "never_read {first:#x}..{last:#x} is empty"
                )));
            }
            db.never_read.push(NeverRead {
                first,
                last,
                reason: n.reason,
            });
        }
        db.msrs.sort_by_key(|d| d.index);
        db.by_index = db
            .msrs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.index, i))
            .collect();
        Ok(db)
    }

    pub fn msr(&self, index: u32) -> Option<&MsrDef> {
        self.by_index.get(&index).map(|&i| &self.msrs[i])
    }

    /// The name of an MSR, or `MSR_0x…` for one the database does not know.
    pub fn msr_name(&self, index: u32) -> String {
        self.msr(index)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| format!("MSR_{index:#x}"))
    }

    /// The `--msrs known` set: every MSR the database describes, ascending, except those on
    /// the never-read list (they stay described, but nothing reads them).
    pub fn known_msrs(&self) -> impl Iterator<Item = &MsrDef> {
        self.msrs
            .iter()
            .filter(|d| self.never_read(d.index).is_none())
    }

    /// Every MSR the database describes, ascending, never-read ones included.
    pub fn described_msrs(&self) -> impl Iterator<Item = &MsrDef> {
        self.msrs.iter()
    }

    /// The MSR whose name or one of whose aliases is `name` (ASCII case-insensitive).
    pub fn msr_by_name(&self, name: &str) -> Option<&MsrDef> {
        self.msrs.iter().find(|d| {
            d.name.eq_ignore_ascii_case(name)
                || d.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

    /// Why `index` must never be read, if it is on the never-read list.
    pub fn never_read(&self, index: u32) -> Option<&NeverRead> {
        self.never_read
            .iter()
            .find(|n| (n.first..=n.last).contains(&index))
    }

    pub fn never_read_list(&self) -> &[NeverRead] {
        &self.never_read
    }

    /// The named fields of `value`, in the database's order.
    pub fn decode_msr(&self, index: u32, value: u64) -> Vec<Field> {
        let Some(def) = self.msr(index) else {
            return Vec::new();
        };
        def.fields
            .iter()
            .map(|f| {
                let v = crate::decode::extract(value, f.mask);
                Field {
                    name: f.name.clone(),
                    mask: f.mask,
                    value: v,
                    meaning: f.values.get(&v).cloned(),
                }
            })
            .collect()
    }

    /// Bits of `index` that are volatile (0 for an unknown MSR).
    pub fn volatile_mask(&self, index: u32) -> u64 {
        self.msr(index).map_or(0, MsrDef::volatile_mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_database_loads() {
        let db = RegDb::embedded();
        assert!(db.msr(0x1a0).is_some());
        // Every MSR of the x86 crate plus the hand-written ones: well over a thousand.
        let known = db.known_msrs().count();
        assert!(known > 1200, "only {known} MSRs known");
        // The never-read ones are described but not in the known set.
        assert_eq!(db.described_msrs().count(), known + 4);
    }

    #[test]
    fn never_read_msrs_are_described_but_not_known() {
        let db = RegDb::from_toml(
            r#"
[[msr]]
index = 0x1f4
name = "MSR_PRMRR_PHYS_BASE"
[[msr]]
index = 0x1f6
name = "NEXT"

[[never_read]]
first = 0x1f4
reason = "PRMRR"
"#,
        )
        .unwrap();
        assert_eq!(db.msr_name(0x1f4), "MSR_PRMRR_PHYS_BASE");
        let known: Vec<u32> = db.known_msrs().map(|d| d.index).collect();
        assert_eq!(known, vec![0x1f6]);
        assert_eq!(db.described_msrs().count(), 2);
    }

    #[test]
    fn aliases_and_vendor_load_and_expand() {
        let db = RegDb::from_toml(
            r#"
[[msr]]
index = 0x400
name = "MSR_IA32_MC{n}_CTL"
aliases = ["IA32_MC{n}_CTL"]
vendor = "intel"
count = 2
stride = 4
"#,
        )
        .unwrap();
        let d = db.msr(0x404).unwrap();
        assert_eq!(d.aliases, vec!["IA32_MC1_CTL".to_string()]);
        assert_eq!(d.vendor, Some(Vendor::Intel));
        assert_eq!(db.msr_by_name("ia32_mc1_ctl").map(|d| d.index), Some(0x404));
        assert!(db.msr(0x401).is_none());
        let e = RegDb::from_toml("[[msr]]\nindex = 1\nname = 'A'\nvendor = 'via'\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = RegDb::from_toml("[[msr]]\nindex = 1\nname = 'A'\ncount = 2\nstride = 0\n")
            .unwrap_err();
        assert!(e.what.contains("stride 0"), "{e}");
        let e =
            RegDb::from_toml("[[msr]]\nindex = 0xffffffff\nname = 'A'\ncount = 2\n").unwrap_err();
        assert!(e.what.contains("overflows"), "{e}");
    }

    #[test]
    fn runs_expand_and_fields_decode() {
        let db = RegDb::from_toml(
            r#"
[[msr]]
index = 0x186
name = "IA32_PERFEVTSEL{n}"
count = 2
[[msr.field]]
name = "EN"
bits = "22"
[[msr.field]]
name = "EVENT"
bits = "7:0"
values = { "0x3c" = "unhalted core cycles" }

[[msr]]
index = 0x10
name = "IA32_TIME_STAMP_COUNTER"
volatile = "counter"

[[never_read]]
first = 0x1f4
last = 0x1f5
reason = "PRMRR"
"#,
        )
        .unwrap();
        assert_eq!(db.msr_name(0x187), "IA32_PERFEVTSEL1");
        let f = db.decode_msr(0x186, 0x43003c);
        assert_eq!(f[0].value, 1);
        assert_eq!(f[1].meaning.as_deref(), Some("unhalted core cycles"));
        assert_eq!(db.volatile_mask(0x10), u64::MAX);
        assert_eq!(db.volatile_mask(0x186), 0);
        assert!(db.never_read(0x1f5).is_some());
        assert!(db.never_read(0x1f6).is_none());
        assert_eq!(db.msr_name(0x999), "MSR_0x999");
    }

    #[test]
    fn errors_name_the_line() {
        let e = RegDb::from_toml("[[msr]]\nindex = 1\nname = 3\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = RegDb::from_toml("[[msr]]\nindex=1\nname='A'\n[[msr]]\nindex=1\nname='B'\n")
            .unwrap_err();
        assert!(e.what.contains("defined twice"));
    }
}
