//! The diff engine: two snapshots in, a [`Report`] out. MSRs per (CPU, MSR), grouped over
//! CPUs; MTRRs decoded into ranges; PCI config space per changed byte, folded into the
//! decoded registers and fields; owners from the owner table; volatile noise set apart.

use std::collections::{BTreeMap, BTreeSet};

use crate::decode::{self, mtrr, pci};
use crate::owners::{Owner, OwnerDb, Restores};
use crate::regdb::{RegDb, Volatility};
use crate::report::{Divergence, Drivers, FieldChange, Kind, ModuleDiff, Report, Side, Value};
use crate::snapshot::{Bdf, CpuMsrs, MsrSection, PciDevice, Snapshot};

#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// Keep volatile divergences in the report.
    pub all: bool,
    /// How the report names the two sides (file names, `live`).
    pub baseline_name: String,
    pub current_name: String,
}

/// Compare `baseline` with `current` using the active register database and owner table.
pub fn diff(baseline: &Snapshot, current: &Snapshot, opts: &DiffOptions) -> Report {
    diff_with(baseline, current, opts, RegDb::active(), OwnerDb::active())
}

pub fn diff_with(
    baseline: &Snapshot,
    current: &Snapshot,
    opts: &DiffOptions,
    db: &RegDb,
    owners: &OwnerDb,
) -> Report {
    let mut report = Report {
        format: crate::report::FORMAT,
        version: crate::report::VERSION,
        baseline: side(&opts.baseline_name, baseline),
        current: side(&opts.current_name, current),
        compared: Vec::new(),
        left_out: Vec::new(),
        warnings: Vec::new(),
        modules: modules(baseline, current),
        divergences: Vec::new(),
        hidden_volatile: 0,
    };
    let mut out = Vec::new();
    let ctx = Ctx {
        db,
        owners,
        keep_volatile: opts.all,
        hidden: std::cell::Cell::new(0),
    };

    // What both sides carry.
    let has = |s: &Snapshot, what: &str| match what {
        "msr" => s.msr.as_ref().is_some_and(|m| m.selection != "mtrr"),
        "mtrr" => s.mtrr.is_some() || mtrr_state_any(s),
        "pci" => s.pci.is_some(),
        _ => false,
    };
    for what in ["msr", "mtrr", "pci"] {
        match (has(baseline, what), has(current, what)) {
            (true, true) => report.compared.push(what.to_string()),
            (false, false) => {}
            (b, _) => report.left_out.push(format!(
                "{}: only the {} snapshot carries them",
                match what {
                    "msr" => "MSRs",
                    "mtrr" => "MTRRs",
                    _ => "PCI devices",
                },
                if b { "baseline" } else { "current" }
            )),
        }
    }

    if let (Some(bm), Some(cm)) = (&baseline.msr, &current.msr) {
        ctx.msrs(bm, cm, &mut out, &mut report.left_out);
    }
    if report.compared.iter().any(|c| c == "mtrr") {
        ctx.mtrrs(baseline, current, &mut out, &mut report.warnings);
    }
    if let (Some(bp), Some(cp)) = (&baseline.pci, &current.pci) {
        ctx.pci(
            &bp.devices,
            &cp.devices,
            &mut out,
            &mut report.warnings,
            &mut report.left_out,
        );
    }

    out.sort_by_cached_key(sort_key);
    report.hidden_volatile += ctx.hidden.get();
    for d in out {
        if d.volatile.is_some() && !opts.all {
            report.hidden_volatile += 1;
        } else {
            report.divergences.push(d);
        }
    }
    report
}

fn sort_key(d: &Divergence) -> (Kind, Option<Bdf>, u64, Vec<u32>) {
    let reg = d
        .register
        .as_deref()
        .and_then(|r| r.split(',').next())
        .and_then(crate::snapshot::parse_hex)
        .unwrap_or(0);
    (d.kind, d.bdf, reg, d.cpus.clone())
}

fn side(name: &str, s: &Snapshot) -> Side {
    Side {
        name: name.to_string(),
        description: s.describe(),
        kernel_release: s.meta.kernel_release.clone(),
        boot_id: s.meta.boot_id.clone(),
        captured_at: s.meta.captured_at.clone(),
    }
}

fn modules(b: &Snapshot, c: &Snapshot) -> ModuleDiff {
    match (&b.meta.modules, &c.meta.modules) {
        (Some(bm), Some(cm)) => {
            let bs: BTreeSet<&String> = bm.iter().collect();
            let cs: BTreeSet<&String> = cm.iter().collect();
            ModuleDiff {
                only_baseline: bs.difference(&cs).map(|s| s.to_string()).collect(),
                only_current: cs.difference(&bs).map(|s| s.to_string()).collect(),
            }
        }
        _ => ModuleDiff::default(),
    }
}

fn mtrr_state_any(s: &Snapshot) -> bool {
    s.msr.as_ref().is_some_and(|m| {
        m.cpus
            .values()
            .any(|c| c.values.contains_key(&mtrr::MTRRCAP))
    })
}

/// Is `index` one of the MTRR MSRs reported as MTRR divergences, on CPUs with `vcnt`
/// variable ranges? Past the last PHYSMASK are other registers (IA32_PAT 0x277,
/// PERF_GLOBAL_CTRL 0x38F…), which are reported as MSRs.
fn is_mtrr_msr(index: u32, vcnt: u32) -> bool {
    index == mtrr::MTRRCAP
        || index == mtrr::MTRR_DEF_TYPE
        || (mtrr::PHYSBASE0..mtrr::PHYSBASE0 + 2 * vcnt.min(mtrr::MAX_VCNT)).contains(&index)
        || mtrr::FIXED.iter().any(|f| f.0 == index)
}

/// The largest variable-range count (MTRRcap VCNT, bits 7:0) any CPU of either side reports.
fn vcnt_of(sections: &[&MsrSection]) -> u32 {
    sections
        .iter()
        .flat_map(|m| m.cpus.values())
        .filter_map(|c| c.values.get(&mtrr::MTRRCAP))
        .map(|cap| (cap & 0xff) as u32)
        .max()
        .unwrap_or(0)
}

/// Indices unreadable on a side and read on neither, ascending.
fn unread_only(b: &CpuMsrs, c: &CpuMsrs) -> BTreeSet<u32> {
    b.unreadable
        .keys()
        .chain(c.unreadable.keys())
        .copied()
        .filter(|i| !b.values.contains_key(i) && !c.values.contains_key(i))
        .collect()
}

/// A snapshot's value of an MSR on a CPU: the value, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Value(u64),
    Unreadable(String),
    /// Not in the selection that snapshot read.
    NotRead,
}

fn slot(section: &MsrSection, cpu: &CpuMsrs, index: u32) -> Slot {
    if let Some(&v) = cpu.values.get(&index) {
        Slot::Value(v)
    } else if let Some(why) = cpu.unreadable.get(&index) {
        Slot::Unreadable(why.clone())
    } else if section.selection == "scan" {
        Slot::Unreadable("faulted during the scan".into())
    } else {
        Slot::NotRead
    }
}

struct Ctx<'a> {
    db: &'a RegDb,
    owners: &'a OwnerDb,
    /// `--all`: volatile divergences are built and shown. Without it, a change of volatile
    /// bits only is counted here rather than decoded and annotated for nothing.
    keep_volatile: bool,
    hidden: std::cell::Cell<usize>,
}

impl Ctx<'_> {
    fn owners_msr(&self, index: u32, changed: u64) -> Vec<Owner> {
        self.owners
            .for_msr(index, changed)
            .into_iter()
            .cloned()
            .collect()
    }

    fn field_changes(&self, index: u32, b: u64, c: u64, mask: u64) -> Vec<FieldChange> {
        let fb = self.db.decode_msr(index, b);
        let fc = self.db.decode_msr(index, c);
        changed_fields(&fb, &fc, mask)
    }

    fn msrs(
        &self,
        bm: &MsrSection,
        cm: &MsrSection,
        out: &mut Vec<Divergence>,
        left_out: &mut Vec<String>,
    ) {
        let bcpus: BTreeSet<u32> = bm.cpus.keys().copied().collect();
        let ccpus: BTreeSet<u32> = cm.cpus.keys().copied().collect();
        let only_b: Vec<u32> = bcpus.difference(&ccpus).copied().collect();
        let only_c: Vec<u32> = ccpus.difference(&bcpus).copied().collect();
        if !only_b.is_empty() {
            left_out.push(format!(
                "MSRs of cpus {} (in the baseline only)",
                crate::report::cpu_list(&only_b)
            ));
        }
        if !only_c.is_empty() {
            left_out.push(format!(
                "MSRs of cpus {} (in the current snapshot only)",
                crate::report::cpu_list(&only_c)
            ));
        }
        // (index, baseline slot, current slot) -> cpus
        let mut groups: BTreeMap<(u32, Slot, Slot), Vec<u32>> = BTreeMap::new();
        let mut not_compared = 0usize;
        for cpu in bcpus.intersection(&ccpus) {
            let (b, c) = (&bm.cpus[cpu], &cm.cpus[cpu]);
            if b.values == c.values && b.unreadable == c.unreadable {
                continue;
            }
            // `known`: both values, when the merge join below has them at hand.
            let mut compare = |index: u32, known: Option<(u64, u64)>| {
                let (sb, sc) = match known {
                    Some((vb, vc)) => (Slot::Value(vb), Slot::Value(vc)),
                    None => (slot(bm, b, index), slot(cm, c, index)),
                };
                if sb == sc {
                    return;
                }
                if sb == Slot::NotRead || sc == Slot::NotRead {
                    not_compared += 1;
                    return;
                }
                if matches!((&sb, &sc), (Slot::Unreadable(_), Slot::Unreadable(_))) {
                    return;
                }
                groups.entry((index, sb, sc)).or_default().push(*cpu);
            };
            // The values. Both sides nearly always read the same MSRs: walk them in step and
            // keep the differing values; only when the index sets differ, merge join.
            if b.values.len() == c.values.len() {
                let mut differ = Vec::new();
                let same_keys = b
                    .values
                    .iter()
                    .zip(c.values.iter())
                    .all(|((kb, vb), (kc, vc))| {
                        if vb != vc {
                            differ.push((*kb, *vb, *vc));
                        }
                        kb == kc
                    });
                if same_keys {
                    for (index, vb, vc) in differ {
                        compare(index, Some((vb, vc)));
                    }
                    // The same MSRs unreadable on both sides compare to nothing.
                    if !b.unreadable.keys().eq(c.unreadable.keys()) {
                        for index in unread_only(b, c) {
                            compare(index, None);
                        }
                    }
                    continue;
                }
            }
            // A merge join of the two sorted maps. An index read on both sides with the
            // same value needs nothing more.
            let (mut bi, mut ci) = (b.values.iter().peekable(), c.values.iter().peekable());
            loop {
                match (bi.peek(), ci.peek()) {
                    (Some(&(&kb, vb)), Some(&(&kc, vc))) => match kb.cmp(&kc) {
                        std::cmp::Ordering::Equal => {
                            if vb != vc {
                                compare(kb, Some((*vb, *vc)));
                            }
                            bi.next();
                            ci.next();
                        }
                        std::cmp::Ordering::Less => {
                            compare(kb, None);
                            bi.next();
                        }
                        std::cmp::Ordering::Greater => {
                            compare(kc, None);
                            ci.next();
                        }
                    },
                    (Some(&(&kb, _)), None) => {
                        compare(kb, None);
                        bi.next();
                    }
                    (None, Some(&(&kc, _))) => {
                        compare(kc, None);
                        ci.next();
                    }
                    (None, None) => break,
                }
            }
            for index in unread_only(b, c) {
                compare(index, None);
            }
        }
        if not_compared > 0 {
            left_out.push(format!(
                "{not_compared} (CPU, MSR) pairs read in only one snapshot's selection"
            ));
        }
        let regular = bm
            .cpus
            .values()
            .chain(cm.cpus.values())
            .any(|c| c.regular_file);
        if regular {
            let folded = self.fold_overlaps(&mut groups);
            if folded > 0 {
                left_out.push(format!(
                    "{folded} MSR divergences read through the overlapping bytes of a regular \
                     file standing in for an MSR device, attributed to the MSR that explains them"
                ));
            }
        }
        // Asymmetry: a register whose CPUs agree in the baseline but not in the current;
        // worked out for the registers whose divergences are shown, once each.
        let vcnt = vcnt_of(&[bm, cm]);
        let mut asym: BTreeMap<u32, Option<String>> = BTreeMap::new();
        for ((index, sb, sc), cpus) in groups {
            if is_mtrr_msr(index, vcnt) && !mtrr_fixed_or_ctl(index) {
                continue; // variable ranges are reported decoded, as MTRR ranges
            }
            if let (Slot::Value(b), Slot::Value(c), false) = (&sb, &sc, self.keep_volatile) {
                if (b ^ c) & !self.db.volatile_mask(index) == 0 {
                    // Volatile bits only: a hidden divergence (as built below, it would be).
                    self.hidden.set(self.hidden.get() + 1);
                    continue;
                }
            }
            let kind = if is_mtrr_msr(index, vcnt) {
                Kind::Mtrr
            } else {
                Kind::Msr
            };
            let mut d = Divergence::new(kind, self.db.msr_name(index));
            d.cpus = cpus;
            d.register = Some(format!("{index:#x}"));
            d.width = Some(64);
            match (&sb, &sc) {
                (Slot::Value(b), Slot::Value(c)) => {
                    let changed = b ^ c;
                    let vmask = self.db.volatile_mask(index);
                    let sig = changed & !vmask;
                    let shown = if sig == 0 {
                        d.volatile = self
                            .db
                            .msr(index)
                            .and_then(|def| def.volatility_of(changed))
                            .or(Some(Volatility::Counter));
                        changed
                    } else {
                        sig
                    };
                    d.baseline = Some(Value::Num(*b));
                    d.current = Some(Value::Num(*c));
                    d.changed_bits = Some(shown);
                    d.fields = self.field_changes(index, *b, *c, shown);
                    d.owners = self.owners_msr(index, shown);
                }
                (Slot::Value(b), Slot::Unreadable(why)) => {
                    d.baseline = Some(Value::Num(*b));
                    d.notes
                        .push(format!("readable only in the baseline (now {why})"));
                    d.owners = self.owners_msr(index, u64::MAX);
                }
                (Slot::Unreadable(why), Slot::Value(c)) => {
                    d.current = Some(Value::Num(*c));
                    d.notes
                        .push(format!("readable only in the current snapshot (was {why})"));
                    d.owners = self.owners_msr(index, u64::MAX);
                }
                _ => continue,
            }
            if let Some(a) = asym
                .entry(index)
                .or_insert_with(|| asymmetry(bm, cm, index))
            {
                d.notes.push(a.clone());
            }
            out.push(d);
        }
    }

    /// In a regular file standing in for an MSR device, MSR `i` is the 8 bytes at offset
    /// `i`, so one changed byte shows up in up to eight MSRs. Keep, for each run of changed
    /// file bytes, the MSRs that explain it best (a known register whose named fields or
    /// owner cover the change, starting closest below the first changed byte); drop the
    /// others. Returns how many were dropped.
    fn fold_overlaps(&self, groups: &mut BTreeMap<(u32, Slot, Slot), Vec<u32>>) -> usize {
        // Changed file bytes of each value change, per CPU set.
        let mut by_cpus: BTreeMap<Vec<u32>, Vec<(u32, u64, u64)>> = BTreeMap::new();
        for ((index, sb, sc), cpus) in groups.iter() {
            if let (Slot::Value(b), Slot::Value(c)) = (sb, sc) {
                by_cpus
                    .entry(cpus.clone())
                    .or_default()
                    .push((*index, *b, *c));
            }
        }
        let mut drop: Vec<(u32, Slot, Slot)> = Vec::new();
        for changes in by_cpus.values() {
            if changes.len() < 2 {
                continue;
            }
            let changed_offsets = |&(i, b, c): &(u32, u64, u64)| -> Vec<u64> {
                (0..8u64)
                    .filter(|k| ((b ^ c) >> (k * 8)) & 0xff != 0)
                    .map(|k| i as u64 + k)
                    .collect()
            };
            let mut uncovered: BTreeSet<u64> = changes.iter().flat_map(changed_offsets).collect();
            let mut keep: BTreeSet<u32> = BTreeSet::new();
            while let Some(&o) = uncovered.iter().next() {
                let best = changes
                    .iter()
                    .filter(|(i, _, _)| (*i as u64) <= o && o < *i as u64 + 8)
                    .max_by_key(|&&(i, b, c)| {
                        let changed = b ^ c;
                        let def = self.db.msr(i);
                        let named = def.is_some_and(|d| {
                            d.volatile.is_some()
                                || d.fields.iter().fold(0u64, |m, f| m | f.mask) & changed
                                    == changed
                        });
                        let owned = !self.owners.for_msr(i, changed).is_empty();
                        (named, def.is_some(), owned, i)
                    });
                match best {
                    Some(&(i, _, _)) => {
                        keep.insert(i);
                        for k in 0..8 {
                            uncovered.remove(&(i as u64 + k));
                        }
                    }
                    None => {
                        uncovered.remove(&o);
                    }
                }
            }
            for &(i, b, c) in changes {
                if !keep.contains(&i) {
                    drop.push((i, Slot::Value(b), Slot::Value(c)));
                }
            }
        }
        for k in &drop {
            groups.remove(k);
        }
        drop.len()
    }

    fn mtrrs(
        &self,
        b: &Snapshot,
        c: &Snapshot,
        out: &mut Vec<Divergence>,
        warnings: &mut Vec<String>,
    ) {
        let proc_lines = |s: &Snapshot, which: &str, warnings: &mut Vec<String>| {
            let text = s.mtrr.as_ref().and_then(|m| m.proc_mtrr.as_deref())?;
            match mtrr::parse_proc_mtrr(text) {
                Ok(l) => Some(l),
                Err(e) => {
                    warnings.push(format!("{which}: /proc/mtrr not understood: {e}"));
                    None
                }
            }
        };
        let (bs, cs) = (mtrr::cpu_states(b), mtrr::cpu_states(c));
        let (bp, cp) = (
            proc_lines(b, "baseline", warnings),
            proc_lines(c, "current", warnings),
        );
        // Cross-check each side's /proc/mtrr against its decoded MSRs (first CPU).
        for (which, st, pl) in [("baseline", &bs, &bp), ("current", &cs, &cp)] {
            if let (Some((_, st)), Some(pl)) = (st.iter().next(), pl) {
                for w in mtrr::cross_check(st, pl) {
                    warnings.push(format!("{which}: {w}"));
                }
            }
        }
        let mut explained_regs = BTreeSet::new();
        if !bs.is_empty() && !cs.is_empty() {
            // (reg, baseline range, current range) -> cpus
            type Key = (u32, Option<mtrr::VarRange>, Option<mtrr::VarRange>);
            let mut groups: BTreeMap<Key, Vec<u32>> = BTreeMap::new();
            for (cpu, sb) in &bs {
                let Some(sc) = cs.get(cpu) else { continue };
                let regs: BTreeSet<u32> = sb
                    .variable
                    .iter()
                    .chain(sc.variable.iter())
                    .map(|v| v.reg)
                    .collect();
                for reg in regs {
                    let rb = sb.variable.iter().find(|v| v.reg == reg).cloned();
                    let rc = sc.variable.iter().find(|v| v.reg == reg).cloned();
                    if rb != rc {
                        groups.entry((reg, rb, rc)).or_default().push(*cpu);
                    }
                }
            }
            for ((reg, rb, rc), cpus) in groups {
                explained_regs.insert(reg);
                let base_i = mtrr::PHYSBASE0 + 2 * reg;
                let mask_i = base_i + 1;
                let mut d = Divergence::new(Kind::Mtrr, format!("variable range {reg}"));
                let raw = |s: &Snapshot, cpu: u32, i: u32| {
                    s.msr
                        .as_ref()
                        .and_then(|m| m.cpus.get(&cpu))
                        .and_then(|c| c.values.get(&i).copied())
                        .unwrap_or(0)
                };
                let cpu0 = cpus[0];
                let mut changed = 0;
                for i in [base_i, mask_i] {
                    let (vb, vc) = (raw(b, cpu0, i), raw(c, cpu0, i));
                    changed |= vb ^ vc;
                    if vb != vc {
                        d.fields.push(FieldChange {
                            name: self.db.msr_name(i),
                            bits: "63:0".into(),
                            baseline: vb,
                            current: vc,
                            baseline_meaning: None,
                            current_meaning: None,
                        });
                    }
                }
                d.cpus = cpus;
                d.register = Some(format!("{base_i:#x},{mask_i:#x}"));
                let describe = |r: &Option<mtrr::VarRange>| {
                    Value::Text(r.as_ref().map_or("unused".into(), |r| r.describe()))
                };
                d.baseline = Some(describe(&rb));
                d.current = Some(describe(&rc));
                d.notes.push(match (&rb, &rc) {
                    (None, Some(r)) => format!("new {} range", mtrr::type_name(r.mem_type)),
                    (Some(r), None) => format!("{} range removed", mtrr::type_name(r.mem_type)),
                    (Some(x), Some(y)) if x.mem_type != y.mem_type => format!(
                        "type changed {} -> {}",
                        mtrr::type_name(x.mem_type),
                        mtrr::type_name(y.mem_type)
                    ),
                    _ => "range changed".into(),
                });
                for (which, pl) in [("baseline", &bp), ("current", &cp)] {
                    if let Some(l) = pl.as_ref().and_then(|pl| pl.iter().find(|l| l.reg == reg)) {
                        d.notes.push(format!(
                            "{which} /proc/mtrr: reg{:02}: base={:#x}, size={}, count={}: {}",
                            l.reg,
                            l.base,
                            mtrr::human_size(l.size),
                            l.count,
                            l.type_name
                        ));
                    }
                }
                d.owners = self.owners_msr(base_i, changed);
                out.push(d);
            }
        }
        // /proc/mtrr lines the MSRs could not explain (no MSRs on a side, or a mismatch).
        if let (Some(bl), Some(cl)) = (&bp, &cp) {
            let regs: BTreeSet<u32> = bl.iter().chain(cl.iter()).map(|l| l.reg).collect();
            for reg in regs {
                if explained_regs.contains(&reg) {
                    continue;
                }
                let lb = bl.iter().find(|l| l.reg == reg);
                let lc = cl.iter().find(|l| l.reg == reg);
                if lb == lc {
                    continue;
                }
                let fmt = |l: Option<&mtrr::ProcMtrrLine>| {
                    Value::Text(l.map_or("(no line)".into(), |l| {
                        format!(
                            "base={:#x} size={} count={}: {}",
                            l.base,
                            mtrr::human_size(l.size),
                            l.count,
                            l.type_name
                        )
                    }))
                };
                let mut d = Divergence::new(Kind::ProcMtrr, format!("/proc/mtrr reg{reg:02}"));
                d.baseline = Some(fmt(lb));
                d.current = Some(fmt(lc));
                d.owners = self.owners_msr(mtrr::PHYSBASE0 + 2 * reg, u64::MAX);
                if !bs.is_empty() && !cs.is_empty() {
                    d.notes
                        .push("the MTRR MSRs do not show this change (see warnings)".into());
                }
                out.push(d);
            }
        }
    }

    fn pci(
        &self,
        bd: &BTreeMap<Bdf, PciDevice>,
        cd: &BTreeMap<Bdf, PciDevice>,
        out: &mut Vec<Divergence>,
        warnings: &mut Vec<String>,
        left_out: &mut Vec<String>,
    ) {
        let all: BTreeSet<&Bdf> = bd.keys().chain(cd.keys()).collect();
        for bdf in all {
            match (bd.get(bdf), cd.get(bdf)) {
                (Some(b), None) => out.push(device_change(
                    *bdf,
                    Some(b),
                    None,
                    "present only in the baseline",
                )),
                (None, Some(c)) => out.push(device_change(
                    *bdf,
                    None,
                    Some(c),
                    "present only in the current snapshot",
                )),
                (Some(b), Some(c)) => {
                    if (b.vendor, b.device) != (c.vendor, c.device) {
                        out.push(device_change(
                            *bdf,
                            Some(b),
                            Some(c),
                            "a different device at this address",
                        ));
                        continue;
                    }
                    if b.driver != c.driver {
                        let mut d = device_change(*bdf, Some(b), Some(c), "bound driver changed");
                        d.baseline = Some(Value::Text(
                            b.driver.clone().unwrap_or_else(|| "(none)".into()),
                        ));
                        d.current = Some(Value::Text(
                            c.driver.clone().unwrap_or_else(|| "(none)".into()),
                        ));
                        out.push(d);
                    }
                    if b.config != c.config {
                        self.pci_config(*bdf, b, c, out, warnings, left_out);
                    }
                }
                (None, None) => {}
            }
        }
    }

    fn pci_config(
        &self,
        bdf: Bdf,
        b: &PciDevice,
        c: &PciDevice,
        out: &mut Vec<Divergence>,
        warnings: &mut Vec<String>,
        left_out: &mut Vec<String>,
    ) {
        let n = b.config.len().min(c.config.len());
        if b.config.len() != c.config.len() {
            left_out.push(format!(
                "{bdf}: config bytes {n:#x}.. ({} bytes in the baseline, {} in the current)",
                b.config.len(),
                c.config.len()
            ));
        }
        let (lb, lc) = (pci::layout(&b.config), pci::layout(&c.config));
        for (which, l) in [("baseline", &lb), ("current", &lc)] {
            for p in &l.problems {
                warnings.push(format!("{bdf} ({which}): {p}"));
            }
        }
        // Changed bytes, folded into the registers (or dwords) that hold them.
        let mut regs: BTreeMap<u16, pci::PciReg> = BTreeMap::new();
        let mut i = 0;
        while i < n {
            // Skip equal 16-byte blocks quickly.
            if i + 16 <= n && b.config[i..i + 16] == c.config[i..i + 16] {
                i += 16;
                continue;
            }
            if b.config[i] != c.config[i] {
                let off = i as u16;
                let reg = lb
                    .reg_at(off)
                    .or_else(|| lc.reg_at(off))
                    .cloned()
                    .unwrap_or_else(|| raw_dword(&lb, off));
                regs.entry(reg.offset).or_insert(reg);
            }
            i += 1;
        }
        let drivers = Drivers {
            baseline: b.driver.clone(),
            current: c.driver.clone(),
        };
        for reg in regs.into_values() {
            let (Some(vb), Some(vc)) = (
                pci::reg_value(&reg, &b.config),
                pci::reg_value(&reg, &c.config),
            ) else {
                continue;
            };
            let changed = vb ^ vc;
            if changed == 0 {
                continue;
            }
            let mut d = Divergence::new(Kind::Pci, reg.name.clone());
            d.bdf = Some(bdf);
            d.register = Some(format!("{:#x}", reg.offset));
            d.group = Some(reg.group.clone());
            d.width = Some(reg.width * 8);
            d.baseline = Some(Value::Num(vb));
            d.current = Some(Value::Num(vc));
            d.changed_bits = Some(changed);
            d.volatile = reg.volatile;
            d.fields = changed_fields(
                &pci::decode_reg(&reg, vb),
                &pci::decode_reg(&reg, vc),
                changed,
            );
            d.owners = self
                .owners
                .for_pci(reg.key, changed)
                .into_iter()
                .cloned()
                .collect();
            if d.owners.is_empty() || reg.key == "device.specific" {
                if let Some(drv) = c.driver.as_ref().or(b.driver.as_ref()) {
                    d.owners.push(Owner {
                        driver: crate::sanitize::inert(drv).into_owned(),
                        source: "(the bound driver)".into(),
                        function: "-".into(),
                        restores: Restores::Unknown,
                        note: "bound to this device; device-specific registers are the driver's"
                            .into(),
                    });
                }
            }
            d.drivers = Some(drivers.clone());
            out.push(d);
        }
    }
}

/// The MSRs of the MTRR set that are reported register by register (with kind mtrr):
/// MTRRcap, MTRRdefType and the fixed ranges.
fn mtrr_fixed_or_ctl(index: u32) -> bool {
    index == mtrr::MTRRCAP
        || index == mtrr::MTRR_DEF_TYPE
        || mtrr::FIXED.iter().any(|f| f.0 == index)
}

/// A dword of config space no decoder names.
fn raw_dword(layout: &pci::Layout, off: u16) -> pci::PciReg {
    let start = off & !3;
    pci::PciReg {
        offset: start,
        width: 4,
        key: "device.specific",
        name: format!("config[{start:#05x}]"),
        group: layout
            .cap_at(start)
            .map(|c| format!("{} @{:#x}", c.name, c.offset))
            .unwrap_or_else(|| "device-specific".into()),
        volatile: None,
    }
}

fn device_change(bdf: Bdf, b: Option<&PciDevice>, c: Option<&PciDevice>, what: &str) -> Divergence {
    let dev = c.or(b).expect("one side has the device");
    let mut d = Divergence::new(
        Kind::PciDevice,
        format!(
            "[{:04x}:{:04x}] {}",
            dev.vendor,
            dev.device,
            device_name(dev)
        ),
    );
    d.bdf = Some(bdf);
    d.notes.push(what.to_string());
    let id = |x: Option<&PciDevice>| {
        x.map(|x| Value::Text(format!("{:04x}:{:04x}", x.vendor, x.device)))
    };
    d.baseline = id(b);
    d.current = id(c);
    for (which, x) in [("baseline", b), ("current", c)] {
        if x.is_some_and(|x| x.vanished) {
            d.notes.push(format!("vanished during the {which} capture"));
        }
    }
    d.drivers = Some(Drivers {
        baseline: b.and_then(|x| x.driver.clone()),
        current: c.and_then(|x| x.driver.clone()),
    });
    d
}

/// The device's name from pci.ids, or its class code.
pub fn device_name(dev: &PciDevice) -> String {
    match (
        crate::pciids::vendor_name(dev.vendor),
        crate::pciids::device_name(dev.vendor, dev.device),
    ) {
        (Some(v), Some(d)) => format!("{v} {d}"),
        (Some(v), None) => format!("{v} device, class {:06x}", dev.class),
        _ => format!("class {:06x}", dev.class),
    }
}

/// Fields whose value differs and overlaps `mask`, paired by name.
fn changed_fields(fb: &[decode::Field], fc: &[decode::Field], mask: u64) -> Vec<FieldChange> {
    fb.iter()
        .zip(fc.iter())
        .filter(|(x, y)| x.name == y.name && x.value != y.value && x.mask & mask != 0)
        .map(|(x, y)| FieldChange {
            name: x.name.clone(),
            bits: x.bits(),
            baseline: x.value,
            current: y.value,
            baseline_meaning: x.meaning.clone(),
            current_meaning: y.meaning.clone(),
        })
        .collect()
}

/// "cpu 3 differs from its siblings" when the CPUs agreed in the baseline but not now.
fn asymmetry(bm: &MsrSection, cm: &MsrSection, index: u32) -> Option<String> {
    let distinct = |m: &MsrSection| -> BTreeMap<Option<u64>, Vec<u32>> {
        let mut g: BTreeMap<Option<u64>, Vec<u32>> = BTreeMap::new();
        for (&cpu, c) in &m.cpus {
            g.entry(c.values.get(&index).copied())
                .or_default()
                .push(cpu);
        }
        g
    };
    let (gb, gc) = (distinct(bm), distinct(cm));
    if gb.len() > 1 || gc.len() < 2 {
        return None;
    }
    let parts: Vec<String> = gc
        .iter()
        .map(|(v, cpus)| {
            let v = v.map_or("unreadable".into(), |v| format!("{v:#x}"));
            format!("{} {}", crate::report::cpu_list(cpus), v)
        })
        .collect();
    Some(format!(
        "asymmetric now: CPUs disagree ({}), they agreed in the baseline",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{CpuMsrs, MsrSection, Origin};

    /// (cpu, values, unreadable with reasons)
    type CpuRow<'a> = (u32, &'a [(u32, u64)], &'a [(u32, &'a str)]);

    fn snap(selection: &str, cpus: &[CpuRow]) -> Snapshot {
        let mut s = Snapshot::new(Origin::Synthetic {
            generator: "test".into(),
        });
        let mut m = MsrSection {
            selection: selection.into(),
            cpus: BTreeMap::new(),
        };
        for (cpu, values, unreadable) in cpus {
            m.cpus.insert(
                *cpu,
                CpuMsrs {
                    values: values.iter().copied().collect(),
                    unreadable: unreadable
                        .iter()
                        .map(|(i, w)| (*i, w.to_string()))
                        .collect(),
                    phys_bits: None,
                    regular_file: false,
                },
            );
        }
        s.msr = Some(m);
        s
    }

    fn db() -> RegDb {
        RegDb::from_toml(
            r#"
[[msr]]
index = 0x19c
name = "IA32_THERM_STATUS"
[[msr.field]]
name = "STATUS"
bits = "0"
volatile = "counter"
[[msr.field]]
name = "DIGITAL_READOUT"
bits = "22:16"
volatile = "counter"
[[msr.field]]
name = "HIGH_TEMP_LOG"
bits = "1"

[[msr]]
index = 0x10
name = "IA32_TIME_STAMP_COUNTER"
volatile = "counter"
"#,
        )
        .unwrap()
    }

    fn run(b: &Snapshot, c: &Snapshot, all: bool) -> Report {
        let opts = DiffOptions {
            all,
            ..DiffOptions::default()
        };
        diff_with(b, c, &opts, &db(), &OwnerDb::default())
    }

    #[test]
    fn volatile_bits_are_set_apart_from_real_changes() {
        let b = snap("known", &[(0, &[(0x19c, 0x0042_0000), (0x10, 5)], &[])]);
        // Only the readout moved: volatile, hidden.
        let c = snap("known", &[(0, &[(0x19c, 0x0043_0001), (0x10, 9)], &[])]);
        let r = run(&b, &c, false);
        assert!(r.divergences.is_empty(), "{:#?}", r.divergences);
        assert_eq!(r.hidden_volatile, 2);
        let r = run(&b, &c, true);
        assert_eq!(r.divergences.len(), 2);
        assert!(r
            .divergences
            .iter()
            .all(|d| d.volatile == Some(Volatility::Counter)));
        // A sticky log bit changed too: significant, and only that bit is reported.
        let c = snap("known", &[(0, &[(0x19c, 0x0043_0003), (0x10, 5)], &[])]);
        let r = run(&b, &c, false);
        assert_eq!(r.divergences.len(), 1);
        let d = &r.divergences[0];
        assert_eq!(d.changed_bits, Some(0x2));
        assert_eq!(d.fields.len(), 1);
        assert_eq!(d.fields[0].name, "HIGH_TEMP_LOG");
    }

    #[test]
    fn msrs_past_the_variable_mtrrs_are_reported_as_msrs() {
        // VCNT 8: PHYSBASE0..PHYSMASK7 are 0x200-0x20f. IA32_PAT (0x277) and
        // PERF_GLOBAL_CTRL (0x38f) lie in 0x200 + 2 * 255 and were once swallowed as MTRRs.
        let b = snap(
            "known",
            &[(
                0,
                &[(0xfe, 0x508), (0x277, 0x0407_0506_0007_0106), (0x38f, 0)],
                &[],
            )],
        );
        let c = snap(
            "known",
            &[(
                0,
                &[(0xfe, 0x508), (0x277, 0x0007_0406_0007_0406), (0x38f, 3)],
                &[],
            )],
        );
        let r = run(&b, &c, false);
        let regs: Vec<(Kind, Option<&str>)> = r
            .divergences
            .iter()
            .map(|d| (d.kind, d.register.as_deref()))
            .collect();
        assert_eq!(
            regs,
            [(Kind::Msr, Some("0x277")), (Kind::Msr, Some("0x38f"))],
            "{:#?}",
            r.divergences
        );
    }

    #[test]
    fn only_real_mtrr_msrs_are_folded_into_ranges() {
        // Regression: PERF_GLOBAL_CTRL (0x38f) was taken for a PHYSMASK and dropped.
        assert!(is_mtrr_msr(0x200, 10) && is_mtrr_msr(0x213, 10) && is_mtrr_msr(0x2ff, 10));
        assert!(!is_mtrr_msr(0x38f, 255) && !is_mtrr_msr(0x277, 255) && !is_mtrr_msr(0x1fc, 10));
        // Past the VCNT the CPUs report: plain MSRs.
        assert!(!is_mtrr_msr(0x214, 10) && is_mtrr_msr(0x213, 10));
    }

    #[test]
    fn readability_changes_are_reported() {
        let b = snap("known", &[(0, &[(0x1fc, 3)], &[])]);
        let c = snap("known", &[(0, &[], &[(0x1fc, "EIO")])]);
        let r = run(&b, &c, false);
        assert_eq!(r.divergences.len(), 1);
        let d = &r.divergences[0];
        assert_eq!(d.baseline, Some(Value::Num(3)));
        assert_eq!(d.current, None);
        assert!(d.notes[0].contains("readable only in the baseline (now EIO)"));
    }

    #[test]
    fn msrs_outside_one_selection_are_left_out_not_reported() {
        let b = snap("known", &[(0, &[(0x1fc, 3)], &[])]);
        let c = snap("0x10", &[(0, &[(0x10, 1)], &[])]);
        let r = run(&b, &c, true);
        assert!(r.divergences.is_empty(), "{:#?}", r.divergences);
        assert!(
            r.left_out.iter().any(|l| l.contains("2 (CPU, MSR) pairs")),
            "{:?}",
            r.left_out
        );
        // In a scan, an MSR missing on one side faulted there.
        let b = snap("scan", &[(0, &[(0x1fc, 3)], &[])]);
        let c = snap("scan", &[(0, &[], &[])]);
        let r = run(&b, &c, false);
        assert_eq!(r.divergences.len(), 1);
    }

    #[test]
    fn same_change_on_many_cpus_is_one_divergence() {
        let cpus_b: Vec<(u32, Vec<(u32, u64)>)> =
            (0..8).map(|c| (c, vec![(0x1fc, 0x5f)])).collect();
        let cpus_c: Vec<(u32, Vec<(u32, u64)>)> = (0..8)
            .map(|c| (c, vec![(0x1fc, if c == 7 { 0x5f } else { 0x5d })]))
            .collect();
        let mk = |v: &Vec<(u32, Vec<(u32, u64)>)>| {
            let rows: Vec<CpuRow> = v.iter().map(|(c, m)| (*c, m.as_slice(), &[][..])).collect();
            snap("known", &rows)
        };
        let r = run(&mk(&cpus_b), &mk(&cpus_c), false);
        assert_eq!(r.divergences.len(), 1);
        assert_eq!(r.divergences[0].cpus, (0..7).collect::<Vec<_>>());
        assert_eq!(r.divergences[0].location(), "cpus 0-6");
        assert!(r.divergences[0].notes[0].contains("asymmetric"));
    }

    #[test]
    fn sections_in_one_side_only_are_left_out() {
        let b = snap("known", &[(0, &[(0x1fc, 3)], &[])]);
        let mut c = Snapshot::new(Origin::Import {
            importer: "lspci".into(),
            file: "x".into(),
        });
        c.pci = Some(Default::default());
        let r = run(&b, &c, false);
        assert!(r.compared.is_empty());
        assert_eq!(r.left_out.len(), 2, "{:?}", r.left_out);
        assert!(r.divergences.is_empty());
    }
}
