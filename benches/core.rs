//! Core benchmarks on synthetic machines (`regdrift::fixture::synth`): MSR capture against
//! a minimal `pread` loop over the same (CPU, MSR) pairs (the floor), PCI capture and
//! decode, snapshot JSON, and diff + annotate of the big server pair.
//!
//! First a table of paired figures: regdrift and its floor run alternately, N rounds each,
//! so that both see the same machine load; min/median/max per (CPU, MSR) pair and the
//! ratio of medians (with the spread of the per-round ratios). Then the criterion groups
//! (skipped with `REGDRIFT_BENCH_TABLE_ONLY=1`).
//!
//! Machines come from `REGDRIFT_BENCH_DIR` when set (as `bench/run` writes them with the
//! `gen_machine` example: `laptop16/`, `server256/`), else they are generated into a
//! temporary directory.
//!
//! `cargo bench --bench core` (target: capture ≤ 1.3× the floor; diff + annotate of the
//! big server pair ≤ 150 ms).

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use regdrift::capture::msr::MsrSelection;
use regdrift::capture::{self, CaptureOptions, Sources};
use regdrift::decode::pci;
use regdrift::diff::{diff, DiffOptions};
use regdrift::export::text;
use regdrift::fixture::synth::{self, Pair, Spec};
use regdrift::regdb::RegDb;
use regdrift::snapshot::Snapshot;

/// The machines the benchmarks read.
struct Machines {
    _tmp: Option<tempfile::TempDir>,
    laptop_root: PathBuf,
    server_root: PathBuf,
    server_msrs: Vec<u32>,
    server: Pair,
    server_json: (String, String),
}

fn machines() -> Machines {
    let server = synth::generate(&Spec::server());
    let server_json = (server.baseline.to_json(), server.current.to_json());
    let server_msrs = synth::generate(&Spec::server().regular_file()).msr_indices;
    if let Some(dir) = std::env::var_os("REGDRIFT_BENCH_DIR").map(PathBuf::from) {
        let laptop_root = dir.join("laptop16/root-current");
        let server_root = dir.join("server256/root-current");
        if laptop_root.is_dir() && server_root.is_dir() {
            return Machines {
                _tmp: None,
                laptop_root,
                server_root,
                server_msrs,
                server,
                server_json,
            };
        }
        eprintln!(
            "{}: no laptop16/root-current and server256/root-current: generating",
            dir.display()
        );
    }
    let tmp = tempfile::tempdir().expect("temporary directory");
    let laptop_root = tmp.path().join("laptop16");
    let server_root = tmp.path().join("server256");
    let t = Instant::now();
    let laptop = synth::generate(&Spec::laptop(16).regular_file());
    synth::write_root(&laptop.current, &laptop_root).expect("laptop tree");
    let big = synth::generate(&Spec::server().regular_file());
    synth::write_root(&big.current, &server_root).expect("server tree");
    eprintln!("machine trees written in {:.1?}", t.elapsed());
    Machines {
        _tmp: Some(tmp),
        laptop_root,
        server_root,
        server_msrs,
        server,
        server_json,
    }
}

fn msr_options(root: &Path, msrs: MsrSelection, cpus: Option<Vec<u32>>) -> CaptureOptions {
    let mut o = CaptureOptions::new(root);
    o.msrs = msrs;
    o.cpus = cpus;
    o.sources = Sources {
        msr: true,
        mtrr: false,
        pci: false,
    };
    o
}

/// The floor: one thread per CPU (as capture uses), each opening its MSR file and reading
/// every index with one 8-byte `pread` into a vector.
fn pread_floor(root: &Path, cpus: &[u32], indices: &[u32]) -> usize {
    std::thread::scope(|s| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                s.spawn(move || {
                    let f = File::open(root.join(format!("dev/cpu/{cpu}/msr"))).expect("msr");
                    let mut out = Vec::with_capacity(indices.len());
                    let mut buf = [0u8; 8];
                    for &i in indices {
                        if f.read_exact_at(&mut buf, i as u64).is_ok() {
                            out.push((i, u64::from_le_bytes(buf)));
                        }
                    }
                    out.len()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("join")).sum()
    })
}

struct Stats {
    min: f64,
    median: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    Stats {
        min: v[0],
        median: v[v.len() / 2],
        max: v[v.len() - 1],
    }
}

/// Run `a` and `b` alternately `rounds` times; per-unit times in ns.
fn paired(
    rounds: usize,
    units: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Stats, Stats, Stats) {
    a();
    b();
    let (mut ta, mut tb, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer cache.
        let (x, y) = if round % 2 == 0 {
            let t = Instant::now();
            a();
            let x = t.elapsed();
            let t = Instant::now();
            b();
            (x, t.elapsed())
        } else {
            let t = Instant::now();
            b();
            let y = t.elapsed();
            let t = Instant::now();
            a();
            (t.elapsed(), y)
        };
        let (x, y) = (
            x.as_nanos() as f64 / units as f64,
            y.as_nanos() as f64 / units as f64,
        );
        ta.push(x);
        tb.push(y);
        r.push(x / y);
    }
    (stats(ta), stats(tb), stats(r))
}

fn ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

/// The rows printed, and written as tab-separated values to `REGDRIFT_BENCH_OUT` when set
/// (`bench/run` folds them into its table): figure, unit, min, median, max (ns), then for
/// a paired row the peer, its min, median, max, the ratio of medians and the per-round
/// ratio range, and the target.
#[derive(Default)]
struct Rows(Vec<String>);

impl Rows {
    /// `s`: regdrift's times, the peer's, and the per-round ratios.
    fn paired(
        &mut self,
        figure: &str,
        unit: &str,
        peer: &str,
        s: &(Stats, Stats, Stats),
        target: &str,
    ) {
        let (a, b, r) = s;
        println!(
            "{figure:<46} {:>9} {:>9} {:>9} | {peer:<12} {:>9} {:>9} {:>9} | {:>5.2}x ({:.2}-{:.2}) {target}",
            ns(a.min),
            ns(a.median),
            ns(a.max),
            ns(b.min),
            ns(b.median),
            ns(b.max),
            a.median / b.median,
            r.min,
            r.max
        );
        self.0.push(format!(
            "{figure}\t{unit}\t{}\t{}\t{}\t{peer}\t{}\t{}\t{}\t{}\t{}\t{}\t{target}",
            a.min,
            a.median,
            a.max,
            b.min,
            b.median,
            b.max,
            a.median / b.median,
            r.min,
            r.max
        ));
    }

    fn single(&mut self, figure: &str, unit: &str, s: &Stats, note: &str) {
        println!(
            "{figure:<46} {:>9} {:>9} {:>9} | {note}",
            ns(s.min),
            ns(s.median),
            ns(s.max)
        );
        self.0.push(format!(
            "{figure}\t{unit}\t{}\t{}\t{}\t\t\t\t\t\t\t\t{note}",
            s.min, s.median, s.max
        ));
    }

    fn write(&self) {
        if let Some(p) = std::env::var_os("REGDRIFT_BENCH_OUT") {
            let mut text = self.0.join("\n");
            text.push('\n');
            if let Err(e) = std::fs::write(&p, text) {
                eprintln!("{}: {e}", PathBuf::from(p).display());
            }
        }
    }
}

fn times(rounds: usize, units: usize, mut f: impl FnMut()) -> Stats {
    f();
    stats(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_nanos() as f64 / units as f64
            })
            .collect(),
    )
}

fn table(m: &Machines) {
    let db = RegDb::active();
    let rounds: usize = std::env::var("REGDRIFT_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut rows = Rows::default();
    println!(
        "{:<46} {:>9} {:>9} {:>9} | {:<12} {:>9} {:>9} {:>9} | ratio of medians (per-round range)",
        "figure (per unit)", "min", "median", "max", "peer", "min", "median", "max"
    );

    // MSR capture, known set, 16 CPUs.
    let cpus16: Vec<u32> = (0..16).collect();
    let known = MsrSelection::Known.indices(db).0;
    let o = msr_options(&m.laptop_root, MsrSelection::Known, None);
    let s = paired(
        rounds,
        cpus16.len() * known.len(),
        || {
            black_box(capture::capture(&o, db).expect("capture"));
        },
        || {
            black_box(pread_floor(&m.laptop_root, &cpus16, &known));
        },
    );
    rows.paired(
        &format!("MSR capture, known set, 16 CPUs x {}", known.len()),
        "(CPU, MSR)",
        "pread floor",
        &s,
        "<= 1.3x",
    );

    // MSR scan, 4 CPUs.
    let cpus4: Vec<u32> = (0..4).collect();
    let scan = MsrSelection::Scan.indices(db).0;
    let o = msr_options(&m.laptop_root, MsrSelection::Scan, Some(cpus4.clone()));
    let s = paired(
        rounds.div_ceil(2),
        cpus4.len() * scan.len(),
        || {
            black_box(capture::capture(&o, db).expect("capture"));
        },
        || {
            black_box(pread_floor(&m.laptop_root, &cpus4, &scan));
        },
    );
    rows.paired(
        &format!("MSR capture, scan, 4 CPUs x {}", scan.len()),
        "(CPU, MSR)",
        "pread floor",
        &s,
        "<= 1.3x",
    );

    // MSR capture, big server.
    let cpus256: Vec<u32> = (0..256).collect();
    let list = MsrSelection::List(m.server_msrs.iter().map(|&i| (i, i)).collect());
    let o = msr_options(&m.server_root, list, None);
    let s = paired(
        rounds.div_ceil(3),
        cpus256.len() * m.server_msrs.len(),
        || {
            black_box(capture::capture(&o, db).expect("capture"));
        },
        || {
            black_box(pread_floor(&m.server_root, &cpus256, &m.server_msrs));
        },
    );
    rows.paired(
        &format!("MSR capture, 256 CPUs x {}", m.server_msrs.len()),
        "(CPU, MSR)",
        "pread floor",
        &s,
        "<= 1.3x",
    );

    // PCI capture and decode of the server's 1000 devices.
    let mut o = CaptureOptions::new(&m.server_root);
    o.sources = Sources {
        msr: false,
        mtrr: false,
        pci: true,
    };
    let pci_snap = capture::capture(&o, db).expect("capture");
    let devices: Vec<(regdrift::snapshot::Bdf, &regdrift::snapshot::PciDevice)> = pci_snap
        .pci
        .as_ref()
        .map(|p| p.devices.iter().map(|(b, d)| (*b, d)).collect())
        .unwrap_or_default();
    let n = devices.len().max(1);
    rows.single(
        &format!("PCI capture, {n} devices"),
        "device",
        &times(rounds.div_ceil(3), n, || {
            black_box(capture::capture(&o, db).expect("capture"));
        }),
        "sysfs tree; vs lspci in bench/run",
    );
    rows.single(
        &format!("PCI decode (layout + fields), {n} devices"),
        "device",
        &times(rounds, n, || {
            for (_, d) in &devices {
                let l = pci::layout(&d.config);
                for reg in &l.regs {
                    if let Some(v) = pci::reg_value(reg, &d.config) {
                        black_box(pci::decode_reg(reg, v));
                    }
                }
            }
        }),
        "",
    );
    rows.single(
        &format!("PCI decode + lspci-like text, {n} devices"),
        "device",
        &times(rounds, n, || {
            for (b, d) in &devices {
                black_box(regdrift::export::pci_show::render_device(*b, d));
            }
        }),
        "",
    );

    // Snapshot JSON of the big server.
    let (bj, cj) = &m.server_json;
    rows.single(
        &format!("snapshot parse, server ({:.1} MB)", bj.len() as f64 / 1e6),
        "snapshot",
        &times(rounds.div_ceil(3), 1, || {
            black_box(Snapshot::from_json(bj).expect("parse"));
        }),
        "",
    );
    rows.single(
        "snapshot serialize, server",
        "snapshot",
        &times(rounds.div_ceil(3), 1, || {
            black_box(m.server.baseline.to_json());
        }),
        "",
    );

    // Diff + annotate of the big server pair.
    let opts = DiffOptions {
        baseline_name: "baseline.json".into(),
        current_name: "current.json".into(),
        ..DiffOptions::default()
    };
    let (b, c) = (&m.server.baseline, &m.server.current);
    let report = diff(b, c, &opts);
    rows.single(
        "diff + annotate, server pair (in memory)",
        "pair",
        &times(rounds, 1, || {
            black_box(diff(b, c, &opts));
        }),
        &format!(
            "{} divergences, {} volatile hidden",
            report.divergences.len(),
            report.hidden_volatile
        ),
    );
    rows.single(
        "diff + annotate + text report, server pair",
        "pair",
        &times(rounds, 1, || {
            let r = diff(b, c, &opts);
            black_box(text::render(&r, &text::Style::plain()));
        }),
        "<= 150 ms",
    );
    rows.single(
        "parse both + diff + report (one thread)",
        "pair",
        &times(rounds.div_ceil(3), 1, || {
            let b = Snapshot::from_json(bj).expect("parse");
            let c = Snapshot::from_json(cj).expect("parse");
            let r = diff(&b, &c, &opts);
            black_box(text::render(&r, &text::Style::plain()));
        }),
        "the CLI parses the two side by side: bench/run",
    );
    rows.write();
}

fn criterion_groups(c: &mut Criterion, m: &Machines) {
    let db = RegDb::active();
    let mut g = c.benchmark_group("msr_capture");
    let cpus16: Vec<u32> = (0..16).collect();
    let known = MsrSelection::Known.indices(db).0;
    let o = msr_options(&m.laptop_root, MsrSelection::Known, None);
    g.bench_function("known_16cpu", |b| {
        b.iter(|| capture::capture(&o, db).expect("capture"))
    });
    g.bench_function("known_16cpu_pread_floor", |b| {
        b.iter(|| pread_floor(&m.laptop_root, &cpus16, &known))
    });
    g.finish();

    let mut g = c.benchmark_group("diff");
    let opts = DiffOptions::default();
    let (b, cur) = (&m.server.baseline, &m.server.current);
    g.bench_function("server_pair", |bn| bn.iter(|| diff(b, cur, &opts)));
    let (bj, _) = &m.server_json;
    g.bench_function("server_parse", |bn| {
        bn.iter(|| Snapshot::from_json(bj).expect("parse"))
    });
    g.finish();
}

fn main() {
    let m = machines();
    table(&m);
    if std::env::var_os("REGDRIFT_BENCH_TABLE_ONLY").is_none() {
        let mut c = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        criterion_groups(&mut c, &m);
        c.final_summary();
    }
}
