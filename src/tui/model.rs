//! The data the TUI shows: a baseline and a current snapshot, the diff report between
//! them, and the indices that let the navigator and the panes find things without
//! walking everything on every frame. Built off the UI thread (by the worker) and handed
//! to the UI whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::decode::mtrr;
use crate::decode::pci;
use crate::regdb::{RegDb, Volatility};
use crate::report::{Divergence, Kind, Report};
use crate::sanitize::inert;
use crate::snapshot::{parse_hex, Bdf, CpuMsrs, PciDevice, Snapshot};

/// The register knowledge the views use: names, fields, volatility, owners.
#[derive(Clone, Copy)]
pub struct Knowledge {
    pub regdb: &'static RegDb,
    pub owners: &'static crate::owners::OwnerDb,
}

impl Knowledge {
    /// The database and owner table in use (a user's files, else the built-in ones).
    pub fn active() -> Self {
        Knowledge {
            regdb: RegDb::active(),
            owners: crate::owners::OwnerDb::active(),
        }
    }

    pub fn embedded() -> Self {
        Knowledge {
            regdb: RegDb::embedded(),
            owners: crate::owners::OwnerDb::embedded(),
        }
    }
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Knowledge")
    }
}

/// One snapshot with the name the views give it (a file name, `live`, `frame 12`).
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub snap: Arc<Snapshot>,
}

/// The MSRs of one CPU present in either snapshot.
#[derive(Clone, Debug)]
pub struct CpuEntry {
    pub cpu: u32,
    /// MSR indices read (or found unreadable) in either snapshot, ascending.
    pub msrs: Vec<u32>,
}

/// A register of a device's config space as the navigator lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegEntry {
    pub offset: u16,
    pub width: u8,
    /// The decoder's register (its key names owners); `None` for a register only the
    /// report names.
    pub reg: Option<pci::PciReg>,
    pub name: String,
    pub volatile: Option<Volatility>,
}

/// The header or one capability of a device, with its registers.
#[derive(Clone, Debug)]
pub struct GroupEntry {
    pub name: String,
    /// Indices into [`DeviceEntry::regs`].
    pub regs: Vec<usize>,
    /// The lowest register offset in the group (orders groups and divergences).
    pub first_offset: u16,
}

#[derive(Clone, Debug)]
pub struct DeviceEntry {
    pub bdf: Bdf,
    /// `8086:3b29 SATA controller [ahci]`, inert.
    pub label: String,
    pub regs: Vec<RegEntry>,
    pub groups: Vec<GroupEntry>,
    /// What the capability walk had to stop at, both sides.
    pub problems: Vec<String>,
}

impl DeviceEntry {
    /// The register at `offset` (its first byte).
    pub fn reg(&self, offset: u16) -> Option<&RegEntry> {
        self.regs.iter().find(|r| r.offset == offset)
    }

    /// The register holding byte `offset`.
    pub fn reg_holding(&self, offset: u16) -> Option<&RegEntry> {
        self.regs
            .iter()
            .find(|r| r.offset <= offset && offset < r.offset + r.width as u16)
    }
}

/// One line of the MTRR section: the default type, a fixed-range MSR, a variable range,
/// /proc/mtrr, or a divergence of the report no decoded line explains.
#[derive(Clone, Debug)]
pub struct MtrrEntry {
    pub label: String,
    pub baseline: Option<String>,
    pub current: Option<String>,
    /// The MSRs behind the line.
    pub msrs: Vec<u32>,
    /// Divergences of the report that this line shows.
    pub divs: Vec<usize>,
}

/// Where a search hit or a divergence lives in the navigator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    MsrSection,
    Cpu(u32),
    Msr { cpu: u32, index: u32 },
    MtrrSection,
    Mtrr(u16),
    PciSection,
    Device(Bdf),
    PciGroup { bdf: Bdf, group: u16 },
    PciReg { bdf: Bdf, offset: u16 },
}

/// What a search matches against, and where it leads.
#[derive(Clone, Debug)]
pub struct SearchItem {
    pub text: String,
    pub target: Target,
}

/// Where a search item leads: an MSR (on the first CPU where it diverges, else the first
/// CPU that has it) or candidate rows (the first diverging one is preferred).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Msr(u32),
    Nodes(Vec<Node>),
}

/// Everything the TUI shows for one baseline/current pair.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub baseline: Source,
    pub current: Source,
    pub report: Report,
    pub cpus: Vec<CpuEntry>,
    pub mtrr: Vec<MtrrEntry>,
    pub devices: Vec<DeviceEntry>,
    pub search: Vec<SearchItem>,
    msr_div: HashMap<(u32, u32), usize>,
    pci_div: HashMap<(Bdf, u16), usize>,
    dev_div: HashMap<Bdf, Vec<usize>>,
    /// Divergence index → the row that shows it.
    targets: Vec<Option<Node>>,
    device_pos: HashMap<Bdf, usize>,
    cpu_pos: HashMap<u32, usize>,
}

fn cpu_msrs(s: &Snapshot, cpu: u32) -> Option<&CpuMsrs> {
    s.msr.as_ref()?.cpus.get(&cpu)
}

fn device(s: &Snapshot, bdf: Bdf) -> Option<&PciDevice> {
    s.pci.as_ref()?.devices.get(&bdf)
}

/// An MSR's value in a snapshot: `Ok(value)`, `Err(reason)` when unreadable, or `None`
/// when not captured at all.
pub type MsrValue<'a> = Option<Result<u64, &'a str>>;

fn msr_value(s: &Snapshot, cpu: u32, index: u32) -> MsrValue<'_> {
    let c = cpu_msrs(s, cpu)?;
    if let Some(v) = c.values.get(&index) {
        return Some(Ok(*v));
    }
    c.unreadable.get(&index).map(|r| Err(r.as_str()))
}

impl Dataset {
    /// Index `report` (the diff of `baseline` against `current`) for the views.
    pub fn build(baseline: Source, current: Source, report: Report, know: Knowledge) -> Self {
        let cpus = union_cpus(&baseline.snap, &current.snap);
        let devices = union_devices(&baseline.snap, &current.snap, &report);
        let mut ds = Dataset {
            baseline,
            current,
            report,
            cpus,
            mtrr: Vec::new(),
            devices,
            search: Vec::new(),
            msr_div: HashMap::new(),
            pci_div: HashMap::new(),
            dev_div: HashMap::new(),
            targets: Vec::new(),
            device_pos: HashMap::new(),
            cpu_pos: HashMap::new(),
        };
        ds.device_pos = ds
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.bdf, i))
            .collect();
        ds.cpu_pos = ds
            .cpus
            .iter()
            .enumerate()
            .map(|(i, c)| (c.cpu, i))
            .collect();
        ds.mtrr = mtrr_entries(&ds.baseline.snap, &ds.current.snap, &ds.report);
        ds.index_divergences();
        ds.search = search_items(&ds, know);
        ds
    }

    fn index_divergences(&mut self) {
        let mut targets = Vec::with_capacity(self.report.divergences.len());
        let mtrr_of: HashMap<usize, u16> = self
            .mtrr
            .iter()
            .enumerate()
            .flat_map(|(row, e)| e.divs.iter().map(move |&d| (d, row as u16)))
            .collect();
        for (i, d) in self.report.divergences.iter().enumerate() {
            let reg = d.register.as_deref().and_then(parse_hex);
            let target = match d.kind {
                Kind::Msr => match reg.and_then(|r| u32::try_from(r).ok()) {
                    Some(index) => {
                        for &cpu in &d.cpus {
                            self.msr_div.insert((cpu, index), i);
                        }
                        d.cpus.first().map(|&cpu| Node::Msr { cpu, index })
                    }
                    None => None,
                },
                Kind::Pci => match (d.bdf, reg.and_then(|r| u16::try_from(r).ok())) {
                    (Some(bdf), Some(offset)) => {
                        self.pci_div.insert((bdf, offset), i);
                        Some(Node::PciReg { bdf, offset })
                    }
                    (Some(bdf), None) => {
                        self.dev_div.entry(bdf).or_default().push(i);
                        Some(Node::Device(bdf))
                    }
                    _ => None,
                },
                Kind::PciDevice => d.bdf.map(|bdf| {
                    self.dev_div.entry(bdf).or_default().push(i);
                    Node::Device(bdf)
                }),
                Kind::Mtrr | Kind::ProcMtrr => mtrr_of.get(&i).map(|&r| Node::Mtrr(r)),
            };
            targets.push(target);
        }
        self.targets = targets;
    }

    pub fn divergence(&self, i: usize) -> Option<&Divergence> {
        self.report.divergences.get(i)
    }

    /// The row that shows divergence `i`.
    pub fn target(&self, i: usize) -> Option<Node> {
        self.targets.get(i).copied().flatten()
    }

    /// The divergence of MSR `index` on `cpu`.
    pub fn msr_div(&self, cpu: u32, index: u32) -> Option<usize> {
        self.msr_div.get(&(cpu, index)).copied()
    }

    /// The divergence of the register at `offset` of device `bdf`.
    pub fn pci_div(&self, bdf: Bdf, offset: u16) -> Option<usize> {
        self.pci_div.get(&(bdf, offset)).copied()
    }

    /// Divergences of a device as a whole (present in one snapshot, identity, driver).
    pub fn device_divs(&self, bdf: Bdf) -> &[usize] {
        self.dev_div.get(&bdf).map_or(&[], Vec::as_slice)
    }

    pub fn device(&self, bdf: Bdf) -> Option<&DeviceEntry> {
        self.device_pos.get(&bdf).and_then(|&i| self.devices.get(i))
    }

    pub fn cpu(&self, cpu: u32) -> Option<&CpuEntry> {
        self.cpu_pos.get(&cpu).and_then(|&i| self.cpus.get(i))
    }

    pub fn baseline_msr(&self, cpu: u32, index: u32) -> MsrValue<'_> {
        msr_value(&self.baseline.snap, cpu, index)
    }

    pub fn current_msr(&self, cpu: u32, index: u32) -> MsrValue<'_> {
        msr_value(&self.current.snap, cpu, index)
    }

    pub fn baseline_device(&self, bdf: Bdf) -> Option<&PciDevice> {
        device(&self.baseline.snap, bdf)
    }

    pub fn current_device(&self, bdf: Bdf) -> Option<&PciDevice> {
        device(&self.current.snap, bdf)
    }

    /// The value of a device register on each side (`None` where absent or too short).
    pub fn pci_values(&self, bdf: Bdf, reg: &RegEntry) -> (Option<u64>, Option<u64>) {
        let get = |d: Option<&PciDevice>| d.and_then(|d| config_value(&d.config, reg));
        (
            get(self.baseline_device(bdf)),
            get(self.current_device(bdf)),
        )
    }

    /// Modules loaded in only one snapshot: from the report, or from the snapshots' meta
    /// when the report carries none.
    pub fn modules_only(&self) -> (Vec<String>, Vec<String>) {
        let m = &self.report.modules;
        if !m.only_baseline.is_empty() || !m.only_current.is_empty() {
            return (m.only_baseline.clone(), m.only_current.clone());
        }
        let (Some(a), Some(b)) = (
            self.baseline.snap.meta.modules.as_ref(),
            self.current.snap.meta.modules.as_ref(),
        ) else {
            return (Vec::new(), Vec::new());
        };
        let a: BTreeSet<&String> = a.iter().collect();
        let b: BTreeSet<&String> = b.iter().collect();
        (
            a.difference(&b).map(|s| s.to_string()).collect(),
            b.difference(&a).map(|s| s.to_string()).collect(),
        )
    }
}

/// The little-endian value of `reg` in `config`.
pub fn config_value(config: &[u8], reg: &RegEntry) -> Option<u64> {
    let start = reg.offset as usize;
    let bytes = config.get(start..start + reg.width as usize)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64),
    )
}

fn union_cpus(a: &Snapshot, b: &Snapshot) -> Vec<CpuEntry> {
    let mut per: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for s in [a, b] {
        if let Some(m) = &s.msr {
            for (&cpu, c) in &m.cpus {
                let set = per.entry(cpu).or_default();
                set.extend(c.values.keys());
                set.extend(c.unreadable.keys());
            }
        }
    }
    per.into_iter()
        .map(|(cpu, set)| CpuEntry {
            cpu,
            msrs: set.into_iter().collect(),
        })
        .collect()
}

/// `8086:3b29 [ahci]`: the ids and the bound driver (both sides when they differ), with
/// names from the PCI id database.
pub fn device_label(base: Option<&PciDevice>, cur: Option<&PciDevice>) -> String {
    let Some(d) = cur.or(base) else {
        return String::new();
    };
    let mut s = format!(
        "{:04x}:{:04x} {}",
        d.vendor,
        d.device,
        crate::diff::device_name(d)
    );
    let drv = |d: Option<&PciDevice>| d.and_then(|d| d.driver.clone());
    match (drv(base), drv(cur)) {
        (a, b) if a == b => {
            if let Some(a) = a {
                s.push_str(&format!(" [{a}]"));
            }
        }
        (a, b) => s.push_str(&format!(
            " [{} → {}]",
            a.as_deref().unwrap_or("none"),
            b.as_deref().unwrap_or("none")
        )),
    }
    inert(&s).into_owned()
}

fn union_devices(a: &Snapshot, b: &Snapshot, report: &Report) -> Vec<DeviceEntry> {
    let mut bdfs: BTreeSet<Bdf> = BTreeSet::new();
    for s in [a, b] {
        if let Some(p) = &s.pci {
            bdfs.extend(p.devices.keys());
        }
    }
    let mut report_regs: HashMap<Bdf, Vec<&Divergence>> = HashMap::new();
    for d in &report.divergences {
        if d.kind == Kind::Pci {
            if let Some(bdf) = d.bdf {
                report_regs.entry(bdf).or_default().push(d);
            }
        }
    }
    bdfs.into_iter()
        .map(|bdf| {
            let (base, cur) = (device(a, bdf), device(b, bdf));
            let mut regs: Vec<(String, RegEntry)> = Vec::new();
            let mut problems = Vec::new();
            for (side, d) in [("baseline", base), ("current", cur)] {
                let Some(d) = d else { continue };
                let l = pci::layout(&d.config);
                for p in l.problems {
                    problems.push(format!("{side}: {}", inert(&p)));
                }
                for r in l.regs {
                    if regs
                        .iter()
                        .any(|(_, e)| e.offset == r.offset && e.width == r.width)
                    {
                        continue;
                    }
                    let entry = RegEntry {
                        offset: r.offset,
                        width: r.width,
                        name: inert(&r.name).into_owned(),
                        volatile: r.volatile,
                        reg: None,
                    };
                    regs.push((
                        inert(&r.group).into_owned(),
                        RegEntry {
                            reg: Some(r),
                            ..entry
                        },
                    ));
                }
            }
            // Registers the report names that the layout does not list.
            for d in report_regs.get(&bdf).into_iter().flatten() {
                let Some(offset) = d
                    .register
                    .as_deref()
                    .and_then(parse_hex)
                    .and_then(|o| u16::try_from(o).ok())
                else {
                    continue;
                };
                if regs.iter().any(|(_, e)| e.offset == offset) {
                    continue;
                }
                let width = d.width.map_or(1, |w| (w / 8).clamp(1, 8));
                regs.push((
                    inert(d.group.as_deref().unwrap_or("Config space")).into_owned(),
                    RegEntry {
                        offset,
                        width,
                        reg: None,
                        name: inert(&d.name).into_owned(),
                        volatile: d.volatile,
                    },
                ));
            }
            regs.sort_by_key(|(_, e)| (e.offset, e.width));
            let mut groups: Vec<GroupEntry> = Vec::new();
            let mut entries = Vec::with_capacity(regs.len());
            for (i, (group, e)) in regs.into_iter().enumerate() {
                match groups.iter_mut().find(|g| g.name == group) {
                    Some(g) => g.regs.push(i),
                    None => groups.push(GroupEntry {
                        name: group,
                        regs: vec![i],
                        first_offset: e.offset,
                    }),
                }
                entries.push(e);
            }
            DeviceEntry {
                bdf,
                label: device_label(base, cur),
                regs: entries,
                groups,
                problems,
            }
        })
        .collect()
}

/// The CPU whose MTRR MSRs stand for the machine: the lowest that has MTRRcap.
fn mtrr_cpu(s: &Snapshot) -> Option<&CpuMsrs> {
    s.msr
        .as_ref()?
        .cpus
        .values()
        .find(|c| c.values.contains_key(&mtrr::MTRRCAP))
}

fn mtrr_state(s: &Snapshot) -> Option<mtrr::MtrrState> {
    let c = mtrr_cpu(s)?;
    let bits = s.mtrr.as_ref().and_then(|m| m.phys_bits).or(c.phys_bits);
    mtrr::decode(&c.values, bits)
}

fn fixed_text(st: &mtrr::MtrrState, msr: u32) -> Option<String> {
    let pos = mtrr::FIXED.iter().position(|f| f.0 == msr)?;
    let subs = st.fixed.get(pos * 8..pos * 8 + 8)?;
    let types: Vec<String> = subs.iter().map(|s| mtrr::type_name(s.2)).collect();
    if types.iter().all(|t| *t == types[0]) {
        Some(format!("all {}", types[0]))
    } else {
        Some(types.join(" "))
    }
}

fn mtrr_entries(a: &Snapshot, b: &Snapshot, report: &Report) -> Vec<MtrrEntry> {
    let (sa, sb) = (mtrr_state(a), mtrr_state(b));
    let mut rows = Vec::new();
    if sa.is_some() || sb.is_some() {
        let def = |s: &mtrr::MtrrState| {
            format!(
                "{}, default {}, fixed {}",
                if s.enabled { "enabled" } else { "disabled" },
                mtrr::type_name(s.default_type),
                if s.fixed_enabled { "on" } else { "off" }
            )
        };
        rows.push(MtrrEntry {
            label: "MTRRdefType".into(),
            baseline: sa.as_ref().map(def),
            current: sb.as_ref().map(def),
            msrs: vec![mtrr::MTRR_DEF_TYPE, mtrr::MTRRCAP],
            divs: Vec::new(),
        });
        for &(msr, start, step) in &mtrr::FIXED {
            rows.push(MtrrEntry {
                label: format!("fixed {:#07x}-{:#07x}", start, start + 8 * step - 1),
                baseline: sa.as_ref().and_then(|s| fixed_text(s, msr)),
                current: sb.as_ref().and_then(|s| fixed_text(s, msr)),
                msrs: vec![msr],
                divs: Vec::new(),
            });
        }
        let vcnt = sa
            .as_ref()
            .map_or(0, |s| s.vcnt)
            .max(sb.as_ref().map_or(0, |s| s.vcnt))
            .min(mtrr::MAX_VCNT);
        for n in 0..vcnt {
            let var = |s: &Option<mtrr::MtrrState>| {
                s.as_ref().map(|s| {
                    s.variable
                        .iter()
                        .find(|v| v.reg == n)
                        .map_or_else(|| "unused".to_string(), |v| v.describe())
                })
            };
            rows.push(MtrrEntry {
                label: format!("variable range {n}"),
                baseline: var(&sa),
                current: var(&sb),
                msrs: vec![mtrr::PHYSBASE0 + 2 * n, mtrr::PHYSBASE0 + 2 * n + 1],
                divs: Vec::new(),
            });
        }
    }
    let proc_text = |s: &Snapshot| {
        s.mtrr.as_ref().and_then(|m| m.proc_mtrr.as_ref()).map(|t| {
            format!(
                "{} lines",
                t.lines().filter(|l| !l.trim().is_empty()).count()
            )
        })
    };
    if a.mtrr.is_some() || b.mtrr.is_some() {
        rows.push(MtrrEntry {
            label: "/proc/mtrr".into(),
            baseline: proc_text(a),
            current: proc_text(b),
            msrs: Vec::new(),
            divs: Vec::new(),
        });
    }
    // Attach the report's MTRR divergences to the line showing them: by the MSRs it
    // names, else by its name; one that no line shows gets a line of its own.
    for (i, d) in report.divergences.iter().enumerate() {
        if !matches!(d.kind, Kind::Mtrr | Kind::ProcMtrr) {
            continue;
        }
        let named: Vec<u32> = d
            .register
            .as_deref()
            .unwrap_or("")
            .split(|c: char| c == ',' || c == '/' || c.is_whitespace())
            .filter_map(parse_hex)
            .filter_map(|v| u32::try_from(v).ok())
            .collect();
        let row = if d.kind == Kind::ProcMtrr {
            rows.iter().position(|r| r.label == "/proc/mtrr")
        } else {
            rows.iter()
                .position(|r| r.label.eq_ignore_ascii_case(&d.name))
                .or_else(|| {
                    rows.iter()
                        .position(|r| r.msrs.iter().any(|m| named.contains(m)))
                })
        };
        match row {
            Some(r) => rows[r].divs.push(i),
            None => rows.push(MtrrEntry {
                label: inert(&d.name).into_owned(),
                baseline: d.baseline.as_ref().map(|v| v.to_string()),
                current: d.current.as_ref().map(|v| v.to_string()),
                msrs: named,
                divs: vec![i],
            }),
        }
    }
    rows
}

fn search_items(ds: &Dataset, know: Knowledge) -> Vec<SearchItem> {
    let mut by_text: BTreeMap<String, Vec<Node>> = BTreeMap::new();
    let mut items = Vec::new();
    // MSRs: one item per register and one per field, whatever the number of CPUs.
    let msrs: BTreeSet<u32> = ds
        .cpus
        .iter()
        .flat_map(|c| c.msrs.iter().copied())
        .collect();
    for index in msrs {
        let name = know.regdb.msr_name(index);
        if let Some(def) = know.regdb.msr(index) {
            for f in &def.fields {
                items.push(SearchItem {
                    text: format!("{name}.{}", f.name),
                    target: Target::Msr(index),
                });
            }
        }
        items.push(SearchItem {
            text: format!("{name} {index:#x}"),
            target: Target::Msr(index),
        });
    }
    let mut add = |text: String, node: Node| by_text.entry(text).or_default().push(node);
    for (i, e) in ds.mtrr.iter().enumerate() {
        add(format!("MTRR {}", e.label), Node::Mtrr(i as u16));
    }
    for d in &ds.devices {
        add(format!("{} {}", d.bdf, d.label), Node::Device(d.bdf));
        for r in &d.regs {
            let node = Node::PciReg {
                bdf: d.bdf,
                offset: r.offset,
            };
            match &r.reg {
                Some(reg) => add(format!("{} {}", r.name, reg.key), node),
                None => add(r.name.clone(), node),
            }
        }
        for side in [ds.baseline_device(d.bdf), ds.current_device(d.bdf)]
            .into_iter()
            .flatten()
        {
            if let Some(drv) = &side.driver {
                add(format!("driver {}", inert(drv)), Node::Device(d.bdf));
            }
        }
    }
    items.extend(by_text.into_iter().map(|(text, mut targets)| {
        targets.dedup();
        SearchItem {
            text,
            target: Target::Nodes(targets),
        }
    }));
    items
}
