//! The navigator's tree: which rows are visible under the current filters and expansion,
//! how many divergences sit under each, and the tree order that `n`/`N` walk.
//!
//! Rows are rebuilt when the data, the filters or the expansion change, never per frame;
//! a row holds only its node, so labels are made for the visible rows alone.

use std::collections::{HashMap, HashSet};

use super::model::{Dataset, Knowledge, Node};
use crate::report::Kind;
use crate::snapshot::Bdf;

/// What the navigator shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filters {
    /// Only rows that diverge (or hold divergences).
    pub only_diverging: bool,
    /// Volatile registers and volatile divergences too.
    pub show_volatile: bool,
    /// Leave out registers seen moving between live refreshes.
    pub hide_moving: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            only_diverging: true,
            show_volatile: false,
            hide_moving: false,
        }
    }
}

/// Registers seen changing between two refreshes of the same source (learned volatility).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moving {
    pub msrs: HashSet<u32>,
    /// Device and register offset.
    pub pci: HashSet<(Bdf, u16)>,
}

impl Moving {
    pub fn is_empty(&self) -> bool {
        self.msrs.is_empty() && self.pci.is_empty()
    }

    pub fn len(&self) -> usize {
        self.msrs.len() + self.pci.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub node: Node,
    pub depth: u8,
    /// Has children (under the current filters).
    pub expandable: bool,
    pub expanded: bool,
    /// Divergences shown at or under this row.
    pub count: u32,
}

/// The visible rows and the divergence order, for one state of data, filters, expansion.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub rows: Vec<Row>,
    /// Divergences counted under the filters, as (tree order key, index), sorted.
    pub order: Vec<(OrderKey, usize)>,
    /// Divergences left out by the volatile filter, and by the moving filter.
    pub hidden_volatile: usize,
    pub hidden_moving: usize,
}

pub type OrderKey = (u8, u64, u64);

fn bdf_key(b: Bdf) -> u64 {
    ((b.domain as u64) << 16)
        | ((b.bus as u64) << 8)
        | ((b.device as u64 & 0x1f) << 3)
        | (b.function as u64 & 7)
}

/// The position of `node` in the fully expanded tree.
pub fn order_key(ds: &Dataset, node: Node) -> OrderKey {
    match node {
        Node::MsrSection => (0, 0, 0),
        Node::Cpu(c) => (0, c as u64 + 1, 0),
        Node::Msr { cpu, index } => (0, cpu as u64 + 1, index as u64 + 1),
        Node::MtrrSection => (1, 0, 0),
        Node::Mtrr(r) => (1, r as u64 + 1, 0),
        Node::PciSection => (2, 0, 0),
        Node::Device(b) => (2, bdf_key(b) + 1, 0),
        Node::PciGroup { bdf, group } => {
            let first = ds
                .device(bdf)
                .and_then(|d| d.groups.get(group as usize))
                .map_or(0, |g| g.first_offset);
            (2, bdf_key(bdf) + 1, first as u64 * 2 + 1)
        }
        Node::PciReg { bdf, offset } => (2, bdf_key(bdf) + 1, offset as u64 * 2 + 2),
    }
}

/// The ancestors of `node`, outermost first.
pub fn ancestors(ds: &Dataset, node: Node) -> Vec<Node> {
    match node {
        Node::MsrSection | Node::MtrrSection | Node::PciSection => vec![],
        Node::Cpu(_) => vec![Node::MsrSection],
        Node::Msr { cpu, .. } => vec![Node::MsrSection, Node::Cpu(cpu)],
        Node::Mtrr(_) => vec![Node::MtrrSection],
        Node::Device(_) => vec![Node::PciSection],
        Node::PciGroup { bdf, .. } => vec![Node::PciSection, Node::Device(bdf)],
        Node::PciReg { bdf, offset } => {
            let mut v = vec![Node::PciSection, Node::Device(bdf)];
            if let Some(d) = ds.device(bdf) {
                if let Some(g) = d.groups.iter().position(|g| {
                    g.regs
                        .iter()
                        .any(|&r| d.regs.get(r).is_some_and(|r| r.offset == offset))
                }) {
                    v.push(Node::PciGroup {
                        bdf,
                        group: g as u16,
                    });
                }
            }
            v
        }
    }
}

/// The parent of `node`, if any.
pub fn parent(ds: &Dataset, node: Node) -> Option<Node> {
    ancestors(ds, node).pop()
}

struct Ctx<'a> {
    know: Knowledge,
    filters: Filters,
    moving: &'a Moving,
    counted: Vec<bool>,
}

impl Ctx<'_> {
    fn counted(&self, div: Option<usize>) -> bool {
        div.is_some_and(|d| self.counted.get(d).copied().unwrap_or(false))
    }

    fn msr_visible(&self, index: u32, diverges: bool) -> bool {
        if self.filters.only_diverging && !diverges {
            return false;
        }
        if !self.filters.show_volatile
            && !diverges
            && self
                .know
                .regdb
                .msr(index)
                .is_some_and(|d| d.volatile.is_some())
        {
            return false;
        }
        !(self.filters.hide_moving && !diverges && self.moving.msrs.contains(&index))
    }

    fn reg_visible(&self, bdf: Bdf, offset: u16, volatile: bool, diverges: bool) -> bool {
        if diverges {
            return true;
        }
        if self.filters.only_diverging {
            return false;
        }
        if !self.filters.show_volatile && volatile {
            return false;
        }
        !(self.filters.hide_moving && self.moving.pci.contains(&(bdf, offset)))
    }
}

/// Whether divergence `i` counts under `filters` (and what hides it otherwise).
fn classify(ds: &Dataset, filters: Filters, moving: &Moving, i: usize) -> Result<(), Hidden> {
    let Some(d) = ds.divergence(i) else {
        return Err(Hidden::Volatile);
    };
    if !filters.show_volatile && d.volatile.is_some() {
        return Err(Hidden::Volatile);
    }
    if filters.hide_moving {
        let reg = d.register.as_deref().and_then(crate::snapshot::parse_hex);
        let moves = match (d.kind, reg, d.bdf) {
            (Kind::Msr, Some(r), _) => u32::try_from(r).is_ok_and(|r| moving.msrs.contains(&r)),
            (Kind::Pci, Some(r), Some(b)) => {
                u16::try_from(r).is_ok_and(|r| moving.pci.contains(&(b, r)))
            }
            _ => false,
        };
        if moves {
            return Err(Hidden::Moving);
        }
    }
    Ok(())
}

enum Hidden {
    Volatile,
    Moving,
}

impl Tree {
    /// Build the visible rows.
    pub fn build(
        ds: &Dataset,
        know: Knowledge,
        filters: Filters,
        moving: &Moving,
        expanded: &HashSet<Node>,
    ) -> Tree {
        let n = ds.report.divergences.len();
        let mut tree = Tree::default();
        let mut counted = vec![false; n];
        for (i, c) in counted.iter_mut().enumerate() {
            match classify(ds, filters, moving, i) {
                Ok(()) => *c = true,
                Err(Hidden::Volatile) => tree.hidden_volatile += 1,
                Err(Hidden::Moving) => tree.hidden_moving += 1,
            }
        }
        let cx = Ctx {
            know,
            filters,
            moving,
            counted,
        };
        // Divergence counts per CPU and section.
        let mut per_cpu: HashMap<u32, u32> = HashMap::new();
        let mut msr_total = 0u32;
        for (i, d) in ds.report.divergences.iter().enumerate() {
            if !cx.counted[i] {
                continue;
            }
            if let Some(t) = ds.target(i) {
                tree.order.push((order_key(ds, t), i));
            }
            if d.kind == Kind::Msr {
                msr_total += 1;
                for &c in &d.cpus {
                    *per_cpu.entry(c).or_default() += 1;
                }
            }
        }
        tree.order.sort_unstable();
        let rows = &mut tree.rows;

        // MSRs
        if !ds.cpus.is_empty() && (!filters.only_diverging || msr_total > 0) {
            let open = expanded.contains(&Node::MsrSection);
            rows.push(Row {
                node: Node::MsrSection,
                depth: 0,
                expandable: true,
                expanded: open,
                count: msr_total,
            });
            if open {
                for c in &ds.cpus {
                    let count = per_cpu.get(&c.cpu).copied().unwrap_or(0);
                    if filters.only_diverging && count == 0 {
                        continue;
                    }
                    let node = Node::Cpu(c.cpu);
                    let open = expanded.contains(&node);
                    rows.push(Row {
                        node,
                        depth: 1,
                        expandable: !c.msrs.is_empty(),
                        expanded: open,
                        count,
                    });
                    if open {
                        for &index in &c.msrs {
                            let div = cx.counted(ds.msr_div(c.cpu, index));
                            if cx.msr_visible(index, div) {
                                rows.push(Row {
                                    node: Node::Msr { cpu: c.cpu, index },
                                    depth: 2,
                                    expandable: false,
                                    expanded: false,
                                    count: div as u32,
                                });
                            }
                        }
                    }
                }
            }
        }

        // MTRRs
        let mtrr_counts: Vec<u32> = ds
            .mtrr
            .iter()
            .map(|e| e.divs.iter().filter(|&&d| cx.counted(Some(d))).count() as u32)
            .collect();
        let mtrr_total: u32 = mtrr_counts.iter().sum();
        if !ds.mtrr.is_empty() && (!filters.only_diverging || mtrr_total > 0) {
            let open = expanded.contains(&Node::MtrrSection);
            rows.push(Row {
                node: Node::MtrrSection,
                depth: 0,
                expandable: true,
                expanded: open,
                count: mtrr_total,
            });
            if open {
                for (i, &count) in mtrr_counts.iter().enumerate() {
                    if filters.only_diverging && count == 0 {
                        continue;
                    }
                    rows.push(Row {
                        node: Node::Mtrr(i as u16),
                        depth: 1,
                        expandable: false,
                        expanded: false,
                        count,
                    });
                }
            }
        }

        // PCI
        let pci_start = rows.len();
        let mut pci_total = 0u32;
        let pci_open = expanded.contains(&Node::PciSection);
        if !ds.devices.is_empty() {
            rows.push(Row {
                node: Node::PciSection,
                depth: 0,
                expandable: true,
                expanded: pci_open,
                count: 0,
            });
        }
        for d in &ds.devices {
            let dev_count = ds
                .device_divs(d.bdf)
                .iter()
                .filter(|&&i| cx.counted(Some(i)))
                .count() as u32;
            let dev_node = Node::Device(d.bdf);
            let dev_open = pci_open && expanded.contains(&dev_node);
            // Count first; push rows only when the device is shown expanded.
            let mut dev_rows: Vec<Row> = Vec::new();
            let mut total = dev_count;
            for (gi, g) in d.groups.iter().enumerate() {
                let gnode = Node::PciGroup {
                    bdf: d.bdf,
                    group: gi as u16,
                };
                let g_open = dev_open && expanded.contains(&gnode);
                let mut g_count = 0u32;
                let mut g_rows: Vec<Row> = Vec::new();
                let mut any_visible = false;
                for &ri in &g.regs {
                    let Some(r) = d.regs.get(ri) else { continue };
                    let div = cx.counted(ds.pci_div(d.bdf, r.offset));
                    g_count += div as u32;
                    if cx.reg_visible(d.bdf, r.offset, r.volatile.is_some(), div) {
                        any_visible = true;
                        if g_open {
                            g_rows.push(Row {
                                node: Node::PciReg {
                                    bdf: d.bdf,
                                    offset: r.offset,
                                },
                                depth: 3,
                                expandable: false,
                                expanded: false,
                                count: div as u32,
                            });
                        }
                    }
                }
                total += g_count;
                if dev_open && any_visible {
                    dev_rows.push(Row {
                        node: gnode,
                        depth: 2,
                        expandable: true,
                        expanded: g_open,
                        count: g_count,
                    });
                    dev_rows.extend(g_rows);
                }
            }
            pci_total += total;
            if !pci_open || (filters.only_diverging && total == 0) {
                continue;
            }
            rows.push(Row {
                node: dev_node,
                depth: 1,
                expandable: !d.groups.is_empty(),
                expanded: dev_open,
                count: total,
            });
            rows.extend(dev_rows);
        }
        if let Some(r) = rows.get_mut(pci_start) {
            if r.node == Node::PciSection {
                r.count = pci_total;
                if filters.only_diverging && pci_total == 0 {
                    rows.truncate(pci_start);
                }
            }
        }
        tree
    }

    /// The row index of `node`.
    pub fn position(&self, node: Node) -> Option<usize> {
        self.rows.iter().position(|r| r.node == node)
    }

    pub fn total(&self) -> usize {
        self.order.len()
    }
}
