//! Changes between two snapshots, and their compact encoding.
//!
//! A [`Delta`] holds exactly what differs: MSR values per CPU set, added or removed,
//! unreadable MSRs that changed, CPUs that came or went, PCI devices added or removed,
//! runs of changed config bytes, identity and driver changes, the MTRR section when any of
//! it changed, and the metadata (only the capture time, in the usual case).
//!
//! MSR values are stored as the wrapping difference from the previous value, zigzag
//! varint encoded: a counter that advanced by a few billion takes 5 bytes rather than 8,
//! and a flipped low bit takes 1. A whole snapshot is a delta against [`empty`]. The MSR
//! section and each CPU's entry in it are length-prefixed, so that a "when did this last
//! change" query skips what it does not ask about without decoding it.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::ParseError;
use crate::record::codec::{Dec, Enc};
use crate::snapshot::{
    Bdf, CpuMsrs, Meta, MsrSection, MtrrSection, PciDevice, PciSection, Snapshot,
};

/// Largest config space a run may reach into.
const MAX_CONFIG: usize = 4096;
use crate::snapshot::{MAX_CPUS, MAX_PCI_DEVICES};

/// Unchanged bytes tolerated inside one run before a new run starts (a run header costs
/// two or three bytes).
const RUN_GAP: usize = 4;

/// The snapshot every recording's first frame is a delta against.
pub fn empty() -> Snapshot {
    let mut s = Snapshot::new(Default::default());
    s.meta = Meta::default();
    s
}

/// What changed between two snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delta {
    pub meta: MetaChange,
    pub msr: SectionChange<MsrDelta>,
    /// The new MTRR section, whole, when anything in it changed.
    pub mtrr: SectionChange<MtrrSection>,
    pub pci: SectionChange<PciDelta>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum MetaChange {
    #[default]
    Unchanged,
    /// Only `captured_at` changed (every frame of a live recording).
    CapturedAt(Option<String>),
    /// Something else changed: the whole new metadata.
    Whole(Box<Meta>),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum SectionChange<T> {
    #[default]
    Unchanged,
    /// The section is absent from the new snapshot.
    Removed,
    /// The section changed (or appeared: then the change is against an empty section).
    Changed(T),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MsrDelta {
    /// The new `selection`, when it changed.
    pub selection: Option<String>,
    pub removed_cpus: Vec<u32>,
    /// Changed or added CPUs (an added CPU is a change against an empty one), by number.
    pub cpus: Vec<(u32, CpuDelta)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuDelta {
    /// The new `phys_bits`, when it changed.
    pub phys_bits: Option<Option<u8>>,
    /// The new `regular_file`, when it changed.
    pub regular_file: Option<bool>,
    /// MSR index and the wrapping difference new − old (old is 0 for an added MSR).
    pub set: Vec<(u32, u64)>,
    /// MSRs no longer in `values`.
    pub removed: Vec<u32>,
    /// Unreadable MSRs added or whose reason changed.
    pub unreadable_set: Vec<(u32, String)>,
    /// MSRs no longer in `unreadable`.
    pub unreadable_removed: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PciDelta {
    pub removed: Vec<Bdf>,
    /// Changed or added devices (an added device is a change against an empty one).
    pub devices: Vec<(Bdf, DeviceDelta)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceDelta {
    /// Every field but the config bytes, when any of them changed.
    pub ident: Option<Ident>,
    pub config: ConfigChange,
}

/// A device's fields other than its config bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ident {
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub revision: u8,
    pub subsystem_vendor: Option<u16>,
    pub subsystem_device: Option<u16>,
    pub driver: Option<String>,
    pub config_note: Option<String>,
    pub vanished: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum ConfigChange {
    #[default]
    Unchanged,
    /// Same length: these byte runs changed.
    Runs(Vec<Run>),
    /// New length: the config is `len` zero bytes overlaid with these runs.
    Resized { len: u16, runs: Vec<Run> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub offset: u16,
    pub bytes: Vec<u8>,
}

/// Counts of what one frame changed, for timelines and listings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSummary {
    /// MSR values set, added or removed, and unreadable entries changed.
    pub msr_values: usize,
    /// CPUs with any change (added and removed ones included).
    pub msr_cpus: usize,
    pub msr_section: Option<&'static str>,
    /// Devices added, removed or changed.
    pub pci_devices: usize,
    /// Config bytes carried by the change.
    pub pci_bytes: usize,
    pub pci_section: Option<&'static str>,
    pub mtrr: bool,
    /// Metadata other than the capture time changed.
    pub meta: bool,
}

impl ChangeSummary {
    pub fn is_empty(&self) -> bool {
        *self == ChangeSummary::default()
    }
}

impl fmt::Display for ChangeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = self.msr_section {
            parts.push(format!("MSR section {s}"));
        }
        if self.msr_values > 0 || self.msr_cpus > 0 {
            parts.push(format!(
                "{} MSR value{} on {} CPU{}",
                self.msr_values,
                plural(self.msr_values),
                self.msr_cpus,
                plural(self.msr_cpus)
            ));
        }
        if let Some(s) = self.pci_section {
            parts.push(format!("PCI section {s}"));
        }
        if self.pci_devices > 0 {
            parts.push(format!(
                "{} device{} ({} config byte{})",
                self.pci_devices,
                plural(self.pci_devices),
                self.pci_bytes,
                plural(self.pci_bytes)
            ));
        }
        if self.mtrr {
            parts.push("MTRRs".to_string());
        }
        if self.meta {
            parts.push("metadata".to_string());
        }
        if parts.is_empty() {
            f.write_str("no change")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

// ---------------------------------------------------------------------------------------
// Computing a delta

/// Walk two sorted maps together: `f(key, old, new)` for every key in either.
fn merge<'a, K: Ord + Copy, V>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
    mut f: impl FnMut(K, Option<&'a V>, Option<&'a V>),
) {
    let mut a = old.iter().peekable();
    let mut b = new.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some(&(k, v)), None) => {
                f(*k, Some(v), None);
                a.next();
            }
            (None, Some(&(k, v))) => {
                f(*k, None, Some(v));
                b.next();
            }
            (Some(&(ka, va)), Some(&(kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    f(*ka, Some(va), None);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    f(*kb, None, Some(vb));
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    f(*ka, Some(va), Some(vb));
                    a.next();
                    b.next();
                }
            },
        }
    }
}

fn meta_equal_but_time(a: &Meta, b: &Meta) -> bool {
    // Exhaustive, so that a new field cannot be forgotten here.
    let Meta {
        regdrift_version,
        captured_at: _,
        origin,
        hostname,
        kernel_release,
        cmdline,
        boot_id,
        modules,
        cpus_online,
        problems,
    } = a;
    *regdrift_version == b.regdrift_version
        && *origin == b.origin
        && *hostname == b.hostname
        && *kernel_release == b.kernel_release
        && *cmdline == b.cmdline
        && *boot_id == b.boot_id
        && *modules == b.modules
        && *cpus_online == b.cpus_online
        && *problems == b.problems
}

impl Delta {
    /// What changed from `old` to `new`.
    pub fn between(old: &Snapshot, new: &Snapshot) -> Delta {
        // Exhaustive, so that a new section cannot be forgotten here. `format` and
        // `version` are those of every snapshot regdrift loads.
        let Snapshot {
            format: _,
            version: _,
            meta: _,
            msr: _,
            mtrr: _,
            pci: _,
        } = new;
        let meta = if !meta_equal_but_time(&old.meta, &new.meta) {
            MetaChange::Whole(Box::new(new.meta.clone()))
        } else if old.meta.captured_at != new.meta.captured_at {
            MetaChange::CapturedAt(new.meta.captured_at.clone())
        } else {
            MetaChange::Unchanged
        };
        let msr = section(old.msr.as_ref(), new.msr.as_ref(), msr_delta, |d| {
            d.selection.is_none() && d.removed_cpus.is_empty() && d.cpus.is_empty()
        });
        let mtrr = match (&old.mtrr, &new.mtrr) {
            (None, None) => SectionChange::Unchanged,
            (Some(_), None) => SectionChange::Removed,
            (Some(a), Some(b)) if a == b => SectionChange::Unchanged,
            (_, Some(b)) => SectionChange::Changed(b.clone()),
        };
        let pci = section(old.pci.as_ref(), new.pci.as_ref(), pci_delta, |d| {
            d.removed.is_empty() && d.devices.is_empty()
        });
        Delta {
            meta,
            msr,
            mtrr,
            pci,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }

    /// Whether this delta changes MSR `index` on `cpu` (its value, its readability, or
    /// its presence). A removed MSR section counts as a change of every MSR.
    pub fn touches_msr(&self, cpu: u32, index: u32) -> bool {
        match &self.msr {
            SectionChange::Unchanged => false,
            SectionChange::Removed => true,
            SectionChange::Changed(d) => {
                if d.removed_cpus.contains(&cpu) {
                    return true;
                }
                let Some(c) = find(&d.cpus, cpu) else {
                    return false;
                };
                c.set.iter().any(|(i, _)| *i == index)
                    || c.removed.contains(&index)
                    || c.unreadable_set.iter().any(|(i, _)| *i == index)
                    || c.unreadable_removed.contains(&index)
            }
        }
    }

    /// Whether this delta changes config byte `offset` of device `bdf` (or adds or removes
    /// the device). A removed PCI section counts as a change of every byte.
    pub fn touches_pci(&self, bdf: Bdf, offset: u16) -> bool {
        match &self.pci {
            SectionChange::Unchanged => false,
            SectionChange::Removed => true,
            SectionChange::Changed(d) => {
                if d.removed.contains(&bdf) {
                    return true;
                }
                let Some(dev) = find(&d.devices, bdf) else {
                    return false;
                };
                match &dev.config {
                    ConfigChange::Unchanged => false,
                    ConfigChange::Resized { .. } => true,
                    ConfigChange::Runs(runs) => runs.iter().any(|r| {
                        offset >= r.offset
                            && usize::from(offset) < usize::from(r.offset) + r.bytes.len()
                    }),
                }
            }
        }
    }

    pub fn summary(&self) -> ChangeSummary {
        let mut s = ChangeSummary {
            meta: matches!(self.meta, MetaChange::Whole(_)),
            mtrr: !matches!(self.mtrr, SectionChange::Unchanged),
            ..ChangeSummary::default()
        };
        match &self.msr {
            SectionChange::Unchanged => {}
            SectionChange::Removed => s.msr_section = Some("removed"),
            SectionChange::Changed(d) => {
                if d.selection.is_some() {
                    s.msr_section = Some("selection changed");
                }
                s.msr_cpus = d.removed_cpus.len() + d.cpus.len();
                s.msr_values = d
                    .cpus
                    .iter()
                    .map(|(_, c)| {
                        c.set.len()
                            + c.removed.len()
                            + c.unreadable_set.len()
                            + c.unreadable_removed.len()
                    })
                    .sum();
            }
        }
        match &self.pci {
            SectionChange::Unchanged => {}
            SectionChange::Removed => s.pci_section = Some("removed"),
            SectionChange::Changed(d) => {
                s.pci_devices = d.removed.len() + d.devices.len();
                s.pci_bytes = d
                    .devices
                    .iter()
                    .map(|(_, dev)| match &dev.config {
                        ConfigChange::Unchanged => 0,
                        ConfigChange::Runs(r) | ConfigChange::Resized { runs: r, .. } => {
                            r.iter().map(|r| r.bytes.len()).sum()
                        }
                    })
                    .sum();
            }
        }
        s
    }
}

fn find<K: Ord + Copy, T>(v: &[(K, T)], k: K) -> Option<&T> {
    match v.binary_search_by(|(x, _)| x.cmp(&k)) {
        Ok(i) => v.get(i).map(|(_, t)| t),
        // Entries are sorted when computed here; a decoded delta may not be.
        Err(_) => v.iter().find(|(x, _)| *x == k).map(|(_, t)| t),
    }
}

fn section<S: Default, D>(
    old: Option<&S>,
    new: Option<&S>,
    delta: impl Fn(&S, &S) -> D,
    is_empty: impl Fn(&D) -> bool,
) -> SectionChange<D> {
    match (old, new) {
        (None, None) => SectionChange::Unchanged,
        (Some(_), None) => SectionChange::Removed,
        (Some(a), Some(b)) => {
            let d = delta(a, b);
            if is_empty(&d) {
                SectionChange::Unchanged
            } else {
                SectionChange::Changed(d)
            }
        }
        (None, Some(b)) => SectionChange::Changed(delta(&S::default(), b)),
    }
}

fn msr_delta(old: &MsrSection, new: &MsrSection) -> MsrDelta {
    let MsrSection {
        selection: _,
        cpus: _,
    } = new;
    let mut d = MsrDelta {
        selection: (old.selection != new.selection).then(|| new.selection.clone()),
        ..MsrDelta::default()
    };
    let empty = CpuMsrs::default();
    merge(&old.cpus, &new.cpus, |cpu, a, b| match (a, b) {
        (Some(_), None) => d.removed_cpus.push(cpu),
        (a, Some(b)) => {
            let c = cpu_delta(a.unwrap_or(&empty), b);
            if a.is_none() || c != CpuDelta::default() {
                d.cpus.push((cpu, c));
            }
        }
        (None, None) => {}
    });
    d
}

fn cpu_delta(old: &CpuMsrs, new: &CpuMsrs) -> CpuDelta {
    // Exhaustive, so that a new field cannot be forgotten here.
    let CpuMsrs {
        values,
        unreadable,
        phys_bits,
        regular_file,
    } = new;
    let mut d = CpuDelta {
        phys_bits: (old.phys_bits != *phys_bits).then_some(*phys_bits),
        regular_file: (old.regular_file != *regular_file).then_some(*regular_file),
        ..CpuDelta::default()
    };
    if old.values != *values {
        merge(&old.values, &new.values, |i, a, b| match (a, b) {
            (Some(_), None) => d.removed.push(i),
            (a, Some(&b)) if a != Some(&b) => {
                d.set.push((i, b.wrapping_sub(a.copied().unwrap_or(0))));
            }
            _ => {}
        });
    }
    if old.unreadable != *unreadable {
        merge(&old.unreadable, &new.unreadable, |i, a, b| match (a, b) {
            (Some(_), None) => d.unreadable_removed.push(i),
            (a, Some(b)) if a != Some(b) => d.unreadable_set.push((i, b.clone())),
            _ => {}
        });
    }
    d
}

fn ident(dev: &PciDevice) -> Ident {
    // Exhaustive, so that a new field cannot be forgotten here.
    let PciDevice {
        vendor,
        device,
        class,
        revision,
        subsystem_vendor,
        subsystem_device,
        driver,
        config: _,
        config_note,
        vanished,
    } = dev;
    Ident {
        vendor: *vendor,
        device: *device,
        class: *class,
        revision: *revision,
        subsystem_vendor: *subsystem_vendor,
        subsystem_device: *subsystem_device,
        driver: driver.clone(),
        config_note: config_note.clone(),
        vanished: *vanished,
    }
}

fn ident_equal(a: &PciDevice, b: &PciDevice) -> bool {
    a.vendor == b.vendor
        && a.device == b.device
        && a.class == b.class
        && a.revision == b.revision
        && a.subsystem_vendor == b.subsystem_vendor
        && a.subsystem_device == b.subsystem_device
        && a.driver == b.driver
        && a.config_note == b.config_note
        && a.vanished == b.vanished
}

fn pci_delta(old: &PciSection, new: &PciSection) -> PciDelta {
    let PciSection { devices: _ } = new;
    let mut d = PciDelta::default();
    let empty = PciDevice::default();
    merge(&old.devices, &new.devices, |bdf, a, b| match (a, b) {
        (Some(_), None) => d.removed.push(bdf),
        (a, Some(b)) => {
            let base = a.unwrap_or(&empty);
            let dev = DeviceDelta {
                ident: (!ident_equal(base, b)).then(|| ident(b)),
                config: config_change(&base.config, &b.config),
            };
            if a.is_none() || dev != DeviceDelta::default() {
                d.devices.push((bdf, dev));
            }
        }
        (None, None) => {}
    });
    d
}

fn config_change(old: &[u8], new: &[u8]) -> ConfigChange {
    if old == new {
        ConfigChange::Unchanged
    } else if old.len() == new.len() {
        ConfigChange::Runs(runs(Some(old), new))
    } else {
        ConfigChange::Resized {
            // Snapshots hold at most 4 KiB of config space.
            len: u16::try_from(new.len()).unwrap_or(u16::MAX),
            runs: runs(None, new),
        }
    }
}

/// Runs of `new` that differ from `old` (or from zeros).
fn runs(old: Option<&[u8]>, new: &[u8]) -> Vec<Run> {
    let differs = |i: usize| -> bool {
        let n = new.get(i).copied().unwrap_or(0);
        let o = old.and_then(|o| o.get(i)).copied().unwrap_or(0);
        n != o
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < new.len() {
        if !differs(i) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < new.len() && j - end < RUN_GAP {
            if differs(j) {
                end = j + 1;
            }
            j += 1;
        }
        out.push(Run {
            offset: u16::try_from(start).unwrap_or(u16::MAX),
            bytes: new.get(start..end).unwrap_or(&[]).to_vec(),
        });
        i = end;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Applying a delta

impl Delta {
    /// Turn `s` (the snapshot this delta was computed against) into the new one. A delta
    /// that does not fit `s` (removes what is not there, writes past a config space) is an
    /// error, never a panic.
    pub fn apply(self, s: &mut Snapshot) -> Result<(), ParseError> {
        match self.meta {
            MetaChange::Unchanged => {}
            MetaChange::CapturedAt(t) => s.meta.captured_at = t,
            MetaChange::Whole(m) => s.meta = *m,
        }
        match self.msr {
            SectionChange::Unchanged => {}
            SectionChange::Removed => {
                if s.msr.take().is_none() {
                    return Err(ParseError::new("removes an MSR section that is absent"));
                }
            }
            SectionChange::Changed(d) => apply_msr(s.msr.get_or_insert_with(Default::default), d)?,
        }
        match self.mtrr {
            SectionChange::Unchanged => {}
            SectionChange::Removed => {
                if s.mtrr.take().is_none() {
                    return Err(ParseError::new("removes an MTRR section that is absent"));
                }
            }
            SectionChange::Changed(m) => s.mtrr = Some(m),
        }
        match self.pci {
            SectionChange::Unchanged => {}
            SectionChange::Removed => {
                if s.pci.take().is_none() {
                    return Err(ParseError::new("removes a PCI section that is absent"));
                }
            }
            SectionChange::Changed(d) => apply_pci(s.pci.get_or_insert_with(Default::default), d)?,
        }
        Ok(())
    }
}

fn apply_msr(sec: &mut MsrSection, d: MsrDelta) -> Result<(), ParseError> {
    if let Some(sel) = d.selection {
        sec.selection = sel;
    }
    for cpu in d.removed_cpus {
        if sec.cpus.remove(&cpu).is_none() {
            return Err(ParseError::new(format!(
                "removes CPU {cpu}, which is absent"
            )));
        }
    }
    for (cpu, c) in d.cpus {
        if sec.cpus.len() >= MAX_CPUS && !sec.cpus.contains_key(&cpu) {
            return Err(ParseError::new(format!(
                "adds CPU {cpu} to {MAX_CPUS} CPUs: more than a snapshot may hold"
            )));
        }
        let m = sec.cpus.entry(cpu).or_default();
        if let Some(p) = c.phys_bits {
            m.phys_bits = p;
        }
        if let Some(r) = c.regular_file {
            m.regular_file = r;
        }
        for (i, add) in c.set {
            let v = m.values.entry(i).or_insert(0);
            *v = v.wrapping_add(add);
        }
        for i in c.removed {
            if m.values.remove(&i).is_none() {
                return Err(ParseError::new(format!(
                    "removes MSR {i:#x} on CPU {cpu}, which is absent"
                )));
            }
        }
        for (i, why) in c.unreadable_set {
            m.unreadable.insert(i, why);
        }
        for i in c.unreadable_removed {
            if m.unreadable.remove(&i).is_none() {
                return Err(ParseError::new(format!(
                    "removes unreadable MSR {i:#x} on CPU {cpu}, which is absent"
                )));
            }
        }
    }
    Ok(())
}

fn apply_pci(sec: &mut PciSection, d: PciDelta) -> Result<(), ParseError> {
    for bdf in d.removed {
        if sec.devices.remove(&bdf).is_none() {
            return Err(ParseError::new(format!(
                "removes device {bdf}, which is absent"
            )));
        }
    }
    for (bdf, dd) in d.devices {
        if sec.devices.len() >= MAX_PCI_DEVICES && !sec.devices.contains_key(&bdf) {
            return Err(ParseError::new(format!(
                "adds device {bdf} to {MAX_PCI_DEVICES} devices: more than a snapshot may hold"
            )));
        }
        let dev = sec.devices.entry(bdf).or_default();
        if let Some(id) = dd.ident {
            dev.vendor = id.vendor;
            dev.device = id.device;
            dev.class = id.class;
            dev.revision = id.revision;
            dev.subsystem_vendor = id.subsystem_vendor;
            dev.subsystem_device = id.subsystem_device;
            dev.driver = id.driver;
            dev.config_note = id.config_note;
            dev.vanished = id.vanished;
        }
        let runs = match dd.config {
            ConfigChange::Unchanged => continue,
            ConfigChange::Runs(runs) => runs,
            ConfigChange::Resized { len, runs } => {
                dev.config = vec![0; usize::from(len)];
                runs
            }
        };
        for r in runs {
            let start = usize::from(r.offset);
            let len = dev.config.len();
            let dst = dev
                .config
                .get_mut(start..start + r.bytes.len())
                .ok_or_else(|| {
                    ParseError::new(format!(
                        "writes config bytes {start:#x}..{:#x} of {bdf}, whose config has {len} bytes",
                        start + r.bytes.len()
                    ))
                })?;
            dst.copy_from_slice(&r.bytes);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Encoding

const UNCHANGED: u8 = 0;
const REMOVED: u8 = 1;
const CHANGED: u8 = 2;

// Which parts of a CPU's change follow its number (empty lists are left out).
const CPU_PHYS_NONE: u8 = 0x01;
const CPU_PHYS_SOME: u8 = 0x02;
const CPU_SET: u8 = 0x04;
const CPU_REMOVED: u8 = 0x08;
const CPU_UNREADABLE_SET: u8 = 0x10;
const CPU_UNREADABLE_REMOVED: u8 = 0x20;
const CPU_REGULAR_FILE: u8 = 0x40;
const CPU_NOT_REGULAR_FILE: u8 = 0x80;

fn put_indices(e: &mut Enc, v: &[u32]) {
    e.u(v.len() as u64);
    let mut prev = 0u32;
    for &i in v {
        e.u(u64::from(i.wrapping_sub(prev)));
        prev = i;
    }
}

fn get_index(d: &mut Dec, prev: &mut u32) -> Result<u32, ParseError> {
    let gap = d.u32()?;
    *prev = prev.wrapping_add(gap);
    Ok(*prev)
}

fn get_indices(d: &mut Dec) -> Result<Vec<u32>, ParseError> {
    let n = d.count(1)?;
    let mut prev = 0;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(get_index(d, &mut prev)?);
    }
    Ok(v)
}

fn put_bdf(e: &mut Enc, b: Bdf) {
    e.u(u64::from(b.domain));
    e.u8(b.bus);
    e.u8(b.device);
    e.u8(b.function);
}

fn get_bdf(d: &mut Dec) -> Result<Bdf, ParseError> {
    let domain = d.u32()?;
    let bus = d.u8()?;
    let device = d.u8()?;
    let function = d.u8()?;
    if device > 0x1f || function > 7 {
        return Err(d.err(format!(
            "bad PCI address device {device} function {function}"
        )));
    }
    Ok(Bdf {
        domain,
        bus,
        device,
        function,
    })
}

fn put_opt_u16(e: &mut Enc, v: Option<u16>) {
    match v {
        None => e.u8(0),
        Some(v) => {
            e.u8(1);
            e.u(u64::from(v));
        }
    }
}

fn get_opt_u16(d: &mut Dec) -> Result<Option<u16>, ParseError> {
    match d.u8()? {
        0 => Ok(None),
        1 => d.u16().map(Some),
        t => Err(d.err(format!("bad option tag {t}"))),
    }
}

fn put_runs(e: &mut Enc, runs: &[Run]) {
    e.u(runs.len() as u64);
    let mut end = 0usize;
    for r in runs {
        // Runs are sorted and disjoint when computed here.
        e.u(usize::from(r.offset).saturating_sub(end) as u64);
        e.bytes(&r.bytes);
        end = usize::from(r.offset) + r.bytes.len();
    }
}

fn get_runs(d: &mut Dec) -> Result<Vec<Run>, ParseError> {
    let n = d.count(2)?;
    let mut out = Vec::with_capacity(n);
    let mut end = 0usize;
    for _ in 0..n {
        let gap = d.u()?;
        let bytes = d.bytes()?;
        let offset = usize::try_from(gap)
            .ok()
            .and_then(|g| g.checked_add(end))
            .filter(|&o| o + bytes.len() <= MAX_CONFIG)
            .ok_or_else(|| d.err("config run reaches past 4096 bytes"))?;
        end = offset + bytes.len();
        out.push(Run {
            offset: offset as u16,
            bytes: bytes.to_vec(),
        });
    }
    Ok(out)
}

impl Delta {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Enc(out);
        match &self.meta {
            MetaChange::Unchanged => e.u8(0),
            MetaChange::CapturedAt(t) => {
                e.u8(1);
                e.opt_str(t.as_deref());
            }
            MetaChange::Whole(m) => {
                e.u8(2);
                // Meta holds only strings and lists: serializing cannot fail.
                e.str(&serde_json::to_string(m).unwrap_or_default());
            }
        }
        match &self.msr {
            SectionChange::Unchanged => e.u8(UNCHANGED),
            SectionChange::Removed => e.u8(REMOVED),
            SectionChange::Changed(m) => {
                e.u8(CHANGED);
                // Length-prefixed, so that a PCI query can skip the MSR section.
                let mut body = Vec::new();
                {
                    let mut e = Enc(&mut body);
                    e.opt_str(m.selection.as_deref());
                    put_indices(&mut e, &m.removed_cpus);
                    e.u(m.cpus.len() as u64);
                    let mut prev = 0u32;
                    let mut entry = Vec::new();
                    for (cpu, c) in &m.cpus {
                        e.u(u64::from(cpu.wrapping_sub(prev)));
                        prev = *cpu;
                        // Length-prefixed, so that a query skips other CPUs.
                        entry.clear();
                        {
                            let mut e = Enc(&mut entry);
                            let flags = match c.phys_bits {
                                None => 0,
                                Some(None) => CPU_PHYS_NONE,
                                Some(Some(_)) => CPU_PHYS_SOME,
                            } | if c.set.is_empty() { 0 } else { CPU_SET }
                                | if c.removed.is_empty() { 0 } else { CPU_REMOVED }
                                | if c.unreadable_set.is_empty() {
                                    0
                                } else {
                                    CPU_UNREADABLE_SET
                                }
                                | if c.unreadable_removed.is_empty() {
                                    0
                                } else {
                                    CPU_UNREADABLE_REMOVED
                                }
                                | match c.regular_file {
                                    None => 0,
                                    Some(true) => CPU_REGULAR_FILE,
                                    Some(false) => CPU_NOT_REGULAR_FILE,
                                };
                            e.u8(flags);
                            if let Some(Some(b)) = c.phys_bits {
                                e.u8(b);
                            }
                            if !c.set.is_empty() {
                                e.u(c.set.len() as u64);
                                let mut p = 0u32;
                                for (i, add) in &c.set {
                                    e.u(u64::from(i.wrapping_sub(p)));
                                    p = *i;
                                    e.i(*add as i64);
                                }
                            }
                            if !c.removed.is_empty() {
                                put_indices(&mut e, &c.removed);
                            }
                            if !c.unreadable_set.is_empty() {
                                e.u(c.unreadable_set.len() as u64);
                                let mut p = 0u32;
                                for (i, why) in &c.unreadable_set {
                                    e.u(u64::from(i.wrapping_sub(p)));
                                    p = *i;
                                    e.str(why);
                                }
                            }
                            if !c.unreadable_removed.is_empty() {
                                put_indices(&mut e, &c.unreadable_removed);
                            }
                        }
                        e.bytes(&entry);
                    }
                }
                e.bytes(&body);
            }
        }
        match &self.mtrr {
            SectionChange::Unchanged => e.u8(UNCHANGED),
            SectionChange::Removed => e.u8(REMOVED),
            SectionChange::Changed(MtrrSection {
                phys_bits,
                proc_mtrr,
            }) => {
                e.u8(CHANGED);
                e.opt_u8(*phys_bits);
                e.opt_str(proc_mtrr.as_deref());
            }
        }
        match &self.pci {
            SectionChange::Unchanged => e.u8(UNCHANGED),
            SectionChange::Removed => e.u8(REMOVED),
            SectionChange::Changed(p) => {
                e.u8(CHANGED);
                e.u(p.removed.len() as u64);
                for b in &p.removed {
                    put_bdf(&mut e, *b);
                }
                e.u(p.devices.len() as u64);
                for (bdf, dev) in &p.devices {
                    put_bdf(&mut e, *bdf);
                    match &dev.ident {
                        None => e.u8(0),
                        Some(id) => {
                            e.u8(1);
                            e.u(u64::from(id.vendor));
                            e.u(u64::from(id.device));
                            e.u(u64::from(id.class));
                            e.u8(id.revision);
                            put_opt_u16(&mut e, id.subsystem_vendor);
                            put_opt_u16(&mut e, id.subsystem_device);
                            e.opt_str(id.driver.as_deref());
                            e.opt_str(id.config_note.as_deref());
                            e.u8(u8::from(id.vanished));
                        }
                    }
                    match &dev.config {
                        ConfigChange::Unchanged => e.u8(0),
                        ConfigChange::Runs(runs) => {
                            e.u8(1);
                            put_runs(&mut e, runs);
                        }
                        ConfigChange::Resized { len, runs } => {
                            e.u8(2);
                            e.u(u64::from(*len));
                            put_runs(&mut e, runs);
                        }
                    }
                }
            }
        }
    }

    /// Decode a delta that must fill `buf` exactly.
    pub(crate) fn decode(buf: &[u8]) -> Result<Delta, ParseError> {
        let mut d = Dec::new(buf);
        let delta = Delta::decode_from(&mut d)?;
        d.finish()?;
        Ok(delta)
    }

    fn decode_from(d: &mut Dec) -> Result<Delta, ParseError> {
        let meta = match d.u8()? {
            0 => MetaChange::Unchanged,
            1 => MetaChange::CapturedAt(d.opt_str()?.map(str::to_string)),
            2 => {
                let text = d.str()?;
                let m: Meta =
                    serde_json::from_str(text).map_err(|e| d.err(format!("bad metadata: {e}")))?;
                MetaChange::Whole(Box::new(m))
            }
            t => return Err(d.err(format!("bad metadata tag {t}"))),
        };
        let msr = match section_tag(d, "MSR")? {
            SectionChange::Unchanged => SectionChange::Unchanged,
            SectionChange::Removed => SectionChange::Removed,
            SectionChange::Changed(()) => {
                let mut sub = Dec::new(d.bytes()?);
                let d = &mut sub;
                let selection = d.opt_str()?.map(str::to_string);
                let removed_cpus = get_indices(d)?;
                let n = d.count(2)?;
                if n > MAX_CPUS {
                    return Err(d.err(format!("{n} CPUs: more than {MAX_CPUS}")));
                }
                let mut cpus = Vec::with_capacity(n);
                let mut prev = 0u32;
                for _ in 0..n {
                    let cpu = get_index(d, &mut prev)?;
                    let mut entry = Dec::new(d.bytes()?);
                    let d = &mut entry;
                    let flags = d.u8()?;
                    let both = CPU_PHYS_NONE | CPU_PHYS_SOME;
                    let file = CPU_REGULAR_FILE | CPU_NOT_REGULAR_FILE;
                    if flags & both == both || flags & file == file {
                        return Err(d.err(format!("bad CPU flags {flags:#04x}")));
                    }
                    let phys_bits = if flags & CPU_PHYS_SOME != 0 {
                        Some(Some(d.u8()?))
                    } else if flags & CPU_PHYS_NONE != 0 {
                        Some(None)
                    } else {
                        None
                    };
                    let regular_file = if flags & CPU_REGULAR_FILE != 0 {
                        Some(true)
                    } else if flags & CPU_NOT_REGULAR_FILE != 0 {
                        Some(false)
                    } else {
                        None
                    };
                    let mut set = Vec::new();
                    if flags & CPU_SET != 0 {
                        let n = d.count(2)?;
                        set.reserve_exact(n);
                        let mut p = 0u32;
                        for _ in 0..n {
                            let i = get_index(d, &mut p)?;
                            set.push((i, d.i()? as u64));
                        }
                    }
                    let removed = if flags & CPU_REMOVED != 0 {
                        get_indices(d)?
                    } else {
                        Vec::new()
                    };
                    let mut unreadable_set = Vec::new();
                    if flags & CPU_UNREADABLE_SET != 0 {
                        let n = d.count(2)?;
                        unreadable_set.reserve_exact(n);
                        let mut p = 0u32;
                        for _ in 0..n {
                            let i = get_index(d, &mut p)?;
                            unreadable_set.push((i, d.str()?.to_string()));
                        }
                    }
                    let unreadable_removed = if flags & CPU_UNREADABLE_REMOVED != 0 {
                        get_indices(d)?
                    } else {
                        Vec::new()
                    };
                    d.finish()?;
                    cpus.push((
                        cpu,
                        CpuDelta {
                            phys_bits,
                            regular_file,
                            set,
                            removed,
                            unreadable_set,
                            unreadable_removed,
                        },
                    ));
                }
                d.finish()?;
                SectionChange::Changed(MsrDelta {
                    selection,
                    removed_cpus,
                    cpus,
                })
            }
        };
        let mtrr = match section_tag(d, "MTRR")? {
            SectionChange::Unchanged => SectionChange::Unchanged,
            SectionChange::Removed => SectionChange::Removed,
            SectionChange::Changed(()) => SectionChange::Changed(MtrrSection {
                phys_bits: d.opt_u8()?,
                proc_mtrr: d.opt_str()?.map(str::to_string),
            }),
        };
        let pci = match section_tag(d, "PCI")? {
            SectionChange::Unchanged => SectionChange::Unchanged,
            SectionChange::Removed => SectionChange::Removed,
            SectionChange::Changed(()) => {
                let n = d.count(4)?;
                let mut removed = Vec::with_capacity(n);
                for _ in 0..n {
                    removed.push(get_bdf(d)?);
                }
                let n = d.count(6)?;
                if n > MAX_PCI_DEVICES {
                    return Err(d.err(format!("{n} PCI devices: more than {MAX_PCI_DEVICES}")));
                }
                let mut devices = Vec::with_capacity(n);
                for _ in 0..n {
                    let bdf = get_bdf(d)?;
                    let ident = match d.u8()? {
                        0 => None,
                        1 => Some(Ident {
                            vendor: d.u16()?,
                            device: d.u16()?,
                            class: d.u32()?,
                            revision: d.u8()?,
                            subsystem_vendor: get_opt_u16(d)?,
                            subsystem_device: get_opt_u16(d)?,
                            driver: d.opt_str()?.map(str::to_string),
                            config_note: d.opt_str()?.map(str::to_string),
                            vanished: match d.u8()? {
                                0 => false,
                                1 => true,
                                t => return Err(d.err(format!("bad flag {t}"))),
                            },
                        }),
                        t => return Err(d.err(format!("bad device tag {t}"))),
                    };
                    let config = match d.u8()? {
                        0 => ConfigChange::Unchanged,
                        1 => ConfigChange::Runs(get_runs(d)?),
                        2 => {
                            let len = d.u16()?;
                            if usize::from(len) > MAX_CONFIG {
                                return Err(
                                    d.err(format!("config length {len} is larger than 4096"))
                                );
                            }
                            ConfigChange::Resized {
                                len,
                                runs: get_runs(d)?,
                            }
                        }
                        t => return Err(d.err(format!("bad config tag {t}"))),
                    };
                    devices.push((bdf, DeviceDelta { ident, config }));
                }
                SectionChange::Changed(PciDelta { removed, devices })
            }
        };
        Ok(Delta {
            meta,
            msr,
            mtrr,
            pci,
        })
    }
}

fn section_tag(d: &mut Dec, name: &str) -> Result<SectionChange<()>, ParseError> {
    match d.u8()? {
        UNCHANGED => Ok(SectionChange::Unchanged),
        REMOVED => Ok(SectionChange::Removed),
        CHANGED => Ok(SectionChange::Changed(())),
        t => Err(d.err(format!("bad {name} section tag {t}"))),
    }
}

/// A register a "when did this last change" query asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    Msr { cpu: u32, index: u32 },
    Pci { bdf: Bdf, offset: u16 },
}

impl Delta {
    pub fn touches(&self, q: Query) -> bool {
        match q {
            Query::Msr { cpu, index } => self.touches_msr(cpu, index),
            Query::Pci { bdf, offset } => self.touches_pci(bdf, offset),
        }
    }

    /// [`Delta::touches`] on an encoded delta, without building it: no allocation, and
    /// an MSR query stops at its CPU, a PCI query skips the MSR section. Agrees with
    /// decoding then asking for every delta regdrift writes (CPUs in ascending order; a
    /// test holds them together).
    pub(crate) fn encoded_touches(buf: &[u8], q: Query) -> Result<bool, ParseError> {
        let mut d = Dec::new(buf);
        match d.u8()? {
            0 => {}
            1 => {
                d.opt_str()?;
            }
            2 => {
                d.str()?;
            }
            t => return Err(d.err(format!("bad metadata tag {t}"))),
        }
        let (qcpu, qindex) = match q {
            Query::Msr { cpu, index } => (Some(cpu), index),
            Query::Pci { .. } => (None, 0),
        };
        match section_tag(&mut d, "MSR")? {
            SectionChange::Unchanged => {}
            SectionChange::Removed => {
                if qcpu.is_some() {
                    return Ok(true);
                }
            }
            SectionChange::Changed(()) => {
                let body = d.bytes()?;
                if let Some(qcpu) = qcpu {
                    return msr_body_touches(body, qcpu, qindex);
                }
            }
        }
        let Query::Pci { bdf, offset } = q else {
            return Ok(false);
        };
        if let SectionChange::Changed(()) = section_tag(&mut d, "MTRR")? {
            d.opt_u8()?;
            d.opt_str()?;
        }
        pci_touches(&mut d, bdf, offset)
    }
}

/// Whether an encoded MSR section change touches MSR `qindex` on `qcpu`. CPUs come in
/// ascending order, so the walk stops at the first CPU past `qcpu`.
fn msr_body_touches(body: &[u8], qcpu: u32, qindex: u32) -> Result<bool, ParseError> {
    let mut d = Dec::new(body);
    d.opt_str()?;
    let n = d.count(1)?;
    let mut prev = 0;
    for _ in 0..n {
        if get_index(&mut d, &mut prev)? == qcpu {
            return Ok(true);
        }
    }
    let n = d.count(2)?;
    let mut prev = 0;
    for _ in 0..n {
        let cpu = get_index(&mut d, &mut prev)?;
        if cpu > qcpu {
            return Ok(false);
        }
        let entry = d.bytes()?;
        if cpu != qcpu {
            continue;
        }
        let mut d = Dec::new(entry);
        let flags = d.u8()?;
        if flags & CPU_PHYS_SOME != 0 {
            d.u8()?;
        }
        let mut hit = false;
        if flags & CPU_SET != 0 {
            let n = d.count(2)?;
            let mut p = 0;
            for _ in 0..n {
                hit |= get_index(&mut d, &mut p)? == qindex;
                d.i()?;
            }
        }
        if flags & CPU_REMOVED != 0 {
            let n = d.count(1)?;
            let mut p = 0;
            for _ in 0..n {
                hit |= get_index(&mut d, &mut p)? == qindex;
            }
        }
        if flags & CPU_UNREADABLE_SET != 0 {
            let n = d.count(2)?;
            let mut p = 0;
            for _ in 0..n {
                hit |= get_index(&mut d, &mut p)? == qindex;
                d.str()?;
            }
        }
        if flags & CPU_UNREADABLE_REMOVED != 0 {
            let n = d.count(1)?;
            let mut p = 0;
            for _ in 0..n {
                hit |= get_index(&mut d, &mut p)? == qindex;
            }
        }
        return Ok(hit);
    }
    Ok(false)
}

/// Whether the encoded PCI section change at `d` touches config byte `offset` of `bdf`.
fn pci_touches(d: &mut Dec, bdf: Bdf, offset: u16) -> Result<bool, ParseError> {
    match section_tag(d, "PCI")? {
        SectionChange::Unchanged => Ok(false),
        SectionChange::Removed => Ok(true),
        SectionChange::Changed(()) => {
            let n = d.count(4)?;
            for _ in 0..n {
                if get_bdf(d)? == bdf {
                    return Ok(true);
                }
            }
            let n = d.count(6)?;
            for _ in 0..n {
                let here = get_bdf(d)? == bdf;
                match d.u8()? {
                    0 => {}
                    1 => {
                        d.u16()?;
                        d.u16()?;
                        d.u32()?;
                        d.u8()?;
                        get_opt_u16(d)?;
                        get_opt_u16(d)?;
                        d.opt_str()?;
                        d.opt_str()?;
                        d.u8()?;
                    }
                    t => return Err(d.err(format!("bad device tag {t}"))),
                }
                let resized = match d.u8()? {
                    0 => continue,
                    1 => false,
                    2 => {
                        d.u16()?;
                        true
                    }
                    t => return Err(d.err(format!("bad config tag {t}"))),
                };
                if here && resized {
                    return Ok(true);
                }
                let n = d.count(2)?;
                let mut end = 0u64;
                for _ in 0..n {
                    let start = end.saturating_add(d.u()?);
                    let len = d.bytes()?.len() as u64;
                    end = start.saturating_add(len);
                    if here && (start..end).contains(&u64::from(offset)) {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Origin;

    fn snap() -> Snapshot {
        let mut s = Snapshot::new(Origin::Synthetic {
            generator: "test".into(),
        });
        s.meta.captured_at = Some("2024-05-01T10:00:00Z".into());
        let mut cpus = BTreeMap::new();
        for cpu in 0..4 {
            let mut c = CpuMsrs::default();
            c.values.insert(0x10, 1_000_000 + u64::from(cpu));
            c.values.insert(0x1a0, 0x850089);
            c.values.insert(0xc000_0080, 0xd01);
            c.unreadable.insert(0x1fc, "EIO".into());
            c.phys_bits = Some(46);
            cpus.insert(cpu, c);
        }
        s.msr = Some(MsrSection {
            selection: "known".into(),
            cpus,
        });
        s.mtrr = Some(MtrrSection {
            phys_bits: Some(46),
            proc_mtrr: Some(
                "reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n".into(),
            ),
        });
        let mut config = vec![0u8; 4096];
        config[..4].copy_from_slice(&[0x86, 0x80, 0x29, 0x3b]);
        config[0x100] = 1;
        let mut devices = BTreeMap::new();
        devices.insert(
            "00:1f.2".parse().unwrap(),
            PciDevice {
                vendor: 0x8086,
                device: 0x3b29,
                class: 0x010601,
                revision: 6,
                driver: Some("ahci".into()),
                config,
                ..PciDevice::default()
            },
        );
        s.pci = Some(PciSection { devices });
        s
    }

    fn round_trip(a: &Snapshot, b: &Snapshot) -> Delta {
        let d = Delta::between(a, b);
        let mut buf = Vec::new();
        d.encode(&mut buf);
        let back = Delta::decode(&buf).unwrap();
        assert_eq!(back, d);
        let mut s = a.clone();
        back.apply(&mut s).unwrap();
        assert_eq!(&s, b);
        d
    }

    #[test]
    fn whole_snapshot_is_a_delta_against_empty() {
        let s = snap();
        round_trip(&empty(), &s);
        round_trip(&s, &empty());
    }

    #[test]
    fn counter_change_is_small() {
        let a = snap();
        let mut b = a.clone();
        b.meta.captured_at = Some("2024-05-01T10:00:01Z".into());
        for c in b.msr.as_mut().unwrap().cpus.values_mut() {
            *c.values.get_mut(&0x10).unwrap() += 2_400_000_000;
        }
        let d = round_trip(&a, &b);
        let mut buf = Vec::new();
        d.encode(&mut buf);
        // 4 CPUs × (gap + tags + index + 5-byte difference) plus the time.
        assert!(buf.len() < 80, "{} bytes", buf.len());
        assert!(d.touches_msr(2, 0x10));
        assert!(!d.touches_msr(2, 0x1a0));
        assert!(!d.touches_pci("00:1f.2".parse().unwrap(), 0));
        assert_eq!(d.summary().to_string(), "4 MSR values on 4 CPUs");
    }

    #[test]
    fn every_kind_of_change_round_trips() {
        let a = snap();
        let mut b = a.clone();
        b.meta.kernel_release = Some("6.8.0".into());
        let msr = b.msr.as_mut().unwrap();
        msr.selection = "scan".into();
        msr.cpus.remove(&3);
        msr.cpus.insert(7, CpuMsrs::default());
        let c0 = msr.cpus.get_mut(&0).unwrap();
        c0.values.remove(&0x1a0);
        c0.values.insert(0x1fc, 0x2);
        c0.values.insert(0x10, 0);
        c0.unreadable.remove(&0x1fc);
        c0.unreadable.insert(0x3a, "short read".into());
        c0.phys_bits = None;
        c0.regular_file = true;
        b.msr
            .as_mut()
            .unwrap()
            .cpus
            .get_mut(&1)
            .unwrap()
            .unreadable
            .insert(0x1fc, "EPERM".into());
        b.mtrr.as_mut().unwrap().proc_mtrr = None;
        let pci = b.pci.as_mut().unwrap();
        let dev = pci.devices.get_mut(&"00:1f.2".parse().unwrap()).unwrap();
        dev.config[4] = 0x07;
        dev.config[0x7ff] = 0x11;
        dev.config[0xfff] = 0x22;
        dev.driver = None;
        let mut added = dev.clone();
        added.config.truncate(64);
        added.vanished = true;
        pci.devices.insert("0001:02:03.1".parse().unwrap(), added);
        let d = round_trip(&a, &b);
        let bdf: Bdf = "00:1f.2".parse().unwrap();
        assert!(d.touches_pci(bdf, 4));
        assert!(d.touches_pci(bdf, 0xfff));
        assert!(!d.touches_pci(bdf, 0x800));
        assert!(d.touches_msr(3, 0x1a0), "removed CPU");
        assert!(d.touches_msr(0, 0x3a));
        assert!(d.touches_msr(1, 0x1fc));
        let s = d.summary();
        assert!(s.meta && s.mtrr);
        assert_eq!(s.pci_devices, 2);

        // Sections appearing and disappearing.
        let mut c = b.clone();
        c.msr = None;
        c.pci = None;
        c.mtrr = None;
        round_trip(&b, &c);
        round_trip(&c, &b);
        // Config resized.
        let mut e = b.clone();
        e.pci
            .as_mut()
            .unwrap()
            .devices
            .get_mut(&bdf)
            .unwrap()
            .config
            .truncate(256);
        round_trip(&b, &e);
    }

    #[test]
    fn skimming_agrees_with_decoding() {
        let a = snap();
        let mut b = a.clone();
        let msr = b.msr.as_mut().unwrap();
        msr.cpus.remove(&3);
        let c0 = msr.cpus.get_mut(&0).unwrap();
        c0.values.insert(0x10, 5);
        c0.values.remove(&0x1a0);
        c0.unreadable.insert(0x3a, "EIO".into());
        c0.phys_bits = Some(39);
        msr.cpus.get_mut(&1).unwrap().unreadable.remove(&0x1fc);
        b.mtrr = None;
        let bdf: Bdf = "00:1f.2".parse().unwrap();
        let pci = b.pci.as_mut().unwrap();
        let dev = pci.devices.get_mut(&bdf).unwrap();
        dev.config[4] = 7;
        dev.config[9] = 7;
        dev.driver = None;
        let mut other = dev.clone();
        other.config.truncate(256);
        pci.devices.insert("00:02.0".parse().unwrap(), other);
        let pairs = [(&a, &b), (&b, &a), (&empty(), &a), (&a, &empty()), (&a, &a)];
        let bdfs: [Bdf; 3] = [bdf, "00:02.0".parse().unwrap(), "00:03.0".parse().unwrap()];
        for (x, y) in pairs {
            let d = Delta::between(x, y);
            let mut buf = Vec::new();
            d.encode(&mut buf);
            for cpu in 0..5 {
                for index in [0x10, 0x1a0, 0x3a, 0x1fc, 0xc000_0080, 0x99] {
                    let q = Query::Msr { cpu, index };
                    assert_eq!(
                        Delta::encoded_touches(&buf, q).unwrap(),
                        d.touches(q),
                        "{q:?}"
                    );
                }
            }
            for bdf in bdfs {
                for offset in [0, 4, 5, 9, 10, 0x100, 0xfff] {
                    let q = Query::Pci { bdf, offset };
                    assert_eq!(
                        Delta::encoded_touches(&buf, q).unwrap(),
                        d.touches(q),
                        "{q:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn runs_merge_close_changes() {
        let old = vec![0u8; 64];
        let mut new = old.clone();
        new[10] = 1;
        new[12] = 1;
        new[40] = 1;
        let r = runs(Some(&old), &new);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].offset, 10);
        assert_eq!(r[0].bytes, vec![1, 0, 1]);
        assert_eq!(r[1].offset, 40);
        new[63] = 9;
        let r = runs(Some(&old), &new);
        assert_eq!(r.last().unwrap().bytes, vec![9]);
    }

    #[test]
    fn ill_fitting_deltas_are_errors() {
        let a = snap();
        let d = Delta::between(&a, &empty());
        let mut s = empty();
        assert!(d.apply(&mut s).unwrap_err().what.contains("absent"));
        // A run past the device's config length.
        let mut b = a.clone();
        let bdf: Bdf = "00:1f.2".parse().unwrap();
        b.pci
            .as_mut()
            .unwrap()
            .devices
            .get_mut(&bdf)
            .unwrap()
            .config[4000] = 1;
        let d = Delta::between(&a, &b);
        let mut short = a.clone();
        short
            .pci
            .as_mut()
            .unwrap()
            .devices
            .get_mut(&bdf)
            .unwrap()
            .config
            .truncate(64);
        assert!(d
            .apply(&mut short)
            .unwrap_err()
            .what
            .contains("config has 64 bytes"));
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let a = snap();
        let d = Delta::between(&empty(), &a);
        let mut buf = Vec::new();
        d.encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(Delta::decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut x = 0x1234_5678u32;
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bad[i] = x as u8;
            if let Ok(d) = Delta::decode(&bad) {
                let _ = d.apply(&mut empty());
            }
        }
    }
}
