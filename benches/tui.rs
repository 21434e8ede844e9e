//! Render benchmark: one frame of `regdrift explore` on ratatui's TestBackend, for a
//! synthetic large machine (256 CPUs × 1000 MSRs, 1000 PCI devices with 4 KiB of config
//! space each) compared with a kexec'd copy of itself. Target: ≤ 4 ms median per frame
//! at 200×60. Also: building the dataset (diff + indices), rebuilding the tree with every
//! row expanded, and one search keystroke.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use regdrift::snapshot::{Bdf, CpuMsrs, MsrSection, Origin, PciDevice, PciSection, Snapshot};
use regdrift::tui::app::{Action, App, Session};
use regdrift::tui::model::{Dataset, Knowledge, Node, Source};
use regdrift::tui::tree::{Moving, Tree};
use regdrift::tui::{search, worker};

const CPUS: u32 = 256;
const MSRS: usize = 1000;
const DEVICES: u32 = 1000;

/// xorshift64: deterministic values without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn msr_indices(know: Knowledge) -> Vec<u32> {
    let mut v: Vec<u32> = know
        .regdb
        .known_msrs()
        .map(|d| d.index)
        .filter(|&i| !(0x200..0x300).contains(&i))
        .take(MSRS)
        .collect();
    let mut next = 0x4000_0000u32;
    while v.len() < MSRS {
        v.push(next);
        next += 1;
    }
    v.sort_unstable();
    v
}

fn bdf(i: u32) -> Bdf {
    Bdf {
        domain: 0,
        bus: (i / 32) as u8,
        device: (i % 32) as u8,
        function: 0,
    }
}

/// The cold machine, and the same machine after a kexec: 20 MSRs changed on every CPU,
/// a few per-CPU oddities, config bytes changed on one device in ten, a driver gone on
/// one in a hundred.
fn machine_pair(know: Knowledge) -> (Snapshot, Snapshot) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let indices = msr_indices(know);
    let mut cold = Snapshot::new(Origin::Synthetic {
        generator: "benches/tui.rs".into(),
    });
    cold.meta.kernel_release = Some("6.1.0-cold".into());
    let mut cpus = BTreeMap::new();
    for cpu in 0..CPUS {
        let mut c = CpuMsrs::default();
        for (n, &i) in indices.iter().enumerate() {
            // Most registers hold the same value on every CPU.
            c.values
                .insert(i, (n as u64).wrapping_mul(0x0101_0101) ^ 0x850089);
        }
        c.phys_bits = Some(46);
        cpus.insert(cpu, c);
    }
    cold.msr = Some(MsrSection {
        selection: "known".into(),
        cpus,
    });
    let mut devices = BTreeMap::new();
    for d in 0..DEVICES {
        let mut config = vec![0u8; 4096];
        for b in config.iter_mut().skip(0x40).take(0x200) {
            *b = rng.next() as u8;
        }
        config[..4].copy_from_slice(&[0x86, 0x80, (d & 0xff) as u8, 0x3b]);
        config[4] = 0x07;
        config[0x0b] = 0x02;
        devices.insert(
            bdf(d),
            PciDevice {
                vendor: 0x8086,
                device: 0x3b00 | (d & 0xff) as u16,
                class: 0x020000,
                driver: Some(format!("drv{}", d % 17)),
                config,
                ..PciDevice::default()
            },
        );
    }
    cold.pci = Some(PciSection { devices });

    let mut kexec = cold.clone();
    kexec.meta.kernel_release = Some("6.1.0-kexec".into());
    if let Some(m) = kexec.msr.as_mut() {
        for (cpu, c) in m.cpus.iter_mut() {
            for (k, &i) in indices.iter().enumerate() {
                if k % 50 == 7 {
                    if let Some(v) = c.values.get_mut(&i) {
                        *v ^= 0x2;
                    }
                }
                if k % 97 == 3 && cpu % 64 == 5 {
                    if let Some(v) = c.values.get_mut(&i) {
                        *v ^= 1 << 25;
                    }
                }
            }
        }
    }
    if let Some(p) = kexec.pci.as_mut() {
        for (i, (_, d)) in p.devices.iter_mut().enumerate() {
            if i % 10 == 0 {
                d.config[4] = 0x06;
                d.config[0x80 + i % 64] ^= 0x10;
            }
            if i % 100 == 0 {
                d.driver = None;
            }
        }
    }
    (cold, kexec)
}

fn dataset(know: Knowledge) -> Arc<Dataset> {
    let (cold, kexec) = machine_pair(know);
    Arc::new(worker::build(
        Source {
            name: "cold.json".into(),
            snap: Arc::new(cold),
        },
        Source {
            name: "kexec.json".into(),
            snap: Arc::new(kexec),
        },
        know,
    ))
}

fn app(ds: &Arc<Dataset>, w: u16, h: u16) -> App {
    let mut a = App::with_data(Knowledge::embedded(), Session::Files, ds.clone());
    a.update(Action::Resize {
        width: w,
        height: h,
    });
    a
}

fn frames(c: &mut Criterion) {
    let know = Knowledge::embedded();
    let ds = dataset(know);
    eprintln!(
        "synthetic machine: {} CPUs, {} MSR rows, {} devices, {} divergences",
        ds.cpus.len(),
        ds.cpus.iter().map(|c| c.msrs.len()).sum::<usize>(),
        ds.devices.len(),
        ds.report.divergences.len()
    );
    let mut g = c.benchmark_group("frame");

    for (name, w, h) in [("200x60", 200u16, 60u16), ("80x24", 80, 24)] {
        // An MSR divergence on every CPU: the per-CPU view walks all 256.
        let a = app(&ds, w, h);
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        g.bench_function(format!("msr_divergence_{name}"), |b| {
            b.iter(|| {
                term.draw(|f| f.render_widget(black_box(&a), f.area()))
                    .unwrap();
            })
        });
    }

    // A PCI register: the 4 KiB hex dump.
    let mut a = app(&ds, 200, 60);
    let target = ds
        .report
        .divergences
        .iter()
        .position(|d| d.kind == regdrift::report::Kind::Pci)
        .and_then(|i| ds.target(i))
        .expect("a PCI divergence");
    a.select_node(target);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    g.bench_function("pci_register_200x60", |b| {
        b.iter(|| {
            term.draw(|f| f.render_widget(black_box(&a), f.area()))
                .unwrap();
        })
    });

    // Every row of the machine in the tree, the cursor half way down.
    let mut a = app(&ds, 200, 60);
    a.update(Action::ToggleOnlyDiverging);
    a.update(Action::ExpandAll);
    eprintln!("all rows expanded: {} rows", a.tree.rows.len());
    let half = a.tree.rows.len() / 2;
    for _ in 0..half / a.page().max(1) {
        a.update(Action::PageDown);
    }
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    g.bench_function("all_rows_expanded_200x60", |b| {
        b.iter(|| {
            term.draw(|f| f.render_widget(black_box(&a), f.area()))
                .unwrap();
        })
    });

    // A frame after a key: the update and the draw.
    let mut a = app(&ds, 200, 60);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    g.bench_function("next_divergence_and_draw_200x60", |b| {
        b.iter(|| {
            a.update(Action::NextDivergence);
            term.draw(|f| f.render_widget(black_box(&a), f.area()))
                .unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("model");
    g.sample_size(10);
    g.bench_function("tree_rebuild_all_expanded", |b| {
        let mut expanded: std::collections::HashSet<Node> =
            [Node::MsrSection, Node::MtrrSection, Node::PciSection]
                .into_iter()
                .collect();
        expanded.extend(ds.cpus.iter().map(|c| Node::Cpu(c.cpu)));
        let filters = regdrift::tui::tree::Filters {
            only_diverging: false,
            ..Default::default()
        };
        b.iter(|| Tree::build(&ds, know, filters, &Moving::default(), &expanded))
    });
    g.bench_function("search_keystroke", |b| {
        b.iter(|| search::search(&ds.search, black_box("power")))
    });
    g.bench_function("dataset_build_diff_and_index", |b| {
        let (cold, kexec) = machine_pair(know);
        let (cold, kexec) = (Arc::new(cold), Arc::new(kexec));
        b.iter(|| {
            worker::build(
                Source {
                    name: "cold.json".into(),
                    snap: cold.clone(),
                },
                Source {
                    name: "kexec.json".into(),
                    snap: kexec.clone(),
                },
                know,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
