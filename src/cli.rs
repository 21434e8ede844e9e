//! Command-line interface. Each subcommand's work lives in its module; this file parses
//! arguments and dispatches. Exit codes: 0 fine (or no divergence), 1 divergence, 2 error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::atomic::Output;
use crate::capture::{self, msr::MsrSelection, CaptureOptions, Sources};
use crate::diff::{self, DiffOptions};
use crate::export::{self, Format};
use crate::owners::OwnerDb;
use crate::regdb::RegDb;
use crate::report::parse_cpu_list;
use crate::snapshot::Snapshot;

#[derive(Parser, Debug)]
#[command(
    name = "regdrift",
    version,
    about = "Find the hardware state a kexec reboot leaves behind",
    long_about = "Capture MSRs, MTRRs and PCI config space into snapshots, diff them bit by \
                  bit with decoded fields and the likely owning drivers, and explore them in \
                  a terminal UI. regdrift never writes to hardware."
)]
pub struct Cli {
    /// Use this register database instead of the built-in one (see assets/msrs.toml).
    #[arg(long, global = true, env = "REGDRIFT_REGDB", value_name = "FILE")]
    pub regdb: Option<PathBuf>,
    /// Use this owner table instead of the built-in one (see assets/owners.toml).
    #[arg(long, global = true, env = "REGDRIFT_OWNERS", value_name = "FILE")]
    pub owners: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Capture MSRs, MTRRs and PCI config space into a snapshot (JSON).
    Capture(CaptureArgs),
    /// Compare two snapshots: exit 0 when nothing diverges, 1 when something does, 2 on error.
    Diff(DiffArgs),
    /// Print a snapshot with its fields decoded.
    Show(ShowArgs),
    /// Turn another tool's dump into a snapshot: lspci hex dumps, /proc/mtrr text, rdmsr
    /// output or coreboot inteltool logs.
    Import(crate::import::ImportArgs),
    /// Record snapshots over time (live, or assembled from snapshot files) into a recording.
    Record(crate::record::RecordArgs),
    /// Replay a recording in the TUI; or list its frames, or export one as a snapshot.
    Replay(crate::record::ReplayArgs),
    /// Explore the live machine (or a second snapshot) against a baseline in a terminal UI.
    Explore(crate::tui::ExploreArgs),
}

/// Capture options shared by `capture`, `record` and `explore`.
#[derive(Args, Debug, Clone)]
pub struct CaptureSpec {
    /// Read every source under this directory (a live machine is /).
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Which MSRs: `known` (the register database), `scan` (probe the architectural
    /// ranges), or a list like 0x10,0x1a0,0x200-0x20f.
    #[arg(long, default_value = "known", value_name = "known|scan|LIST")]
    pub msrs: String,
    /// Capture only these sources (comma-separated).
    #[arg(long, value_name = "msr,mtrr,pci")]
    pub only: Option<String>,
    /// Only these CPUs (e.g. 0-3,6).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Physical address width for decoding MTRR masks (default: from CPUID 0x80000008).
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(32..=52))]
    pub phys_bits: Option<u8>,
}

impl CaptureSpec {
    pub fn options(&self) -> Result<CaptureOptions> {
        let mut o = CaptureOptions::new(&self.root);
        o.msrs = MsrSelection::parse(&self.msrs)
            .map_err(anyhow::Error::msg)
            .context("--msrs")?;
        if let Some(only) = &self.only {
            o.sources = Sources::parse(only)
                .map_err(anyhow::Error::msg)
                .context("--only")?;
        }
        if let Some(c) = &self.cpus {
            o.cpus = Some(
                parse_cpu_list(c)
                    .with_context(|| format!("--cpus: not a CPU list: {c:?} (e.g. 0-3,6)"))?,
            );
        }
        o.phys_bits = self.phys_bits;
        Ok(o)
    }
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub spec: CaptureSpec,
    /// Write the snapshot here (default or `-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline snapshot (e.g. after a cold boot).
    pub baseline: PathBuf,
    /// The snapshot to compare with it (e.g. after a kexec boot).
    pub current: PathBuf,
    /// Output format (default: from the -o file name, else text).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Also show volatile registers and bits (counters, per-boot addresses).
    #[arg(long)]
    pub all: bool,
    /// Write the report here (default or `-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    pub snapshot: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ShowFormat,
    /// Write here (default or `-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
}

/// Parse the command line and run it; returns the exit status.
pub fn main() -> Result<u8> {
    let cli = Cli::parse();
    if let Some(p) = &cli.regdb {
        RegDb::install(RegDb::load(p)?);
    }
    if let Some(p) = &cli.owners {
        OwnerDb::install(OwnerDb::load(p)?);
    }
    match cli.command {
        Command::Capture(a) => run_capture(&a),
        Command::Diff(a) => run_diff(&a),
        Command::Show(a) => run_show(&a),
        Command::Import(args) => crate::import::run(args),
        Command::Record(a) => crate::record::command::run_record(&a),
        Command::Replay(a) => crate::record::command::run_replay(&a),
        Command::Explore(a) => crate::tui::run_explore(&a),
    }
}

/// Load a snapshot argument: a snapshot file, or any dump `import` understands
/// (imported on the fly).
pub fn load_input(path: &Path) -> Result<Snapshot> {
    // A frame of a recording: `FILE.rec@N` or `FILE.rec@MARK`.
    if let Some(frame) = path.to_str().and_then(crate::record::load_frame_arg) {
        return Ok(frame?);
    }
    Ok(crate::import::load_any(path)?)
}

/// How a file is named in reports: its path as given.
pub fn display_name(path: &Path) -> String {
    path.display().to_string()
}

fn run_capture(a: &CaptureArgs) -> Result<u8> {
    let mut opts = a.spec.options()?;
    opts.progress = std::io::stderr().is_terminal();
    let snap = capture::capture(&opts, RegDb::active())?;
    for p in &snap.meta.problems {
        if p.source == "msr" || p.source == "pci" || p.source == "mtrr" || p.source == "cpuid" {
            eprintln!(
                "regdrift: note: {}{}",
                p.path
                    .as_deref()
                    .map(|p| format!("{p}: "))
                    .unwrap_or_default(),
                crate::sanitize::inert(&p.reason)
            );
        }
    }
    let out = Output::from_arg(a.output.as_deref());
    snap.save(&out)?;
    Ok(0)
}

fn run_diff(a: &DiffArgs) -> Result<u8> {
    // The two inputs load side by side (parsing two big snapshots is most of a diff's
    // time), the register database and the owner table with them.
    let (b, c) = std::thread::scope(|s| {
        let current = s.spawn(|| {
            let c = load_input(&a.current);
            let _ = (RegDb::active(), OwnerDb::active());
            c
        });
        let b = load_input(&a.baseline);
        let c = current
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (b, c)
    });
    let (b, c) = (b?, c?);
    let opts = DiffOptions {
        all: a.all,
        baseline_name: display_name(&a.baseline),
        current_name: display_name(&a.current),
    };
    let report = diff::diff(&b, &c, &opts);
    // Freeing two big snapshots takes a while too: let it overlap the rendering.
    let dropper = std::thread::spawn(move || drop((b, c)));
    let out = Output::from_arg(a.output.as_deref());
    let format = a.format.unwrap_or_else(|| match &out {
        Output::File(p) => Format::from_file_name(&p.to_string_lossy()),
        Output::Stdout => Format::Text,
    });
    let text = match format {
        Format::Text => export::text::render(
            &report,
            &export::text::Style::for_terminal(
                out == Output::Stdout && std::io::stdout().is_terminal(),
            ),
        ),
        f => export::render(&report, f),
    };
    out.write(text.as_bytes())?;
    let _ = dropper.join();
    Ok(if report.significant().next().is_some() {
        1
    } else {
        0
    })
}

fn run_show(a: &ShowArgs) -> Result<u8> {
    let s = load_input(&a.snapshot)?;
    let text = match a.format {
        ShowFormat::Text => export::show::render(&s, &display_name(&a.snapshot)),
        ShowFormat::Json => s.to_json(),
    };
    Output::from_arg(a.output.as_deref()).write(text.as_bytes())?;
    Ok(0)
}
