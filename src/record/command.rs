//! `regdrift record` and the headless side of `regdrift replay`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};

use crate::atomic::Output;
use crate::error::FileError;
use crate::record::format::{format_time_ms, FrameRef, Recording, RecordingWriter};
use crate::sanitize::inert;
use crate::snapshot::Snapshot;

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The recording to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Build the recording from these snapshot files, one frame each, in order.
    #[arg(long, value_name = "SNAPSHOT", num_args = 1..)]
    pub from: Vec<PathBuf>,
    /// Snapshot files to record (like --from); with --append, the frames to add.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<PathBuf>,
    /// Add the frames to the end of the recording (creating it if missing), as a boot
    /// script does once per boot.
    #[arg(long)]
    pub append: bool,
    /// Replace an existing recording.
    #[arg(long, conflicts_with = "append")]
    pub force: bool,
    /// Labels for the frames written, in order (comma-separated or repeated; an empty
    /// label leaves its frame unmarked).
    #[arg(long, value_delimiter = ',', value_name = "LABEL,...")]
    pub mark: Vec<String>,
    /// Time between live frames.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Stop after this many live frames.
    #[arg(long, conflicts_with = "duration", value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this long (frames are taken at 0, interval, 2×interval… before it).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Capture options (live recording only).
    #[command(flatten)]
    pub capture: crate::cli::CaptureSpec,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("mode").args(["list", "export_frame"])))]
pub struct ReplayArgs {
    /// The recording.
    pub file: PathBuf,
    /// The baseline for the TUI (default: the first frame).
    #[arg(long, value_name = "FILE", conflicts_with = "mode")]
    pub baseline: Option<PathBuf>,
    /// List the frames: number, time, what changed, marks.
    #[arg(long)]
    pub list: bool,
    /// Write one frame as a snapshot: a frame number (-1 is the last) or a mark label.
    #[arg(long, value_name = "N|MARK")]
    pub export_frame: Option<String>,
    /// Where --export-frame writes (default or `-`: standard output).
    #[arg(short, long, value_name = "FILE", requires = "export_frame")]
    pub output: Option<PathBuf>,
}

/// Where frames go: a recording created on the first frame (or appended to).
pub struct Sink {
    path: PathBuf,
    append: bool,
    writer: Option<RecordingWriter>,
    labels: Vec<String>,
    written: usize,
}

impl Sink {
    /// `labels[n]` marks the n-th frame this sink writes (an empty label: no mark).
    pub fn new(path: &Path, append: bool, labels: Vec<String>) -> Sink {
        Sink {
            path: path.to_path_buf(),
            append,
            writer: None,
            labels,
            written: 0,
        }
    }

    /// Write the next frame; returns its frame number in the recording.
    pub fn write(&mut self, s: &Snapshot) -> Result<usize, FileError> {
        let marks: Vec<String> = self
            .labels
            .get(self.written)
            .filter(|l| !l.is_empty())
            .cloned()
            .into_iter()
            .collect();
        let frame = match &mut self.writer {
            Some(w) => w.append(s, &marks)?,
            None => {
                let w = if self.append && self.path.exists() {
                    let mut w = RecordingWriter::open_append(&self.path)?;
                    if let Some(r) = w.repaired() {
                        eprintln!("regdrift: warning: {}", inert(r));
                    }
                    w.append(s, &marks)?;
                    w
                } else {
                    RecordingWriter::create(&self.path, s, &marks)?
                };
                let frame = w.frame_count() - 1;
                self.writer = Some(w);
                frame
            }
        };
        self.written += 1;
        Ok(frame)
    }

    /// Frames written by this sink.
    pub fn written(&self) -> usize {
        self.written
    }

    pub fn writer(&self) -> Option<&RecordingWriter> {
        self.writer.as_ref()
    }
}

/// When live recording stops.
#[derive(Clone, Copy, Debug)]
pub struct LivePlan {
    pub interval: Duration,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

/// Take frames from `source` at the plan's interval into `sink` until the count or the
/// duration is reached or `stop` is set. Frames are due at start + k × interval; a
/// capture that overruns its slot skips the slots it missed rather than drifting.
/// Returns the number of frames written.
pub fn record_live(
    sink: &mut Sink,
    plan: &LivePlan,
    stop: &AtomicBool,
    mut source: impl FnMut() -> Result<Snapshot>,
    mut progress: impl FnMut(usize, &Sink),
) -> Result<usize> {
    let start = Instant::now();
    let interval = plan.interval.max(Duration::from_millis(1));
    let mut n: u64 = 0;
    let mut slot: u32 = 0;
    loop {
        if stop.load(Ordering::SeqCst) || plan.count.is_some_and(|c| n >= c) {
            break;
        }
        let snap = source().with_context(|| format!("capturing frame {}", sink.written()))?;
        sink.write(&snap)?;
        n += 1;
        progress(sink.written(), sink);
        if plan.count.is_some_and(|c| n >= c) {
            break;
        }
        // The next slot that has not started yet.
        let elapsed = start.elapsed();
        slot = slot.saturating_add(1).max(
            u32::try_from(elapsed.as_nanos() / interval.as_nanos())
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        );
        let due = interval.saturating_mul(slot);
        if plan.duration.is_some_and(|d| due >= d) {
            break;
        }
        while !stop.load(Ordering::SeqCst) {
            let now = start.elapsed();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
    }
    Ok(sink.written())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Stop live recording cleanly (after the frame being written) on SIGINT and SIGTERM.
fn install_stop_handler() -> &'static AtomicBool {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    &STOP
}

pub fn run_record(a: &RecordArgs) -> Result<u8> {
    let files: Vec<&PathBuf> = a.from.iter().chain(&a.snapshots).collect();
    if !a.append && !a.force && a.output.exists() {
        bail!(
            "{} exists: use --append to add frames to it or --force to replace it",
            inert(&a.output.display().to_string())
        );
    }
    if files.is_empty() {
        return run_record_live(a);
    }
    if a.count.is_some() || a.duration.is_some() {
        bail!("--count and --duration are for live recording, not for snapshot files");
    }
    if a.mark.len() > files.len() {
        bail!(
            "{} labels given with --mark for {} frame{}",
            a.mark.len(),
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
    }
    // Load everything first: a bad file leaves the recording untouched. Any input diff
    // takes will do: snapshots, other tools' dumps, frames of recordings (`FILE.rec@N`).
    let snaps = files
        .iter()
        .map(|p| crate::cli::load_input(p))
        .collect::<Result<Vec<_>>>()?;
    let mut sink = Sink::new(&a.output, a.append, a.mark.clone());
    for s in &snaps {
        sink.write(s)?;
    }
    let total = sink.writer().map_or(0, |w| w.frame_count());
    eprintln!(
        "regdrift: {} frame{} written to {} ({} in all)",
        sink.written(),
        if sink.written() == 1 { "" } else { "s" },
        inert(&a.output.display().to_string()),
        total
    );
    Ok(0)
}

/// Live recording with the capture options of `a`.
fn run_record_live(a: &RecordArgs) -> Result<u8> {
    let opts = a.capture.options()?;
    let db = crate::regdb::RegDb::active();
    let mut first = true;
    record_with(a, || {
        let snap = crate::capture::capture(&opts, db)?;
        if std::mem::take(&mut first) {
            // What could not be read is the same at every frame: say it once.
            for p in &snap.meta.problems {
                eprintln!(
                    "regdrift: note: {}{}",
                    p.path
                        .as_deref()
                        .map(|p| format!("{}: ", inert(p)))
                        .unwrap_or_default(),
                    inert(&p.reason)
                );
            }
        }
        Ok(snap)
    })
}

/// Live recording from `source` with the plan of `a` (SIGINT/SIGTERM end it cleanly).
pub fn record_with(a: &RecordArgs, source: impl FnMut() -> Result<Snapshot>) -> Result<u8> {
    if let Some(c) = a.count {
        if a.mark.len() as u64 > c {
            bail!("{} labels given with --mark for {c} frames", a.mark.len());
        }
    }
    let plan = LivePlan {
        interval: a.interval,
        count: a.count,
        duration: a.duration,
    };
    let stop = install_stop_handler();
    let mut sink = Sink::new(&a.output, a.append, a.mark.clone());
    let tty = std::io::stderr().is_terminal();
    let result = record_live(&mut sink, &plan, stop, source, |n, s| {
        if tty {
            let bytes = s.writer().map_or(0, |w| w.len());
            eprint!("\rregdrift: {n} frames, {} KiB ", bytes / 1024);
        }
    });
    if tty {
        eprintln!();
    }
    let written = sink.written();
    match &result {
        Ok(_) => eprintln!(
            "regdrift: {written} frame{} written to {}",
            if written == 1 { "" } else { "s" },
            inert(&a.output.display().to_string())
        ),
        Err(_) if written > 0 => eprintln!(
            "regdrift: {written} frame{} written to {} before the error",
            if written == 1 { "" } else { "s" },
            inert(&a.output.display().to_string())
        ),
        Err(_) => {}
    }
    result.map(|_| 0)
}

pub fn run_replay(a: &ReplayArgs) -> Result<u8> {
    if !a.list && a.export_frame.is_none() {
        return crate::tui::run_replay(&a.file, a.baseline.as_deref());
    }
    let rec = Recording::open(&a.file)?;
    if let Some(w) = rec.warning() {
        eprintln!("regdrift: warning: {}", inert(&w));
    }
    if a.list {
        let out = Output::from_arg(None);
        out.write(list(&rec)?.as_bytes())?;
    }
    if let Some(f) = &a.export_frame {
        let i = rec.resolve(&FrameRef::parse(f))?;
        let snap = rec.snapshot(i)?;
        snap.save(&Output::from_arg(a.output.as_deref()))?;
    }
    Ok(0)
}

fn human_duration(ms: i64) -> String {
    let d = Duration::from_millis(ms.unsigned_abs());
    let s = humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    if ms < 0 {
        format!("-{s}")
    } else {
        s
    }
}

/// The text of `replay --list`.
pub fn list(rec: &Recording) -> Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let n = rec.frame_count();
    let t0 = rec.frame_meta(0).map_or(0, |m| m.time_ms);
    let tn = rec.frame_meta(n - 1).map_or(0, |m| m.time_ms);
    let _ = writeln!(
        out,
        "{}: {n} frame{}, {} bytes, {} to {} ({}){}",
        inert(&rec.path().display().to_string()),
        if n == 1 { "" } else { "s" },
        rec.loaded_bytes(),
        format_time_ms(t0),
        format_time_ms(tn),
        human_duration(tn.saturating_sub(t0)),
        if rec.truncated() { ", truncated" } else { "" }
    );
    let _ = writeln!(out, "{}", inert(&rec.first().describe()));
    let rows: Vec<(String, String)> = (0..n)
        .map(|i| {
            let marks = rec.frame_meta(i).map_or(&[][..], |m| m.marks);
            let marks: Vec<String> = marks.iter().map(|l| inert(l).into_owned()).collect();
            let changes = if i == 0 {
                Ok(whole(rec.first()))
            } else {
                rec.changes(i).map(|c| c.to_string())
            };
            changes.map(|c| (marks.join(", "), c))
        })
        .collect::<Result<_, _>>()?;
    let mw = rows
        .iter()
        .map(|(m, _)| m.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, 40);
    let _ = writeln!(
        out,
        "{:>6}  {:<24}  {:>9}  {:<mw$}  changes",
        "frame", "time", "elapsed", "marks"
    );
    for (i, (marks, changes)) in rows.iter().enumerate() {
        let t = rec.frame_meta(i).map_or(0, |m| m.time_ms);
        let _ = writeln!(
            out,
            "{i:>6}  {:<24}  {:>9}  {marks:<mw$}  {changes}",
            format_time_ms(t),
            human_duration(t.saturating_sub(t0)),
        );
    }
    Ok(out)
}

fn whole(s: &Snapshot) -> String {
    let mut parts = vec!["whole snapshot".to_string()];
    if let Some(m) = &s.msr {
        let values: usize = m.cpus.values().map(|c| c.values.len()).sum();
        parts.push(format!("{values} MSR values on {} CPUs", m.cpus.len()));
    }
    if let Some(p) = &s.pci {
        parts.push(format!("{} devices", p.devices.len()));
    }
    parts.join(", ")
}
