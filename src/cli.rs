//! Command-line interface. Each subcommand's work lives in its module; this file parses
//! arguments and dispatches. Exit codes: 0 fine (or no divergence), 1 divergence, 2 error.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Print the version (also `--version`).
    Version,
    /// Record snapshots over time (live, or assembled from snapshot files) into a recording.
    Record(crate::record::RecordArgs),
    /// Replay a recording: list its frames, or export one as a snapshot.
    Replay(crate::record::ReplayArgs),
}

/// Parse the command line and run it; returns the exit status.
pub fn main() -> Result<u8> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("regdrift {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Record(a) => crate::record::command::run_record(&a),
        Command::Replay(a) => crate::record::command::run_replay(&a),
    }
}
