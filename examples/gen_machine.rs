//! Generate a synthetic machine (see `regdrift::fixture::synth`) into a directory:
//!
//! - `baseline.json`, `current.json`: the cold and the kexec state as snapshots, and
//!   `planted.txt`, the changes planted between them (one per line);
//! - `baseline.txt`, `current.txt`: the same states as text dumps (an `rdmsr` line per
//!   (CPU, MSR), `lspci -xxxx` rows per device), for comparing with diff(1);
//! - `root-baseline/`, `root-current/`: the two states as machine trees for
//!   `regdrift capture --root` (MSRs 8 apart, as regular files need), `root-msrs.txt`
//!   (their MSR set as a `--msrs` list) and `root-planted.txt`.
//!
//! ```text
//! cargo run --release --example gen_machine -- --size server256 --out /tmp/server
//! cargo run --release --example gen_machine -- --cpus 8 --msrs 300 --devices 40 \
//!     --out /tmp/m --only snapshots --check
//! ```

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use regdrift::diff::{diff, DiffOptions};
use regdrift::fixture::synth::{self, Spec};

#[derive(Parser, Debug)]
#[command(about = "Generate a synthetic machine: snapshots, text dumps and machine trees")]
struct Args {
    /// laptop2, laptop16, rack64 or server256.
    #[arg(long, default_value = "laptop2")]
    size: String,
    /// Override the number of CPUs.
    #[arg(long)]
    cpus: Option<u32>,
    /// Override the MSRs per CPU (a number, or `known` for the register database's set).
    #[arg(long)]
    msrs: Option<String>,
    /// Override the number of PCI devices.
    #[arg(long)]
    devices: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Write into this directory (created).
    #[arg(long)]
    out: PathBuf,
    /// What to write: any of snapshots, dumps, roots (comma-separated; default all).
    #[arg(long, default_value = "snapshots,dumps,roots")]
    only: String,
    /// Diff the snapshot pair and check that it reports exactly the planted changes.
    #[arg(long)]
    check: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let mut spec = Spec::by_name(&a.size).with_context(|| {
        format!(
            "unknown size {:?}: expected laptop2, laptop16, rack64 or server256",
            a.size
        )
    })?;
    if let Some(c) = a.cpus {
        if c == 0 || c > 4096 {
            bail!("--cpus must be 1..=4096");
        }
        spec.cpus = c;
    }
    match a.msrs.as_deref() {
        None => {}
        Some("known") => spec.msrs = None,
        Some(n) => spec.msrs = Some(n.parse().context("--msrs: a number or `known`")?),
    }
    if let Some(d) = a.devices {
        spec.devices = d;
    }
    if let Some(s) = a.seed {
        spec.seed = s;
    }
    if a.cpus.is_some() || a.msrs.is_some() || a.devices.is_some() {
        spec.name = format!(
            "{}x{}-{}dev",
            spec.cpus,
            spec.msrs.map_or("known".to_string(), |m| m.to_string()),
            spec.devices
        );
    }
    let want = |what: &str| a.only.split(',').any(|w| w.trim() == what);
    fs::create_dir_all(&a.out).with_context(|| format!("{}", a.out.display()))?;
    let write = |name: &str, text: &str| -> Result<()> {
        let p = a.out.join(name);
        fs::write(&p, text).with_context(|| format!("{}", p.display()))
    };

    let t = Instant::now();
    let pair = synth::generate(&spec);
    eprintln!(
        "{}: {} CPUs x {} MSRs = {} pairs, {} devices, {} planted changes ({} registers), \
         {} noise changes; generated in {:.2?}",
        spec.name,
        spec.cpus,
        pair.msr_indices.len(),
        pair.msr_pairs(),
        spec.devices,
        pair.planted.len(),
        pair.planted_changes().len(),
        pair.noise.len(),
        t.elapsed()
    );
    if want("snapshots") {
        write("baseline.json", &pair.baseline.to_json())?;
        write("current.json", &pair.current.to_json())?;
        write("planted.txt", &pair.describe_planted())?;
    }
    if want("dumps") {
        write("baseline.txt", &synth::text_dump(&pair.baseline))?;
        write("current.txt", &synth::text_dump(&pair.current))?;
    }
    if a.check {
        let report = diff(&pair.baseline, &pair.current, &DiffOptions::default());
        let s = synth::score(&report, &pair, &pair.planted_changes());
        eprintln!(
            "check: {} planted, {} reported: recall {:.1}%, precision {:.1}%",
            s.planted,
            s.reported,
            100.0 * s.recall(),
            100.0 * s.precision()
        );
        for m in &s.missed {
            eprintln!("  missed: {m}");
        }
        for m in &s.spurious {
            eprintln!("  spurious: {m}");
        }
        if !s.missed.is_empty() || !s.spurious.is_empty() {
            bail!("the diff does not report exactly the planted changes");
        }
    }
    if want("roots") {
        let t = Instant::now();
        let rf = synth::generate(&spec.clone().regular_file());
        for (name, snap) in [
            ("root-baseline", &rf.baseline),
            ("root-current", &rf.current),
        ] {
            let dir = a.out.join(name);
            if dir.exists() {
                fs::remove_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            }
            synth::write_root(snap, &dir).with_context(|| format!("{}", dir.display()))?;
        }
        write("root-msrs.txt", &(rf.msr_list() + "\n"))?;
        write("root-planted.txt", &rf.describe_planted())?;
        eprintln!(
            "roots: {} CPUs x {} MSRs (8 apart), {} devices, {} planted changes; written in {:.2?}",
            spec.cpus,
            rf.msr_indices.len(),
            spec.devices,
            rf.planted_changes().len(),
            t.elapsed()
        );
    }
    Ok(())
}
