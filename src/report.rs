//! The diff report: what diverges between a baseline and a current snapshot, explained.
//! Built by [`crate::diff`], rendered by [`crate::export`] and the TUI. Its JSON form
//! (`--format json`) is a stable, documented schema (`"format": "regdrift-report"`).

use serde::{Serialize, Serializer};

use crate::owners::Owner;
use crate::regdb::Volatility;
use crate::snapshot::Bdf;

pub const FORMAT: &str = "regdrift-report";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub version: u32,
    pub baseline: Side,
    pub current: Side,
    /// The sources both snapshots carry, and so compared: `msr`, `mtrr`, `pci`.
    pub compared: Vec<String>,
    /// What was not compared, and why (one side does not carry it).
    pub left_out: Vec<String>,
    /// Problems seen while comparing: /proc/mtrr disagreeing with the MTRR MSRs, a
    /// capability list that loops…
    pub warnings: Vec<String>,
    /// Modules loaded in only one of the two snapshots.
    pub modules: ModuleDiff,
    /// Divergences shown (with `--all`, the volatile ones too).
    pub divergences: Vec<Divergence>,
    /// Volatile divergences left out of `divergences` (0 with `--all`).
    pub hidden_volatile: usize,
}

impl Report {
    /// Divergences that count for the exit status: those not marked volatile.
    pub fn significant(&self) -> impl Iterator<Item = &Divergence> {
        self.divergences.iter().filter(|d| d.volatile.is_none())
    }
}

/// One of the two snapshots, as the report names it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    /// The file name, or `live` for a live capture.
    pub name: String,
    /// Host, kernel, boot id, capture time (or the import source).
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ModuleDiff {
    pub only_baseline: Vec<String>,
    pub only_current: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An MSR value (or its readability) differs.
    Msr,
    /// An MTRR range was added, removed or changed type (decoded from the MTRR MSRs).
    Mtrr,
    /// A register of a PCI device's config space differs.
    Pci,
    /// A PCI device is in only one snapshot, changed identity, or changed driver.
    PciDevice,
    /// /proc/mtrr lines differ where the MTRR MSRs could not explain it.
    ProcMtrr,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Msr => "msr",
            Kind::Mtrr => "mtrr",
            Kind::Pci => "pci",
            Kind::PciDevice => "pci-device",
            Kind::ProcMtrr => "proc-mtrr",
        }
    }
}

/// A value in a report: a register value (shown as hex) or a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Num(u64),
    Text(String),
}

impl Value {
    pub fn num(&self) -> Option<u64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n:#x}"),
            Value::Text(t) => f.write_str(&crate::sanitize::inert(t)),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Num(n) => s.collect_str(&format_args!("{n:#x}")),
            Value::Text(t) => s.serialize_str(t),
        }
    }
}

/// One field of a register whose value differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub name: String,
    /// `25` or `7:0`.
    pub bits: String,
    #[serde(serialize_with = "hex")]
    pub baseline: u64,
    #[serde(serialize_with = "hex")]
    pub current: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_meaning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_meaning: Option<String>,
}

/// One divergence: where, what, the values, the changed bits and fields, and who likely
/// wrote it.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    pub kind: Kind,
    /// The CPUs on which this same change is seen (MSR and MTRR kinds).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bdf: Option<Bdf>,
    /// The MSR index, or the config-space offset for PCI, as hex; the MTRR MSRs behind an
    /// MTRR range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    /// Register (or range) name: `MSR_IA32_POWER_CTL`, `LnkCtl`, `variable range 1`.
    pub name: String,
    /// For PCI: the header or capability holding the register (`MSI-X @0x70`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Width of the register in bits (64 for MSRs, 8/16/32 for PCI registers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u8>,
    /// `None`: absent or unreadable in the baseline.
    pub baseline: Option<Value>,
    pub current: Option<Value>,
    /// The bits that differ (not counting volatile bits unless the whole divergence is
    /// volatile).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_hex")]
    pub changed_bits: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Owner>,
    /// For PCI: the bound driver in the baseline and in the current snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drivers: Option<Drivers>,
    /// Set when the register (or the changed bits) change by themselves or per boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volatile: Option<Volatility>,
    /// One-line remarks: "readable only in the current snapshot", "cpu 3 now differs from
    /// its siblings", the /proc/mtrr line…
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Divergence {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Divergence {
            kind,
            cpus: Vec::new(),
            bdf: None,
            register: None,
            name: name.into(),
            group: None,
            width: None,
            baseline: None,
            current: None,
            changed_bits: None,
            fields: Vec::new(),
            owners: Vec::new(),
            drivers: None,
            volatile: None,
            notes: Vec::new(),
        }
    }

    /// "cpus 0-3,6", "cpu 2", "0000:00:1f.2" or "".
    pub fn location(&self) -> String {
        if let Some(b) = self.bdf {
            return b.to_string();
        }
        match self.cpus.len() {
            0 => String::new(),
            1 => format!("cpu {}", self.cpus[0]),
            _ => format!("cpus {}", cpu_list(&self.cpus)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drivers {
    pub baseline: Option<String>,
    pub current: Option<String>,
}

/// `[0,1,2,3,6]` as `0-3,6`.
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// Parse `0-3,6` (the kernel's CPU list syntax) into CPU numbers; `None` if malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 65536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:#x}"))
}

fn opt_hex<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex(v, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(cpu_list(&[5]), "5");
        assert_eq!(parse_cpu_list("0-3,6\n"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }
}
