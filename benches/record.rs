//! Recording benchmarks on a realistic machine: 64 CPUs × 400 MSRs and 20 devices with
//! 4 KiB config spaces, sampled at 1 Hz; at every frame TSC, MPERF and APERF advance on
//! every CPU, every 30 frames a real MSR bit changes on one CPU and every 200 frames a
//! device's command and PM registers change.
//!
//! Prints (before the criterion groups): append cost, the size of an hour (3600 frames)
//! against one snapshot, open time, and the seek time to frames of a 10,000-frame
//! recording (min/median/max over every 10th frame and every frame just before a
//! checkpoint, the worst case; best of 3 runs each), and the cost of a "last change" query that walks back
//! over every frame. Target (issue 7): seek ≤ 20 ms; an hour ≤ 2× one snapshot + changes.
//!
//! `cargo bench --bench record` (add `-- --quick` for a shorter criterion run).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use regdrift::record::synth::{Machine, Spec};
use regdrift::record::{Delta, Query, Recording, RecordingWriter, WriterOptions};
use regdrift::snapshot::Snapshot;

fn spec() -> Spec {
    Spec {
        cpus: 64,
        msrs_per_cpu: 400,
        devices: 20,
        interval: Duration::from_secs(1),
        msr_change_every: 30,
        pci_change_every: 200,
        seed: 7,
    }
}

struct Written {
    bytes: u64,
    snapshot_json: usize,
    /// Registers changed over the whole run (MSR values + config bytes).
    changed_values: usize,
    per_append: Duration,
}

fn write(path: &Path, frames: usize) -> Written {
    let mut m = Machine::new(spec());
    let first = m.snapshot().clone();
    let snapshot_json = first.to_json().len();
    let opts = WriterOptions {
        sync: false,
        ..WriterOptions::default()
    };
    let mut w = RecordingWriter::create_with(path, &first, &["start".into()], opts).unwrap();
    let mut prev = first;
    let mut changed_values = 0;
    let mut spent = Duration::ZERO;
    for _ in 1..frames {
        let s = m.step().clone();
        let sum = Delta::between(&prev, &s).summary();
        changed_values += sum.msr_values + sum.pci_bytes;
        let t = Instant::now();
        w.append(&s, &[]).unwrap();
        spent += t.elapsed();
        prev = s;
    }
    Written {
        bytes: w.len(),
        snapshot_json,
        changed_values,
        per_append: spent / (frames as u32 - 1),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn report(dir: &Path) {
    println!("== recording: 64 CPUs × 400 MSRs, 20 devices × 4 KiB, 1 Hz ==");
    let hour = dir.join("hour.rec");
    let h = write(&hour, 3600);
    let snap = h.snapshot_json as f64;
    // The changes themselves, as 8-byte values: the least any encoding must keep.
    let raw = (h.changed_values * 8) as f64;
    println!(
        "hour (3600 frames): {:.2} MiB; one snapshot (JSON) {:.2} MiB; changed values {} \
         ({:.2} MiB as 8-byte values); file / (snapshot + changes) = {:.2}; \
         file / snapshot = {:.1}; target ≤ 2× snapshot + changes: {}",
        h.bytes as f64 / 1048576.0,
        snap / 1048576.0,
        h.changed_values,
        raw / 1048576.0,
        h.bytes as f64 / (snap + raw),
        h.bytes as f64 / snap,
        if (h.bytes as f64) <= 2.0 * snap + raw {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "append: {} per frame (diff + encode + write, no fsync)",
        ms(h.per_append)
    );

    let big = dir.join("10k.rec");
    let b = write(&big, 10_000);
    println!("10,000 frames: {:.2} MiB", b.bytes as f64 / 1048576.0);
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        black_box(Recording::open(&big).unwrap());
        opens.push(t.elapsed());
    }
    let (lo, med, hi) = stats(opens);
    println!(
        "open 10,000 frames (scan + checksums + frame 0): min {} median {} max {}",
        ms(lo),
        ms(med),
        ms(hi)
    );
    let rec = Recording::open(&big).unwrap();
    let mut frames: Vec<usize> = (0..10_000).step_by(10).collect();
    frames.extend((1..157).map(|k| k * 64 - 1));
    // Each frame's seek time is the best of 3, so that a moment when the (shared)
    // machine is busy does not count as the cost of the seek.
    let mut seeks = Vec::new();
    for &i in &frames {
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                black_box(rec.snapshot(i).unwrap());
                t.elapsed()
            })
            .min()
            .unwrap();
        seeks.push(best);
    }
    let mut sorted = seeks.clone();
    sorted.sort();
    let p99 = sorted[sorted.len() * 99 / 100];
    let (lo, med, hi) = stats(seeks);
    println!(
        "seek to a frame of 10,000 ({} frames sampled, best of 3 each): min {} median {} \
         p99 {} max {}; target ≤ 20 ms: {}",
        frames.len(),
        ms(lo),
        ms(med),
        ms(p99),
        ms(hi),
        if hi <= Duration::from_millis(20) {
            "met"
        } else {
            "MISSED"
        }
    );
    // Registers that never change (an MSR the machine does not have, BAR0 which nothing
    // writes): the query walks back over all 9,999 deltas. CPU 0 comes first in each
    // delta, CPU 63 last; a PCI query skips the MSR section.
    let bdf = *rec
        .first()
        .pci
        .as_ref()
        .unwrap()
        .devices
        .keys()
        .next()
        .unwrap();
    let queries = [
        (
            "MSR 0x9999 on CPU 0",
            Query::Msr {
                cpu: 0,
                index: 0x9999,
            },
        ),
        (
            "MSR 0x9999 on CPU 63",
            Query::Msr {
                cpu: 63,
                index: 0x9999,
            },
        ),
        (
            "config byte 0x10 of a device",
            Query::Pci { bdf, offset: 0x10 },
        ),
    ];
    for (what, q) in queries {
        let mut walks = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            assert_eq!(black_box(rec.last_change(9_999, q).unwrap()), None);
            walks.push(t.elapsed());
        }
        let (lo, med, hi) = stats(walks);
        println!(
            "last change of {what}, never changed, from frame 9,999 (walks every delta): \
             min {} median {} max {}",
            ms(lo),
            ms(med),
            ms(hi)
        );
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    report(dir.path());

    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let big = dir.path().join("10k.rec");
    let rec = Recording::open(&big).unwrap();
    let mut g = c.benchmark_group("record");
    for frame in [0usize, 63, 5_000, 9_983, 9_999] {
        g.bench_with_input(BenchmarkId::new("seek", frame), &frame, |b, &f| {
            b.iter(|| black_box(rec.snapshot(f).unwrap()))
        });
    }
    g.bench_function("open_10k", |b| {
        b.iter(|| black_box(Recording::open(&big).unwrap()))
    });
    let mut m = Machine::new(spec());
    let s0: Snapshot = m.snapshot().clone();
    let s1 = m.step().clone();
    g.bench_function("delta_between_frames", |b| {
        b.iter(|| black_box(Delta::between(&s0, &s1)))
    });
    g.finish();
    c.final_summary();
}
