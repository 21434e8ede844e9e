//! What the panes show for the selected row: values on both sides, the changed and
//! volatile bits, the decoded fields (changed first), the likely owners and notes.
//! Derived from the data on demand: one register's worth of work per frame.

use super::model::{Dataset, Knowledge, Node, RegEntry};
use crate::decode::{bit_range, pci, Field};
use crate::owners::Owner;
use crate::report::Divergence;
use crate::sanitize::inert;
use crate::snapshot::Bdf;

/// A register value on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Num(u64),
    /// Could not be read, and why.
    Unreadable(String),
    /// Not in this snapshot.
    Absent,
    /// A description (MTRR ranges, device identity).
    Text(String),
}

impl Val {
    pub fn num(&self) -> Option<u64> {
        match self {
            Val::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as the panes print it: hex padded to the register's width.
    pub fn show(&self, width_bits: u8) -> String {
        match self {
            Val::Num(n) => {
                let digits = (width_bits as usize).div_ceil(4).max(1);
                format!("{n:#0w$x}", w = digits + 2)
            }
            Val::Unreadable(why) => format!("unreadable ({})", inert(why)),
            Val::Absent => "absent".to_string(),
            Val::Text(t) => inert(t).into_owned(),
        }
    }
}

/// One decoded field of the selected register, on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRow {
    pub name: String,
    pub bits: String,
    pub mask: u64,
    pub baseline: Option<u64>,
    pub current: Option<u64>,
    pub baseline_meaning: Option<String>,
    pub current_meaning: Option<String>,
    pub changed: bool,
}

/// The register (or row) under the cursor, explained.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub title: String,
    pub description: String,
    pub baseline: Option<Val>,
    pub current: Option<Val>,
    /// Width of the register in bits, for the bit grid (0: no grid).
    pub width: u8,
    /// Bits that differ between the two values.
    pub changed: u64,
    /// Bits the database calls volatile.
    pub volatile_mask: u64,
    pub fields: Vec<FieldRow>,
    pub owners: Vec<Owner>,
    /// Bound driver on each side (PCI).
    pub drivers: Option<(Option<String>, Option<String>)>,
    pub notes: Vec<String>,
    pub divergence: Option<usize>,
    /// The MSR index, for the per-CPU view.
    pub msr: Option<u32>,
    /// The device and the register's byte range, for the hex dump.
    pub pci: Option<(Bdf, Option<(u16, u8)>)>,
}

impl Detail {
    /// Owners for the field `i` of the list (the register's owners when out of range).
    pub fn owners_for_field(&self, know: Knowledge, i: Option<usize>) -> Vec<Owner> {
        let Some(f) = i.and_then(|i| self.fields.get(i)) else {
            return self.owners.clone();
        };
        let bits = if f.mask & self.changed != 0 {
            f.mask & self.changed
        } else {
            f.mask
        };
        let found: Vec<&Owner> = if let Some(index) = self.msr {
            know.owners.for_msr(index, bits)
        } else {
            Vec::new()
        };
        if found.is_empty() {
            self.owners.clone()
        } else {
            found.into_iter().cloned().collect()
        }
    }
}

fn field_rows(base: Option<Vec<Field>>, cur: Option<Vec<Field>>) -> Vec<FieldRow> {
    let names: Vec<(String, u64)> = cur
        .as_ref()
        .or(base.as_ref())
        .map(|fs| fs.iter().map(|f| (f.name.clone(), f.mask)).collect())
        .unwrap_or_default();
    let find = |fs: &Option<Vec<Field>>, name: &str| -> Option<Field> {
        fs.as_ref()?.iter().find(|f| f.name == name).cloned()
    };
    let mut rows: Vec<FieldRow> = names
        .into_iter()
        .map(|(name, mask)| {
            let (b, c) = (find(&base, &name), find(&cur, &name));
            let (bv, cv) = (b.as_ref().map(|f| f.value), c.as_ref().map(|f| f.value));
            FieldRow {
                bits: bit_range(mask),
                mask,
                baseline: bv,
                current: cv,
                baseline_meaning: b.and_then(|f| f.meaning).map(|m| inert(&m).into_owned()),
                current_meaning: c.and_then(|f| f.meaning).map(|m| inert(&m).into_owned()),
                changed: bv != cv,
                name: inert(&name).into_owned(),
            }
        })
        .collect();
    // Changed fields first, each group in register order (highest bits first).
    rows.sort_by_key(|r| (!r.changed, std::cmp::Reverse(r.mask)));
    rows
}

fn owners_of(div: Option<&Divergence>, fallback: Vec<&Owner>) -> Vec<Owner> {
    match div {
        Some(d) if !d.owners.is_empty() => d.owners.clone(),
        _ => fallback.into_iter().cloned().collect(),
    }
}

fn div_notes(d: Option<&Divergence>, notes: &mut Vec<String>) {
    if let Some(d) = d {
        for n in &d.notes {
            notes.push(inert(n).into_owned());
        }
        if let Some(v) = d.volatile {
            notes.push(format!("volatile: {}", v.describe()));
        }
    }
}

/// Explain `node` of `ds`.
pub fn detail(ds: &Dataset, know: Knowledge, node: Node) -> Detail {
    match node {
        Node::Msr { cpu, index } => msr_detail(ds, know, cpu, index),
        Node::PciReg { bdf, offset } => match ds.device(bdf).and_then(|d| d.reg(offset)) {
            Some(r) => pci_detail(ds, know, bdf, r),
            None => Detail {
                title: format!("{bdf} register {offset:#x}"),
                ..Detail::default()
            },
        },
        Node::Device(bdf) => device_detail(ds, bdf),
        Node::PciGroup { bdf, group } => {
            let mut d = device_detail(ds, bdf);
            if let Some(g) = ds.device(bdf).and_then(|d| d.groups.get(group as usize)) {
                d.title = format!("{} · {bdf}", g.name);
                let offs = g
                    .regs
                    .iter()
                    .filter_map(|&r| ds.device(bdf)?.regs.get(r))
                    .map(|r| r.offset)
                    .min();
                d.pci = Some((bdf, offs.map(|o| (o, 1))));
            }
            d
        }
        Node::Cpu(cpu) => {
            let n = ds.cpu(cpu).map_or(0, |c| c.msrs.len());
            let unreadable = |s: &crate::snapshot::Snapshot| {
                s.msr
                    .as_ref()
                    .and_then(|m| m.cpus.get(&cpu))
                    .map_or(0, |c| c.unreadable.len())
            };
            Detail {
                title: format!("cpu {cpu}"),
                description: format!(
                    "{n} MSRs; unreadable: {} in the baseline, {} now",
                    unreadable(&ds.baseline.snap),
                    unreadable(&ds.current.snap)
                ),
                ..Detail::default()
            }
        }
        Node::Mtrr(row) => {
            let Some(e) = ds.mtrr.get(row as usize) else {
                return Detail::default();
            };
            let mut notes = Vec::new();
            let mut owners = Vec::new();
            for &i in &e.divs {
                let d = ds.divergence(i);
                div_notes(d, &mut notes);
                if let Some(d) = d {
                    for o in &d.owners {
                        if !owners.contains(o) {
                            owners.push(o.clone());
                        }
                    }
                }
            }
            if owners.is_empty() {
                for &m in &e.msrs {
                    for o in know.owners.for_msr(m, u64::MAX) {
                        if !owners.contains(o) {
                            owners.push(o.clone());
                        }
                    }
                }
            }
            let msrs: Vec<String> = e.msrs.iter().map(|m| format!("{m:#x}")).collect();
            Detail {
                title: format!("MTRR {}", e.label),
                description: if msrs.is_empty() {
                    String::new()
                } else {
                    format!("MSRs {}", msrs.join(", "))
                },
                baseline: Some(e.baseline.clone().map_or(Val::Absent, Val::Text)),
                current: Some(e.current.clone().map_or(Val::Absent, Val::Text)),
                owners,
                notes,
                divergence: e.divs.first().copied(),
                ..Detail::default()
            }
        }
        Node::MsrSection => Detail {
            title: "MSRs".into(),
            description: format!(
                "{} CPUs; selection: {}",
                ds.cpus.len(),
                ds.current
                    .snap
                    .msr
                    .as_ref()
                    .map_or("-".to_string(), |m| inert(&m.selection).into_owned())
            ),
            ..Detail::default()
        },
        Node::MtrrSection => Detail {
            title: "MTRRs".into(),
            description: "memory type ranges, decoded from the MTRR MSRs of the first CPU".into(),
            ..Detail::default()
        },
        Node::PciSection => Detail {
            title: "PCI devices".into(),
            description: format!("{} devices", ds.devices.len()),
            ..Detail::default()
        },
    }
}

fn msr_value_to_val(v: super::model::MsrValue<'_>) -> Val {
    match v {
        Some(Ok(n)) => Val::Num(n),
        Some(Err(why)) => Val::Unreadable(why.to_string()),
        None => Val::Absent,
    }
}

fn msr_detail(ds: &Dataset, know: Knowledge, cpu: u32, index: u32) -> Detail {
    let base = msr_value_to_val(ds.baseline_msr(cpu, index));
    let cur = msr_value_to_val(ds.current_msr(cpu, index));
    let changed = match (base.num(), cur.num()) {
        (Some(a), Some(b)) => a ^ b,
        _ => 0,
    };
    let div_i = ds.msr_div(cpu, index);
    let div = div_i.and_then(|i| ds.divergence(i));
    let def = know.regdb.msr(index);
    let fields = field_rows(
        base.num().map(|v| know.regdb.decode_msr(index, v)),
        cur.num().map(|v| know.regdb.decode_msr(index, v)),
    );
    let mut notes = Vec::new();
    div_notes(div, &mut notes);
    if div.is_none() {
        if let Some(v) = def.and_then(|d| d.volatile) {
            notes.push(format!("volatile: {}", v.describe()));
        }
    }
    Detail {
        title: format!("{} ({index:#x}) · cpu {cpu}", know.regdb.msr_name(index)),
        description: def
            .map(|d| inert(&d.description).into_owned())
            .unwrap_or_default(),
        baseline: Some(base),
        current: Some(cur),
        width: 64,
        changed,
        volatile_mask: know.regdb.volatile_mask(index),
        fields,
        owners: owners_of(
            div,
            know.owners
                .for_msr(index, if changed == 0 { u64::MAX } else { changed }),
        ),
        drivers: None,
        notes,
        divergence: div_i,
        msr: Some(index),
        pci: None,
    }
}

fn drivers(ds: &Dataset, bdf: Bdf) -> (Option<String>, Option<String>) {
    let drv = |d: Option<&crate::snapshot::PciDevice>| {
        d.and_then(|d| d.driver.as_deref())
            .map(|s| inert(s).into_owned())
    };
    (drv(ds.baseline_device(bdf)), drv(ds.current_device(bdf)))
}

fn pci_detail(ds: &Dataset, know: Knowledge, bdf: Bdf, r: &RegEntry) -> Detail {
    let (b, c) = ds.pci_values(bdf, r);
    let side = |v: Option<u64>, present: bool| match (v, present) {
        (Some(v), _) => Val::Num(v),
        (None, true) => Val::Unreadable("beyond the config space read".into()),
        (None, false) => Val::Absent,
    };
    let base = side(b, ds.baseline_device(bdf).is_some());
    let cur = side(c, ds.current_device(bdf).is_some());
    let changed = match (b, c) {
        (Some(a), Some(b)) => a ^ b,
        _ => 0,
    };
    let div_i = ds.pci_div(bdf, r.offset);
    let div = div_i.and_then(|i| ds.divergence(i));
    let fields = match &r.reg {
        Some(reg) => field_rows(
            b.map(|v| pci::decode_reg(reg, v)),
            c.map(|v| pci::decode_reg(reg, v)),
        ),
        None => Vec::new(),
    };
    let owners = match &r.reg {
        Some(reg) => owners_of(
            div,
            know.owners
                .for_pci(reg.key, if changed == 0 { u64::MAX } else { changed }),
        ),
        None => owners_of(div, Vec::new()),
    };
    let mut notes = Vec::new();
    div_notes(div, &mut notes);
    if div.is_none() {
        if let Some(v) = r.volatile {
            notes.push(format!("volatile: {}", v.describe()));
        }
    }
    let width_bits = r.width.saturating_mul(8);
    let group = r
        .reg
        .as_ref()
        .map(|g| inert(&g.group).into_owned())
        .or_else(|| div.and_then(|d| d.group.as_deref().map(|g| inert(g).into_owned())));
    Detail {
        title: format!(
            "{} @{:#05x}{} · {bdf}",
            r.name,
            r.offset,
            group.map(|g| format!(" · {g}")).unwrap_or_default()
        ),
        description: r
            .reg
            .as_ref()
            .map(|g| g.key.to_string())
            .unwrap_or_default(),
        baseline: Some(base),
        current: Some(cur),
        width: width_bits,
        changed,
        volatile_mask: if r.volatile.is_some() { u64::MAX } else { 0 },
        fields,
        owners,
        drivers: Some(drivers(ds, bdf)),
        notes,
        divergence: div_i,
        msr: None,
        pci: Some((bdf, Some((r.offset, r.width)))),
    }
}

fn device_detail(ds: &Dataset, bdf: Bdf) -> Detail {
    let ident = |d: Option<&crate::snapshot::PciDevice>| match d {
        Some(d) => Val::Text(format!(
            "{:04x}:{:04x} class {:06x} rev {:02x}, {} bytes of config{}",
            d.vendor,
            d.device,
            d.class,
            d.revision,
            d.config.len(),
            if d.vanished { ", vanished" } else { "" }
        )),
        None => Val::Absent,
    };
    let mut notes = Vec::new();
    let mut owners = Vec::new();
    for &i in ds.device_divs(bdf) {
        let d = ds.divergence(i);
        if let Some(d) = d {
            notes.push(format!(
                "{}: {} → {}",
                inert(&d.name),
                d.baseline
                    .as_ref()
                    .map_or("absent".to_string(), |v| v.to_string()),
                d.current
                    .as_ref()
                    .map_or("absent".to_string(), |v| v.to_string())
            ));
            owners.extend(d.owners.iter().cloned());
        }
        div_notes(d, &mut notes);
    }
    for side in [ds.baseline_device(bdf), ds.current_device(bdf)]
        .into_iter()
        .flatten()
    {
        if let Some(n) = &side.config_note {
            let n = inert(n).into_owned();
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
    }
    if let Some(d) = ds.device(bdf) {
        notes.extend(d.problems.iter().cloned());
    }
    Detail {
        title: format!(
            "{bdf} {}",
            ds.device(bdf).map(|d| d.label.as_str()).unwrap_or("")
        ),
        description: String::new(),
        baseline: Some(ident(ds.baseline_device(bdf))),
        current: Some(ident(ds.current_device(bdf))),
        owners,
        drivers: Some(drivers(ds, bdf)),
        notes,
        divergence: ds.device_divs(bdf).first().copied(),
        pci: Some((bdf, None)),
        ..Detail::default()
    }
}

/// The selected MSR on every CPU, grouped by identical (baseline, current) values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuGroup {
    pub cpus: Vec<u32>,
    pub baseline: Val,
    pub current: Val,
    /// The current value differs from the one most CPUs hold.
    pub odd: bool,
    /// Baseline and current differ.
    pub diverges: bool,
}

/// Group the CPUs by their values of MSR `index`; the first group holds the most CPUs.
pub fn cpu_groups(ds: &Dataset, index: u32) -> Vec<CpuGroup> {
    let mut groups: Vec<CpuGroup> = Vec::new();
    for c in &ds.cpus {
        if c.msrs.binary_search(&index).is_err() {
            continue;
        }
        let b = msr_value_to_val(ds.baseline_msr(c.cpu, index));
        let v = msr_value_to_val(ds.current_msr(c.cpu, index));
        match groups
            .iter_mut()
            .find(|g| g.baseline == b && g.current == v)
        {
            Some(g) => g.cpus.push(c.cpu),
            None => groups.push(CpuGroup {
                cpus: vec![c.cpu],
                diverges: b != v,
                baseline: b,
                current: v,
                odd: false,
            }),
        }
    }
    // The current value most CPUs hold; CPUs holding another are odd.
    let mut tally: Vec<(&Val, usize)> = Vec::new();
    for g in &groups {
        match tally.iter_mut().find(|t| *t.0 == g.current) {
            Some(t) => t.1 += g.cpus.len(),
            None => tally.push((&g.current, g.cpus.len())),
        }
    }
    let common = tally.iter().max_by_key(|t| t.1).map(|t| (t.0.clone(), t.1));
    // Odd means "unlike its siblings": only when some value is shared by several.
    if let Some((common, _)) = common.filter(|c| tally.len() > 1 && c.1 > 1) {
        for g in &mut groups {
            g.odd = g.current != common;
        }
    }
    groups.sort_by_key(|g| {
        (
            g.odd,
            std::cmp::Reverse(g.cpus.len()),
            g.cpus.first().copied(),
        )
    });
    groups
}
