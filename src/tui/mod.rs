//! `regdrift explore`: the interactive TUI (ratatui + crossterm). A live machine (or a
//! second snapshot) side by side with a baseline: a navigator of CPUs/MSRs, MTRRs and
//! PCI devices with the divergences marked, the diverging bits lit, the fields decoded
//! and the likely owners named.
//!
//! Shape: [`model`] (data, built off the UI thread) → [`app`] (state, `Action`,
//! `update`) → [`ui`] (rendering, a pure function of the app). [`worker`] captures and
//! loads on its own thread and sends typed messages into one event loop; [`term`] owns
//! the terminal and restores it on every way out.

pub mod app;
pub mod keymap;
pub mod model;
pub mod search;
pub mod term;
pub mod tree;
pub mod ui;
pub mod view;
pub mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ratatui::crossterm::event::{
    self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};

use app::{Action, App, Command, LiveState, Session};
use model::{Knowledge, Source};
use worker::{Control, Feed, Worker};

/// `regdrift explore`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    sudo regdrift explore --baseline cold.json     live machine vs a baseline\n  \
    regdrift explore --root DIR --baseline cold.json\n  \
    regdrift explore cold.json kexec.json          two snapshots, no live source\n\n\
    Press ? in the TUI for the keys. NO_COLOR turns colours off.")]
pub struct ExploreArgs {
    /// Two snapshots to compare (baseline, then current); without them the live machine
    /// under --root is captured every --interval.
    #[arg(value_name = "SNAPSHOT", num_args = 0..=2)]
    pub snapshots: Vec<PathBuf>,
    /// The baseline snapshot (default in live mode: the first capture).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Time between live captures.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Record every live capture into this recording (a new file); `m` marks a frame.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub capture: crate::cli::CaptureSpec,
}

/// What arrives at the event loop.
enum Msg {
    Term(Event),
    Do(Action),
}

/// Run `regdrift explore`; returns the exit status.
pub fn run_explore(args: &ExploreArgs) -> Result<u8> {
    let know = Knowledge::active();
    if args.record.is_some() && !args.snapshots.is_empty() {
        bail!("--record records the live machine: give no snapshot to compare with");
    }
    if let Some(r) = args.record.as_ref().filter(|r| r.exists()) {
        bail!(
            "{} exists: record into a new file (or add to it with `regdrift record --append`)",
            r.display()
        );
    }
    let (baseline, current) = match (args.snapshots.as_slice(), &args.baseline) {
        ([a, b], None) => (Some(a.clone()), Some(b.clone())),
        ([b], Some(a)) => (Some(a.clone()), Some(b.clone())),
        ([], b) => (b.clone(), None),
        ([_, _], Some(_)) => bail!("give two snapshots, or --baseline and one snapshot"),
        ([_], None) => bail!(
            "one snapshot given: add a second to compare with, or use --baseline FILE to \
             compare the live machine with it"
        ),
        _ => bail!("at most two snapshots"),
    };
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("explore needs a terminal (use `regdrift diff` for a report)");
    }
    let load = |p: &PathBuf| -> Result<Source> {
        Ok(Source {
            name: crate::cli::display_name(p),
            snap: Arc::new(crate::cli::load_input(p)?),
        })
    };
    let baseline = baseline.as_ref().map(load).transpose()?;
    let (tx, rx) = mpsc::channel::<Msg>();
    let (atx, arx) = mpsc::channel::<Action>();
    forward(arx, tx.clone())?;
    let (app, worker) = match current {
        Some(cur) => {
            let cur = load(&cur)?;
            let base = baseline.expect("two files");
            let data = Arc::new(worker::build(base.clone(), cur.clone(), know));
            let app = App::with_data(know, Session::Files, data);
            let w = Worker::start(Some(base), Feed::Fixed(cur), know, atx);
            (app, w)
        }
        None => {
            let mut opts = args.capture.options()?;
            opts.progress = false;
            if !opts.root.is_dir() {
                bail!("root {} is not a directory", opts.root.display());
            }
            let interval = args.interval.max(Duration::from_millis(100));
            let mut app = App::new(
                know,
                Session::Live(LiveState {
                    root: opts.root.display().to_string(),
                    interval,
                    refreshes: 0,
                    capturing: true,
                    last_took: None,
                    error: None,
                    record: args.record.as_ref().map(|p| app::RecordState {
                        path: p.display().to_string(),
                        frames: 0,
                        marks: 0,
                        error: None,
                    }),
                }),
            );
            if baseline.is_none() {
                app.filters.only_diverging = false;
            }
            let record = args.record.clone();
            let w = Worker::start(
                baseline,
                Feed::Live {
                    opts,
                    interval,
                    record,
                },
                know,
                atx,
            );
            (app, w)
        }
    };
    let result = event_loop(app, &worker, tx, rx);
    worker.stop();
    exit_status(result?)
}

/// Run `regdrift replay FILE` in the TUI: the recording's frames against a baseline (a
/// snapshot file, else frame 0); returns the exit status.
pub fn run_replay(file: &std::path::Path, baseline: Option<&std::path::Path>) -> Result<u8> {
    let know = Knowledge::active();
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!(
            "replay needs a terminal (use --list, or --export-frame and `regdrift diff` \
             for a report)"
        );
    }
    let rec = crate::record::Recording::open(file)?;
    let warning = rec
        .warning()
        .map(|w| crate::sanitize::inert(&w).into_owned());
    let frames: Vec<app::FrameInfo> = (0..rec.frame_count())
        .filter_map(|i| rec.frame_meta(i))
        .map(|m| app::FrameInfo {
            time_ms: m.time_ms,
            marks: m
                .marks
                .iter()
                .map(|l| crate::sanitize::inert(l).into_owned())
                .collect(),
        })
        .collect();
    let base = baseline
        .map(|p| -> Result<Source> {
            Ok(Source {
                name: crate::cli::display_name(p),
                snap: Arc::new(crate::cli::load_input(p)?),
            })
        })
        .transpose()?;
    let mut state = app::ReplayState::new(file.display().to_string(), frames, warning.clone());
    if base.is_some() {
        state.baseline_frame = None;
    }
    let mut app = App::new(know, Session::Replay(state));
    if let Some(w) = warning {
        app.update(Action::Failed(w));
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    let (atx, arx) = mpsc::channel::<Action>();
    forward(arx, tx.clone())?;
    let worker = Worker::start(base, Feed::Replay(Box::new(rec)), know, atx);
    let result = event_loop(app, &worker, tx, rx);
    worker.stop();
    exit_status(result?)
}

/// Forward the worker's actions into the event loop's channel.
fn forward(arx: Receiver<Action>, tx: Sender<Msg>) -> Result<()> {
    std::thread::Builder::new()
        .name("regdrift-forward".into())
        .spawn(move || {
            for a in arx {
                if tx.send(Msg::Do(a)).is_err() {
                    break;
                }
            }
        })
        .context("cannot start a thread")?;
    Ok(())
}

fn exit_status(app: App) -> Result<u8> {
    Ok(match app.signal {
        Some(sig) => 128u8.saturating_add(sig.clamp(0, 127) as u8),
        None => 0,
    })
}

/// Enter the terminal, run until quit, restore the terminal (also on error).
fn event_loop(mut app: App, worker: &Worker, tx: Sender<Msg>, rx: Receiver<Msg>) -> Result<App> {
    app.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let sig_handle = term::forward_signals(tx.clone(), |s| Msg::Do(Action::Signal(s)))
        .context("cannot install signal handlers")?;
    let mut tty = term::Tty::enter().context("cannot set up the terminal")?;
    let size = tty.terminal.size()?;
    app.update(Action::Resize {
        width: size.width,
        height: size.height,
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_input(tx.clone(), stop.clone())?;
    let result = (|| -> Result<()> {
        // While a replay plays, when the next frame is due.
        let mut due: Option<Instant> = None;
        loop {
            tty.terminal
                .draw(|f| f.render_widget(&app, f.area()))
                .context("cannot draw")?;
            // Block for the next message (or the next frame), then take everything queued
            // before drawing again: redraws are coalesced.
            let first = match app.tick_in() {
                Some(delay) => {
                    let at = *due.get_or_insert_with(|| Instant::now() + delay);
                    match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(m) => m,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            due = None;
                            Msg::Do(Action::Tick)
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
                None => {
                    due = None;
                    match rx.recv() {
                        Ok(m) => m,
                        Err(_) => return Ok(()),
                    }
                }
            };
            handle(&mut app, worker, &tx, first);
            while let Ok(m) = rx.try_recv() {
                handle(&mut app, worker, &tx, m);
            }
            if term::panicked() {
                bail!("a thread of regdrift panicked (message above)");
            }
            if app.quit {
                return Ok(());
            }
        }
    })();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sig_handle.close();
    drop(tty);
    result.map(|()| app)
}

fn spawn_input(tx: Sender<Msg>, stop: Arc<std::sync::atomic::AtomicBool>) -> Result<()> {
    std::thread::Builder::new()
        .name("regdrift-input".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(Msg::Term(ev)).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
        })
        .context("cannot start the input thread")?;
    Ok(())
}

fn handle(app: &mut App, worker: &Worker, tx: &Sender<Msg>, m: Msg) {
    let action = match m {
        Msg::Do(a) => Some(a),
        Msg::Term(ev) => map_event(app, &ev),
    };
    let Some(action) = action else { return };
    for cmd in app.update(action) {
        match cmd {
            Command::LoadBaseline(p) => worker.send(Control::SetBaseline(p)),
            Command::Refresh => worker.send(Control::Refresh),
            Command::Seek(n) => worker.send(Control::Seek(n)),
            Command::BaselineFrame(n) => worker.send(Control::BaselineFrame(n)),
            Command::LastChange { what, frame } => worker.send(Control::LastChange { what, frame }),
            Command::Mark(label) => worker.send(Control::Mark(label)),
            cmd @ Command::Export { .. } => {
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("regdrift-export".into())
                    .spawn(move || {
                        if let Some(a) = worker::perform(cmd) {
                            let _ = tx.send(Msg::Do(a));
                        }
                    });
            }
        }
    }
}

/// A terminal event as an action: key presses only (no repeats or releases), through
/// the keymap, or as text while a prompt is open.
pub fn map_event(app: &App, ev: &Event) -> Option<Action> {
    match ev {
        Event::Key(k) if k.kind == KeyEventKind::Press => map_key(app, k),
        Event::Key(_) => None,
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => Some(Action::ScrollUp {
                column: m.column,
                row: m.row,
            }),
            MouseEventKind::ScrollDown => Some(Action::ScrollDown {
                column: m.column,
                row: m.row,
            }),
            MouseEventKind::Down(MouseButton::Left) => Some(Action::Click {
                column: m.column,
                row: m.row,
            }),
            _ => None,
        },
        Event::Resize(w, h) => Some(Action::Resize {
            width: *w,
            height: *h,
        }),
        _ => None,
    }
}

fn map_key(app: &App, k: &KeyEvent) -> Option<Action> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && k.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if app.prompt.is_some() {
        return match k.code {
            KeyCode::Char(c) if !ctrl => Some(Action::Char(c)),
            KeyCode::Backspace => Some(Action::Backspace),
            KeyCode::Enter => Some(Action::Submit),
            KeyCode::Esc => Some(Action::Escape),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down | KeyCode::Tab => Some(Action::Down),
            _ => None,
        };
    }
    keymap::lookup(k, app.is_live(), app.is_replay())
}
