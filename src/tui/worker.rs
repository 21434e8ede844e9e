//! Work off the UI thread: live captures at an interval, loading another baseline, the
//! diff and the indices of each new dataset, and exports. Results come back to the event
//! loop as [`Action`]s on one channel; the UI never waits on IO.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::app::{Action, Changed, Command, LoadReason, Loaded};
use super::model::{Dataset, Knowledge, Source};
use super::tree::Moving;
use crate::capture::CaptureOptions;
use crate::decode::pci;
use crate::diff::{diff_with, DiffOptions};
use crate::record::{Recording, RecordingWriter};
use crate::snapshot::{Bdf, PciDevice, Snapshot};

/// Diff `baseline` against `current` (volatile divergences kept: the TUI filters them)
/// and index the result.
pub fn build(baseline: Source, current: Source, know: Knowledge) -> Dataset {
    let opts = DiffOptions {
        all: true,
        baseline_name: baseline.name.clone(),
        current_name: current.name.clone(),
    };
    let report = diff_with(
        &baseline.snap,
        &current.snap,
        &opts,
        know.regdb,
        know.owners,
    );
    Dataset::build(baseline, current, report, know)
}

/// The registers whose values differ between two captures of the same source: MSRs by
/// index (on any CPU), PCI registers by device and offset (the decoded register holding
/// the changed byte, else its dword).
pub fn moved(prev: &Snapshot, next: &Snapshot) -> Moving {
    let mut m = Moving::default();
    if let (Some(a), Some(b)) = (&prev.msr, &next.msr) {
        for (cpu, cb) in &b.cpus {
            let Some(ca) = a.cpus.get(cpu) else { continue };
            for (i, v) in &cb.values {
                if ca.values.get(i).is_some_and(|old| old != v) {
                    m.msrs.insert(*i);
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (&prev.pci, &next.pci) {
        for (bdf, db) in &b.devices {
            if let Some(da) = a.devices.get(bdf) {
                moved_pci(*bdf, da, db, &mut m);
            }
        }
    }
    m
}

fn moved_pci(bdf: Bdf, a: &PciDevice, b: &PciDevice, m: &mut Moving) {
    if a.config == b.config {
        return;
    }
    let layout = pci::layout(&b.config);
    for (off, (x, y)) in a.config.iter().zip(b.config.iter()).enumerate() {
        if x != y {
            let off = off as u16;
            let reg = layout.reg_at(off).map_or(off & !3, |r| r.offset);
            m.pci.insert((bdf, reg));
        }
    }
}

/// Load a baseline for the views, naming it by its path: a snapshot, another tool's dump
/// (imported on the fly), or a frame of a recording (`FILE.rec@N`, `FILE.rec@MARK`).
pub fn load_source(path: &Path) -> Result<Source, String> {
    match crate::cli::load_input(path) {
        Ok(s) => Ok(Source {
            name: crate::cli::display_name(path),
            snap: Arc::new(s),
        }),
        Err(e) => Err(crate::sanitize::inert(&format!("{e:#}")).into_owned()),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    crate::sanitize::inert(&s).into_owned()
}

/// Run a one-shot command and say how it went (exports).
pub fn perform(cmd: Command) -> Option<Action> {
    match cmd {
        Command::Export {
            path,
            format,
            report,
        } => {
            let text = crate::export::render(&report, format);
            Some(Action::Exported(
                crate::atomic::write_atomic(&path, text.as_bytes())
                    .map(|()| path.display().to_string())
                    .map_err(|e| error_chain(&e)),
            ))
        }
        Command::LoadBaseline(_)
        | Command::Refresh
        | Command::Seek(_)
        | Command::BaselineFrame(_)
        | Command::LastChange { .. }
        | Command::Mark(_) => None,
    }
}

/// What the worker is asked to do.
#[derive(Debug)]
pub enum Control {
    SetBaseline(PathBuf),
    Refresh,
    /// Replay: show frame `n` (a later seek queued behind it wins).
    Seek(usize),
    /// Replay: frame `n` becomes the baseline.
    BaselineFrame(usize),
    /// Replay: the last frame at or before `frame` that changed `what`.
    LastChange {
        what: Changed,
        frame: usize,
    },
    /// Live, recording: put a mark on the last frame recorded.
    Mark(String),
    Stop,
}

/// Where the current snapshot comes from.
#[derive(Debug)]
pub enum Feed {
    /// A fixed snapshot (two files).
    Fixed(Source),
    /// Capture at an interval.
    Live {
        opts: CaptureOptions,
        interval: Duration,
        /// Append every capture to this recording (created by the first).
        record: Option<PathBuf>,
    },
    /// The frames of a recording.
    Replay(Box<Recording>),
}

/// The worker thread and its control channel.
pub struct Worker {
    ctl: Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Start the worker. `baseline` is `None` in live mode without `--baseline` (the
    /// first capture becomes the baseline) and in replay without one (frame 0 is).
    pub fn start(
        baseline: Option<Source>,
        feed: Feed,
        know: Knowledge,
        out: Sender<Action>,
    ) -> Worker {
        let (ctl, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("regdrift-worker".into())
            .spawn(move || {
                let mut w = State {
                    baseline,
                    baseline_frame: None,
                    current: None,
                    frame: None,
                    know,
                    out,
                    recording: None,
                };
                w.run(feed, rx);
            })
            .ok();
        Worker { ctl, thread }
    }

    pub fn send(&self, c: Control) {
        let _ = self.ctl.send(c);
    }

    /// Stop the worker; a capture in progress is not waited for.
    pub fn stop(mut self) {
        let _ = self.ctl.send(Control::Stop);
        drop(self.thread.take());
    }
}

struct State {
    baseline: Option<Source>,
    baseline_frame: Option<usize>,
    current: Option<Source>,
    frame: Option<usize>,
    know: Knowledge,
    out: Sender<Action>,
    /// Live: where captures are recorded, and the writer once the first frame is in.
    recording: Option<(PathBuf, Option<RecordingWriter>)>,
}

/// The name of frame `i` of `rec`: `frame 12 [after-kexec]`.
fn frame_name(rec: &Recording, i: usize) -> String {
    match rec.frame_meta(i).map(|m| m.marks) {
        Some([]) | None => format!("frame {i}"),
        Some(marks) => format!("frame {i} [{}]", crate::sanitize::inert(&marks.join(", "))),
    }
}

impl State {
    fn run(&mut self, feed: Feed, rx: Receiver<Control>) {
        match feed {
            Feed::Fixed(cur) => {
                self.current = Some(cur);
                loop {
                    match rx.recv() {
                        Ok(Control::SetBaseline(p)) => self.set_baseline(&p),
                        Ok(Control::Stop) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            }
            Feed::Live {
                opts,
                interval,
                record,
            } => {
                self.recording = record.map(|p| (p, None));
                let mut due = Instant::now();
                loop {
                    let wait = due.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(Control::SetBaseline(p)) => self.set_baseline(&p),
                        Ok(Control::Refresh) => due = Instant::now(),
                        Ok(Control::Mark(label)) => {
                            if !self.mark(&label) {
                                return;
                            }
                        }
                        Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(_) => {}
                        Err(RecvTimeoutError::Timeout) => {
                            if !self.capture(&opts) {
                                return;
                            }
                            due = Instant::now() + interval;
                        }
                    }
                }
            }
            Feed::Replay(rec) => self.replay(&rec, rx),
        }
    }

    fn replay(&mut self, rec: &Recording, rx: Receiver<Control>) {
        if self.baseline.is_none() {
            self.baseline = Some(Source {
                name: frame_name(rec, 0),
                snap: Arc::new(rec.first().clone()),
            });
            self.baseline_frame = Some(0);
        }
        if !self.seek(rec, 0) {
            return;
        }
        while let Ok(first) = rx.recv() {
            // Seeks queued behind each other: only the last one is shown.
            let mut batch = vec![first];
            while let Ok(c) = rx.try_recv() {
                batch.push(c);
            }
            let last_seek = batch.iter().rposition(|c| matches!(c, Control::Seek(_)));
            for (i, c) in batch.into_iter().enumerate() {
                let alive = match c {
                    Control::Seek(n) if Some(i) == last_seek => self.seek(rec, n),
                    Control::Seek(_) | Control::Refresh | Control::Mark(_) => true,
                    Control::SetBaseline(p) => {
                        self.set_baseline(&p);
                        true
                    }
                    Control::BaselineFrame(n) => self.baseline_frame(rec, n),
                    Control::LastChange { what, frame } => self.last_change(rec, what, frame),
                    Control::Stop => false,
                };
                if !alive {
                    return;
                }
            }
        }
    }

    /// Show frame `n`; false when the UI is gone.
    fn seek(&mut self, rec: &Recording, n: usize) -> bool {
        let t0 = Instant::now();
        match rec.snapshot(n) {
            Ok(s) => {
                self.current = Some(Source {
                    name: frame_name(rec, n),
                    snap: Arc::new(s),
                });
                self.frame = Some(n);
                self.send(LoadReason::Refresh, Moving::default(), Some(t0.elapsed()))
            }
            Err(e) => self.out.send(Action::Failed(error_chain(&e))).is_ok(),
        }
    }

    fn baseline_frame(&mut self, rec: &Recording, n: usize) -> bool {
        match rec.snapshot(n) {
            Ok(s) => {
                self.baseline = Some(Source {
                    name: frame_name(rec, n),
                    snap: Arc::new(s),
                });
                self.baseline_frame = Some(n);
                self.send(LoadReason::Baseline, Moving::default(), None)
            }
            Err(e) => self.out.send(Action::Failed(error_chain(&e))).is_ok(),
        }
    }

    fn last_change(&mut self, rec: &Recording, what: Changed, frame: usize) -> bool {
        let (label, result) = match &what {
            Changed::Msrs { cpu, msrs } => {
                let names: Vec<String> = msrs.iter().map(|m| format!("{m:#x}")).collect();
                let mut best: Result<Option<usize>, String> = Ok(None);
                for &m in msrs {
                    match rec.last_change_msr(*cpu, m, frame) {
                        Ok(f) => {
                            if let Ok(b) = &mut best {
                                *b = (*b).max(f);
                            }
                        }
                        Err(e) => {
                            best = Err(error_chain(&e));
                            break;
                        }
                    }
                }
                (format!("MSR {} on cpu {cpu}", names.join(",")), best)
            }
            Changed::Pci { bdf, offset, len } => {
                let mut best: Result<Option<usize>, String> = Ok(None);
                for o in *offset..offset.saturating_add(*len) {
                    match rec.last_change_pci(*bdf, o, frame) {
                        Ok(f) => {
                            if let Ok(b) = &mut best {
                                *b = (*b).max(f);
                            }
                        }
                        Err(e) => {
                            best = Err(error_chain(&e));
                            break;
                        }
                    }
                }
                (
                    format!("{bdf} config {offset:#x}..{:#x}", offset + len),
                    best,
                )
            }
        };
        self.out
            .send(Action::LastChanged {
                what: label,
                result,
            })
            .is_ok()
    }

    /// One live capture; false when the UI is gone.
    fn capture(&mut self, opts: &CaptureOptions) -> bool {
        if self.out.send(Action::CaptureStarted).is_err() {
            return false;
        }
        let t0 = Instant::now();
        let snap = match crate::capture::capture(opts, self.know.regdb) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .out
                    .send(Action::CaptureFailed(error_chain(&e)))
                    .is_ok()
            }
        };
        let src = Source {
            name: format!("live {}", opts.root.display()),
            snap: Arc::new(snap),
        };
        let moved = match &self.current {
            Some(prev) => moved(&prev.snap, &src.snap),
            None => Moving::default(),
        };
        if self.baseline.is_none() {
            self.baseline = Some(Source {
                name: "first capture".into(),
                snap: src.snap.clone(),
            });
        }
        if !self.record(&src.snap) {
            return false;
        }
        self.current = Some(src);
        self.send(LoadReason::Refresh, moved, Some(t0.elapsed()))
    }

    /// Append a capture to the recording, if there is one; a write error stops the
    /// recording (and says so), not the exploring. False when the UI is gone.
    fn record(&mut self, snap: &Snapshot) -> bool {
        let Some((path, writer)) = &mut self.recording else {
            return true;
        };
        let result = match writer {
            Some(w) => w.append(snap, &[]).map(|_| w.frame_count()),
            None => RecordingWriter::create(path, snap, &[]).map(|w| {
                let n = w.frame_count();
                *writer = Some(w);
                n
            }),
        };
        let msg = match result {
            Ok(frames) => Action::Recorded(Ok(frames)),
            Err(e) => {
                self.recording = None;
                Action::Recorded(Err(error_chain(&e)))
            }
        };
        self.out.send(msg).is_ok()
    }

    /// Mark the last recorded frame. False when the UI is gone.
    fn mark(&mut self, label: &str) -> bool {
        let result = match &mut self.recording {
            Some((_, Some(w))) => w
                .mark(label)
                .map(|()| label.to_string())
                .map_err(|e| error_chain(&e)),
            Some((_, None)) => Err("no frame recorded yet to mark".to_string()),
            None => Err("not recording (explore --record FILE)".to_string()),
        };
        self.out.send(Action::Marked(result)).is_ok()
    }

    fn set_baseline(&mut self, path: &Path) {
        match load_source(path) {
            Ok(b) => {
                self.baseline = Some(b);
                self.baseline_frame = None;
                if self.current.is_some() {
                    self.send(LoadReason::Baseline, Moving::default(), None);
                }
            }
            Err(e) => {
                let _ = self.out.send(Action::Failed(e));
            }
        }
    }

    fn send(&self, why: LoadReason, moved: Moving, took: Option<Duration>) -> bool {
        let (Some(b), Some(c)) = (&self.baseline, &self.current) else {
            return true;
        };
        let data = Arc::new(build(b.clone(), c.clone(), self.know));
        self.out
            .send(Action::Loaded(Loaded {
                data,
                moved,
                why,
                took,
                frame: self.frame,
                baseline_frame: self.baseline_frame,
            }))
            .is_ok()
    }
}
