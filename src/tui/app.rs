//! The TUI's model and its one `update` function: every key, mouse event, worker message
//! and timer tick becomes an [`Action`]; `update` changes the model and returns the
//! [`Command`]s (IO) the event loop runs off the UI thread. Nothing here touches the
//! terminal or the file system, so the whole app runs headless in tests.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ratatui::layout::{Position, Rect};

use super::model::{Dataset, Knowledge, Node, Target};
use super::tree::{self, Filters, Moving, Tree};
use super::{search, ui, view};
use crate::export::Format;
use crate::report::Report;

/// What the user (or a worker, or the clock) asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Expand,
    Collapse,
    ToggleExpand,
    ExpandAll,
    CollapseAll,
    NextDivergence,
    PrevDivergence,
    Search,
    ToggleOnlyDiverging,
    ToggleVolatile,
    ToggleHideMoving,
    FocusNext,
    ToggleDumpSide,
    ExportPrompt,
    BaselinePrompt,
    MarkPrompt,
    Refresh,
    Help,
    Escape,
    Quit,
    // Replay
    FramePrev,
    FrameNext,
    FirstFrame,
    LastFrame,
    PlayPause,
    Faster,
    Slower,
    NextMark,
    PrevMark,
    BaselineFromFrame,
    LastChange,
    // Text input in a prompt
    Char(char),
    Backspace,
    Submit,
    // Mouse
    ScrollUp {
        column: u16,
        row: u16,
    },
    ScrollDown {
        column: u16,
        row: u16,
    },
    Click {
        column: u16,
        row: u16,
    },
    Resize {
        width: u16,
        height: u16,
    },
    // From the worker and the clock
    Loaded(Loaded),
    CaptureStarted,
    CaptureFailed(String),
    Failed(String),
    Exported(Result<String, String>),
    /// SIGTERM, SIGHUP or SIGINT: quit (restoring the terminal).
    Signal(i32),
    /// The answer to "when did this register last change": the frame, or `None` when it
    /// is as frame 0 had it.
    LastChanged {
        what: String,
        result: Result<Option<usize>, String>,
    },
    /// Live, recording: the frames in the recording now, or why recording stopped.
    Recorded(Result<usize, String>),
    /// Live, recording: the mark put on the last frame, or why not.
    Marked(Result<String, String>),
    /// Time to show the next frame (replay playing).
    Tick,
}

/// A new dataset from the worker.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub data: Arc<Dataset>,
    /// Registers that changed since the previous capture of the same source.
    pub moved: Moving,
    pub why: LoadReason,
    /// How long the capture (or load) and the diff took.
    pub took: Option<Duration>,
    /// Replay: the frames shown as current and as baseline.
    pub frame: Option<usize>,
    pub baseline_frame: Option<usize>,
}

impl PartialEq for Loaded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.data, &other.data) && self.why == other.why
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadReason {
    /// The first data, or a live refresh.
    Refresh,
    /// A new baseline was loaded.
    Baseline,
}

/// IO the event loop runs for `update`, off the UI thread.
#[derive(Clone, Debug)]
pub enum Command {
    /// Render `report` in `format` and write it atomically to `path`.
    Export {
        path: PathBuf,
        format: Format,
        report: Box<Report>,
    },
    /// Load a snapshot file as the new baseline.
    LoadBaseline(PathBuf),
    /// Capture again now (live).
    Refresh,
    /// Replay: show frame `n`.
    Seek(usize),
    /// Replay: frame `n` becomes the baseline.
    BaselineFrame(usize),
    /// Replay: find the last frame at or before `frame` that changed `what`.
    LastChange { what: Changed, frame: usize },
    /// Live, recording: mark the last frame recorded.
    Mark(String),
}

/// What "when did this last change" asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// These MSRs of one CPU (one register, or the MSRs behind an MTRR line).
    Msrs { cpu: u32, msrs: Vec<u32> },
    /// These config bytes of a device.
    Pci {
        bdf: crate::snapshot::Bdf,
        offset: u16,
        len: u16,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Tree,
    Fields,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    Search,
    Export,
    Baseline,
    Mark,
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::Search => "/",
            PromptKind::Export => "export to (.txt, .md, .json): ",
            PromptKind::Baseline => "baseline file: ",
            PromptKind::Mark => "mark the last recorded frame: ",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub text: String,
    /// Search: the selection before the search started (restored by Esc).
    pub saved: Option<Node>,
    /// Search: matching items, best first, and the one shown.
    pub hits: Vec<usize>,
    pub hit: usize,
    /// Search: the filters and expansion before the search; each jump starts from them,
    /// so a hit passed over while typing leaves nothing behind.
    pub saved_view: Option<(Filters, HashSet<Node>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// Where the current snapshot comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Session {
    /// Two snapshot files.
    Files,
    /// A live machine under `root`, captured every `interval`.
    Live(LiveState),
    /// A recording, frame by frame.
    Replay(ReplayState),
}

/// Play speeds: multiples of the recorded time between frames.
pub const SPEEDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0];

/// One frame of a recording as the timeline shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub marks: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReplayState {
    pub path: String,
    pub frames: Vec<FrameInfo>,
    /// The frame asked for, and the one the data shows (they differ while it loads).
    pub frame: usize,
    pub shown: Option<usize>,
    /// The baseline: a frame, or `None` for a snapshot file.
    pub baseline_frame: Option<usize>,
    pub playing: bool,
    /// Index into [`SPEEDS`].
    pub speed: usize,
    /// The recording did not load to its end.
    pub warning: Option<String>,
}

impl ReplayState {
    pub fn new(path: String, frames: Vec<FrameInfo>, warning: Option<String>) -> Self {
        ReplayState {
            path,
            frames,
            frame: 0,
            shown: None,
            baseline_frame: Some(0),
            playing: false,
            speed: 2,
            warning,
        }
    }

    pub fn speed(&self) -> f64 {
        SPEEDS.get(self.speed).copied().unwrap_or(1.0)
    }

    /// How long frame `frame` stays on screen while playing: the recorded time to the
    /// next frame over the speed, within 30 ms and 2 s.
    pub fn delay(&self) -> Duration {
        let gap = match (self.frames.get(self.frame), self.frames.get(self.frame + 1)) {
            (Some(a), Some(b)) => (b.time_ms - a.time_ms).max(0) as f64,
            _ => 1000.0,
        };
        Duration::from_secs_f64((gap / self.speed() / 1000.0).clamp(0.03, 2.0))
    }

    /// `frame 12 [after-kexec]`.
    pub fn frame_name(&self, i: usize) -> String {
        match self.frames.get(i).map(|f| f.marks.as_slice()) {
            Some([]) | None => format!("frame {i}"),
            Some(marks) => format!("frame {i} [{}]", marks.join(", ")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LiveState {
    pub root: String,
    pub interval: Duration,
    pub refreshes: u64,
    pub capturing: bool,
    pub last_took: Option<Duration>,
    pub error: Option<String>,
    /// `--record FILE`: the file and the frames written so far (`None` once a write
    /// failed).
    pub record: Option<RecordState>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordState {
    pub path: String,
    pub frames: usize,
    pub marks: usize,
    /// Why recording stopped, if it did.
    pub error: Option<String>,
}

/// The whole state of the TUI.
#[derive(Debug)]
pub struct App {
    pub know: Knowledge,
    pub session: Session,
    pub data: Option<Arc<Dataset>>,
    pub tree: Tree,
    pub expanded: HashSet<Node>,
    /// Row under the cursor, and the node it shows.
    pub cursor: usize,
    pub selected: Option<Node>,
    /// First navigator row on screen.
    pub offset: usize,
    pub filters: Filters,
    pub moving: Moving,
    pub focus: Focus,
    pub field_cursor: usize,
    /// The hex dump shows the baseline's config space instead of the current one.
    pub dump_baseline: bool,
    pub prompt: Option<Prompt>,
    pub help: bool,
    pub help_offset: usize,
    pub message: Option<Message>,
    /// Terminal size.
    pub size: (u16, u16),
    /// Colours allowed (NO_COLOR unset).
    pub color: bool,
    pub quit: bool,
    /// The signal that ended the session, if one did.
    pub signal: Option<i32>,
    /// The selected row explained, kept up to date by `update` so that a frame only
    /// draws.
    pub shown: Option<Shown>,
}

/// The explanation of the selected row and, for an MSR, its values on every CPU.
#[derive(Clone, Debug)]
pub struct Shown {
    pub node: Node,
    pub detail: view::Detail,
    pub cpus: Vec<view::CpuGroup>,
}

impl App {
    pub fn new(know: Knowledge, session: Session) -> Self {
        App {
            know,
            session,
            data: None,
            tree: Tree::default(),
            expanded: [Node::MsrSection, Node::MtrrSection, Node::PciSection]
                .into_iter()
                .collect(),
            cursor: 0,
            selected: None,
            offset: 0,
            filters: Filters::default(),
            moving: Moving::default(),
            focus: Focus::Tree,
            field_cursor: 0,
            dump_baseline: false,
            prompt: None,
            help: false,
            help_offset: 0,
            message: None,
            size: (80, 24),
            color: true,
            quit: false,
            signal: None,
            shown: None,
        }
    }

    /// An app showing `data` from the start (two files, or a test).
    pub fn with_data(know: Knowledge, session: Session, data: Arc<Dataset>) -> Self {
        let mut app = App::new(know, session);
        app.update(Action::Loaded(Loaded {
            data,
            moved: Moving::default(),
            why: LoadReason::Refresh,
            took: None,
            frame: None,
            baseline_frame: None,
        }));
        app
    }

    pub fn is_live(&self) -> bool {
        matches!(self.session, Session::Live(_))
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.session, Session::Replay(_))
    }

    /// When the next frame is due, while a replay plays.
    pub fn tick_in(&self) -> Option<Duration> {
        match &self.session {
            Session::Replay(r) if r.playing => Some(r.delay()),
            _ => None,
        }
    }

    /// The screen areas for the current terminal size.
    pub fn areas(&self) -> ui::Areas {
        ui::areas(Rect::new(0, 0, self.size.0, self.size.1), self)
    }

    /// Navigator rows that fit on screen.
    pub fn page(&self) -> usize {
        (self.areas().nav_rows.height as usize).max(1)
    }

    /// The explanation of the selected row.
    pub fn detail(&self) -> Option<&view::Detail> {
        self.shown.as_ref().map(|s| &s.detail)
    }

    /// Explain the selected row again (new selection or new data).
    fn explain(&mut self) {
        self.shown = match (&self.data, self.selected) {
            (Some(ds), Some(node)) => {
                let detail = view::detail(ds, self.know, node);
                let cpus = detail
                    .msr
                    .map(|i| view::cpu_groups(ds, i))
                    .unwrap_or_default();
                Some(Shown { node, detail, cpus })
            }
            _ => None,
        };
    }

    /// The field under the cursor, when the fields pane has the focus.
    pub fn selected_field(&self) -> Option<usize> {
        (self.focus == Focus::Fields).then_some(self.field_cursor)
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    fn warn(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    // ---- tree maintenance ------------------------------------------------------------

    /// Rebuild the visible rows, keeping the selection on the same node when it is still
    /// shown, else on the nearest row after it.
    pub fn rebuild(&mut self) {
        let Some(ds) = self.data.clone() else {
            self.tree = Tree::default();
            self.shown = None;
            return;
        };
        self.tree = Tree::build(&ds, self.know, self.filters, &self.moving, &self.expanded);
        // The data may be new: explain the selection afresh.
        self.shown = None;
        let pos = match self.selected {
            Some(node) => self.tree.position(node).or_else(|| {
                let key = tree::order_key(&ds, node);
                self.tree
                    .rows
                    .iter()
                    .position(|r| tree::order_key(&ds, r.node) >= key)
                    .or(self.tree.rows.len().checked_sub(1))
            }),
            None => (!self.tree.rows.is_empty()).then_some(0),
        };
        self.set_cursor(pos.unwrap_or(0));
    }

    fn set_cursor(&mut self, i: usize) {
        let n = self.tree.rows.len();
        self.cursor = if n == 0 { 0 } else { i.min(n - 1) };
        let node = self.tree.rows.get(self.cursor).map(|r| r.node);
        if node != self.selected {
            self.field_cursor = 0;
        }
        self.selected = node;
        if self.shown.as_ref().map(|s| s.node) != node {
            self.explain();
        }
        self.scroll_to_cursor();
    }

    fn scroll_to_cursor(&mut self) {
        let page = self.page();
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + page {
            self.offset = self.cursor + 1 - page;
        }
        let max_offset = self.tree.rows.len().saturating_sub(page);
        self.offset = self.offset.min(max_offset);
    }

    /// Select `node`, expanding its ancestors and, when a filter hides it, turning that
    /// filter off (and saying so). Returns whether it could be shown.
    pub fn select_node(&mut self, node: Node) -> bool {
        let Some(ds) = self.data.clone() else {
            return false;
        };
        // Already on screen: no rebuild needed.
        if let Some(p) = self.tree.position(node) {
            self.set_cursor(p);
            return true;
        }
        for a in tree::ancestors(&ds, node) {
            self.expanded.insert(a);
        }
        self.selected = Some(node);
        self.rebuild();
        if self.tree.position(node).is_none() {
            let mut relaxed = Vec::new();
            if self.filters.only_diverging {
                self.filters.only_diverging = false;
                relaxed.push("all rows shown");
            }
            if self.tree.position(node).is_none() && !self.filters.show_volatile {
                self.filters.show_volatile = true;
                relaxed.push("volatile shown");
            }
            if self.filters.hide_moving {
                self.filters.hide_moving = false;
                relaxed.push("moving shown");
            }
            self.rebuild();
            if !relaxed.is_empty() && self.tree.position(node).is_some() {
                self.say(format!(
                    "filters relaxed to reach it: {}",
                    relaxed.join(", ")
                ));
            }
        }
        match self.tree.position(node) {
            Some(p) => {
                self.set_cursor(p);
                true
            }
            None => false,
        }
    }

    /// The divergence the row of `node` shows, if it is counted under the filters.
    fn divergence_at(&self, ds: &Dataset, node: Node) -> Option<usize> {
        let d = match node {
            Node::Msr { cpu, index } => ds.msr_div(cpu, index),
            Node::PciReg { bdf, offset } => ds.pci_div(bdf, offset),
            Node::Device(bdf) => ds.device_divs(bdf).first().copied(),
            Node::Mtrr(r) => ds
                .mtrr
                .get(r as usize)
                .and_then(|e| e.divs.first().copied()),
            _ => None,
        }?;
        self.tree.order.iter().any(|&(_, i)| i == d).then_some(d)
    }

    /// 1-based number of the divergence under the cursor among those counted.
    pub fn divergence_number(&self) -> Option<usize> {
        let ds = self.data.as_ref()?;
        let d = self.divergence_at(ds, self.selected?)?;
        let key = ds.target(d).map(|t| tree::order_key(ds, t))?;
        self.tree
            .order
            .iter()
            .position(|&(k, _)| k == key)
            .map(|p| p + 1)
    }

    fn step_divergence(&mut self, forward: bool) {
        let Some(ds) = self.data.clone() else { return };
        if self.tree.order.is_empty() {
            self.say("no divergences shown");
            return;
        }
        let here = match self.selected {
            Some(node) => match self.divergence_at(&ds, node).and_then(|d| ds.target(d)) {
                Some(t) => tree::order_key(&ds, t),
                None => tree::order_key(&ds, node),
            },
            None => (0, 0, 0),
        };
        let order = &self.tree.order;
        let found = if forward {
            order.iter().find(|(k, _)| *k > here)
        } else {
            order.iter().rev().find(|(k, _)| *k < here)
        };
        let (wrapped, target) = match found {
            Some(&(_, i)) => (false, i),
            None if forward => (true, order[0].1),
            None => (true, order[order.len() - 1].1),
        };
        if let Some(node) = ds.target(target) {
            self.select_node(node);
            if wrapped {
                self.say(if forward {
                    "wrapped to the first divergence"
                } else {
                    "wrapped to the last divergence"
                });
            }
        }
    }

    // ---- search --------------------------------------------------------------------

    fn search_target(&self, item: usize) -> Option<Node> {
        let ds = self.data.as_ref()?;
        let it = ds.search.get(item)?;
        match &it.target {
            Target::Msr(index) => {
                let with: Vec<u32> = ds
                    .cpus
                    .iter()
                    .filter(|c| c.msrs.binary_search(index).is_ok())
                    .map(|c| c.cpu)
                    .collect();
                let cpu = with
                    .iter()
                    .copied()
                    .find(|&c| ds.msr_div(c, *index).is_some())
                    .or(with.first().copied())?;
                Some(Node::Msr { cpu, index: *index })
            }
            Target::Nodes(nodes) => nodes
                .iter()
                .copied()
                .find(|&n| self.divergence_at(ds, n).is_some())
                .or(nodes.first().copied()),
        }
    }

    fn run_search(&mut self) {
        let Some(ds) = self.data.clone() else { return };
        let Some(p) = self.prompt.as_mut() else {
            return;
        };
        p.hits = search::search(&ds.search, &p.text);
        p.hit = 0;
        self.show_hit();
    }

    fn show_hit(&mut self) {
        let Some(p) = &self.prompt else { return };
        let hit = p.hits.get(p.hit).copied();
        let saved = p.saved;
        if let Some((f, e)) = p.saved_view.clone() {
            if self.filters != f || self.expanded != e {
                self.filters = f;
                self.expanded = e;
                self.rebuild();
            }
        }
        let target = match hit {
            Some(item) => self.search_target(item),
            None => saved,
        };
        if let Some(node) = target {
            self.select_node(node);
        }
    }

    /// The search hit shown, as text, with its rank: `MSR_IA32_POWER_CTL 0x1fc (1/3)`.
    pub fn search_status(&self) -> Option<String> {
        let p = self.prompt.as_ref()?;
        if p.kind != PromptKind::Search || p.text.trim().is_empty() {
            return None;
        }
        let ds = self.data.as_ref()?;
        Some(match p.hits.get(p.hit) {
            Some(&i) => format!(
                "{} ({}/{})",
                ds.search.get(i).map_or("", |s| s.text.as_str()),
                p.hit + 1,
                p.hits.len()
            ),
            None => "no match".to_string(),
        })
    }

    // ---- export --------------------------------------------------------------------

    /// The report as shown: without the divergences the filters leave out.
    pub fn shown_report(&self) -> Option<Report> {
        let ds = self.data.as_ref()?;
        let shown: HashSet<usize> = self.tree.order.iter().map(|&(_, i)| i).collect();
        let mut r = ds.report.clone();
        let mut hidden_volatile = r.hidden_volatile;
        let mut hidden_moving = 0usize;
        r.divergences = ds
            .report
            .divergences
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                if shown.contains(&i) || ds.target(i).is_none() && self.counts_untargeted(d) {
                    Some(d.clone())
                } else {
                    if d.volatile.is_some() {
                        hidden_volatile += 1;
                    } else {
                        hidden_moving += 1;
                    }
                    None
                }
            })
            .collect();
        r.hidden_volatile = hidden_volatile;
        if hidden_moving > 0 {
            r.warnings.push(format!(
                "{hidden_moving} divergence{} left out: on registers seen changing between \
                 live captures",
                if hidden_moving == 1 { "" } else { "s" }
            ));
        }
        Some(r)
    }

    /// A divergence no row shows still goes into an export unless the volatile filter
    /// leaves it out.
    fn counts_untargeted(&self, d: &crate::report::Divergence) -> bool {
        self.filters.show_volatile || d.volatile.is_none()
    }

    // ---- update ----------------------------------------------------------------------

    /// Apply `action`; returns the IO to run.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        let mut cmds = Vec::new();
        if self.prompt.is_some() && self.prompt_action(&action, &mut cmds) {
            return cmds;
        }
        if self.help {
            match action {
                Action::Help | Action::Escape | Action::Quit => {
                    self.help = false;
                    return cmds;
                }
                Action::Up => self.help_offset = self.help_offset.saturating_sub(1),
                Action::Down => self.help_offset += 1,
                Action::PageUp => self.help_offset = self.help_offset.saturating_sub(10),
                Action::PageDown => self.help_offset += 10,
                Action::Top => self.help_offset = 0,
                Action::Resize { width, height } => {
                    self.size = (width, height);
                }
                Action::Loaded(_)
                | Action::CaptureStarted
                | Action::CaptureFailed(_)
                | Action::Failed(_)
                | Action::Exported(_)
                | Action::Signal(_)
                | Action::LastChanged { .. }
                | Action::Recorded(_)
                | Action::Marked(_)
                | Action::Tick => return self.update_background(action),
                _ => {}
            }
            return cmds;
        }
        match action {
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page() as isize)),
            Action::PageDown => self.move_by(self.page() as isize),
            Action::Top => match self.focus {
                Focus::Tree => self.set_cursor(0),
                Focus::Fields => self.field_cursor = 0,
            },
            Action::Bottom => match self.focus {
                Focus::Tree => self.set_cursor(usize::MAX),
                Focus::Fields => self.move_by(isize::MAX / 2),
            },
            Action::Expand => self.expand(),
            Action::Collapse => self.collapse(),
            Action::ToggleExpand => {
                if let Some(row) = self.tree.rows.get(self.cursor).copied() {
                    if row.expandable {
                        if row.expanded {
                            self.expanded.remove(&row.node);
                        } else {
                            self.expanded.insert(row.node);
                        }
                        self.rebuild();
                    }
                }
            }
            Action::ExpandAll => {
                if let Some(ds) = self.data.clone() {
                    self.expanded
                        .extend(ds.cpus.iter().map(|c| Node::Cpu(c.cpu)));
                    for d in &ds.devices {
                        self.expanded.insert(Node::Device(d.bdf));
                        for g in 0..d.groups.len() {
                            self.expanded.insert(Node::PciGroup {
                                bdf: d.bdf,
                                group: g as u16,
                            });
                        }
                    }
                    self.rebuild();
                }
            }
            Action::CollapseAll => {
                self.expanded.retain(|n| {
                    matches!(n, Node::MsrSection | Node::MtrrSection | Node::PciSection)
                });
                if let Some(ds) = self.data.clone() {
                    // Keep the cursor on the collapsed ancestor of what it showed.
                    if let Some(sel) = self.selected {
                        let anc = tree::ancestors(&ds, sel);
                        self.selected = anc.get(1).or(anc.first()).copied().or(Some(sel));
                    }
                }
                self.rebuild();
            }
            Action::NextDivergence => self.step_divergence(true),
            Action::PrevDivergence => self.step_divergence(false),
            Action::Search => {
                self.prompt = Some(Prompt {
                    kind: PromptKind::Search,
                    text: String::new(),
                    saved: self.selected,
                    hits: Vec::new(),
                    hit: 0,
                    saved_view: Some((self.filters, self.expanded.clone())),
                });
            }
            Action::ToggleOnlyDiverging => {
                self.filters.only_diverging = !self.filters.only_diverging;
                self.say(if self.filters.only_diverging {
                    "showing only what diverges"
                } else {
                    "showing every register"
                });
                self.rebuild();
            }
            Action::ToggleVolatile => {
                self.filters.show_volatile = !self.filters.show_volatile;
                self.say(if self.filters.show_volatile {
                    "volatile registers shown"
                } else {
                    "volatile registers hidden"
                });
                self.rebuild();
            }
            Action::ToggleHideMoving => {
                self.filters.hide_moving = !self.filters.hide_moving;
                self.say(if self.filters.hide_moving {
                    let n = self.moving.len();
                    format!(
                        "left out what was seen moving ({n} register{})",
                        if n == 1 { "" } else { "s" }
                    )
                } else {
                    "registers seen moving shown".to_string()
                });
                self.rebuild();
            }
            Action::FocusNext => {
                let has_fields = self.detail().is_some_and(|d| !d.fields.is_empty());
                self.focus = match self.focus {
                    Focus::Tree if has_fields => Focus::Fields,
                    _ => Focus::Tree,
                };
            }
            Action::ToggleDumpSide => self.dump_baseline = !self.dump_baseline,
            Action::ExportPrompt => {
                if self.data.is_some() {
                    self.prompt = Some(Prompt {
                        kind: PromptKind::Export,
                        text: "regdrift-report.txt".into(),
                        saved: None,
                        hits: Vec::new(),
                        hit: 0,
                        saved_view: None,
                    });
                }
            }
            Action::BaselinePrompt => {
                self.prompt = Some(Prompt {
                    kind: PromptKind::Baseline,
                    text: String::new(),
                    saved: None,
                    hits: Vec::new(),
                    hit: 0,
                    saved_view: None,
                });
            }
            Action::Refresh => {
                if self.is_live() {
                    cmds.push(Command::Refresh);
                }
            }
            Action::MarkPrompt => match &self.session {
                Session::Live(LiveState {
                    record: Some(r), ..
                }) if r.error.is_none() => {
                    self.prompt = Some(Prompt {
                        kind: PromptKind::Mark,
                        text: String::new(),
                        saved: None,
                        hits: Vec::new(),
                        hit: 0,
                        saved_view: None,
                    });
                }
                _ => self.warn("not recording: start with explore --record FILE"),
            },
            Action::Help => {
                self.help = true;
                self.help_offset = 0;
            }
            Action::Escape => {
                self.message = None;
                self.focus = Focus::Tree;
            }
            Action::Quit => self.quit = true,
            Action::ScrollUp { column, row } => self.scroll_at(column, row, -3),
            Action::ScrollDown { column, row } => self.scroll_at(column, row, 3),
            Action::Click { column, row } => cmds.extend(self.click(column, row)),
            Action::Resize { width, height } => {
                self.size = (width, height);
                self.scroll_to_cursor();
            }
            Action::FramePrev
            | Action::FrameNext
            | Action::FirstFrame
            | Action::LastFrame
            | Action::PlayPause
            | Action::Faster
            | Action::Slower
            | Action::NextMark
            | Action::PrevMark
            | Action::BaselineFromFrame
            | Action::LastChange => cmds.extend(self.replay_action(action)),
            Action::Char(_) | Action::Backspace | Action::Submit => {}
            other => return self.update_background(other),
        }
        cmds
    }

    /// Worker messages and ticks: handled the same whatever is on screen.
    fn update_background(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Tick => return self.tick(),
            Action::LastChanged { what, result } => return self.last_changed(what, result),
            Action::Loaded(l) => self.loaded(l),
            Action::CaptureStarted => {
                if let Session::Live(s) = &mut self.session {
                    s.capturing = true;
                }
            }
            Action::CaptureFailed(e) => {
                if let Session::Live(s) = &mut self.session {
                    s.capturing = false;
                    s.error = Some(e.clone());
                }
                self.warn(format!("capture failed: {e}"));
            }
            Action::Failed(e) => {
                if let Session::Replay(r) = &mut self.session {
                    r.playing = false;
                    r.frame = r.shown.unwrap_or(0);
                }
                self.warn(e)
            }
            Action::Exported(Ok(path)) => self.say(format!("exported to {path}")),
            Action::Exported(Err(e)) => self.warn(format!("export failed: {e}")),
            Action::Signal(sig) => {
                self.signal = Some(sig);
                self.quit = true;
            }
            Action::Recorded(result) => {
                if let Session::Live(LiveState {
                    record: Some(r), ..
                }) = &mut self.session
                {
                    match result {
                        Ok(n) => r.frames = n,
                        Err(e) => {
                            r.error = Some(e.clone());
                            self.warn(format!("recording stopped: {e}"));
                        }
                    }
                }
            }
            Action::Marked(result) => match result {
                Ok(label) => {
                    if let Session::Live(LiveState {
                        record: Some(r), ..
                    }) = &mut self.session
                    {
                        r.marks += 1;
                        let n = r.frames.saturating_sub(1);
                        self.say(format!("marked frame {n} {label:?}"));
                    }
                }
                Err(e) => self.warn(format!("no mark: {e}")),
            },
            _ => {}
        }
        Vec::new()
    }

    // ---- replay ----------------------------------------------------------------------

    fn replay_action(&mut self, action: Action) -> Vec<Command> {
        let node = self.selected;
        let query = node.and_then(|n| self.change_query(n));
        let Session::Replay(r) = &mut self.session else {
            return Vec::new();
        };
        let n = r.frames.len();
        let last = n.saturating_sub(1);
        // A message about another frame would mislead.
        self.message = None;
        let seek = |r: &mut ReplayState, to: usize| {
            let to = to.min(last);
            if to == r.frame {
                Vec::new()
            } else {
                r.frame = to;
                vec![Command::Seek(to)]
            }
        };
        let mut msg: Option<String> = None;
        let cmds = match action {
            Action::FramePrev => {
                r.playing = false;
                let to = r.frame.saturating_sub(1);
                seek(r, to)
            }
            Action::FrameNext => {
                r.playing = false;
                let to = r.frame + 1;
                seek(r, to)
            }
            Action::FirstFrame => seek(r, 0),
            Action::LastFrame => seek(r, last),
            Action::PlayPause => {
                r.playing = !r.playing;
                if r.playing && r.frame >= last {
                    // Play from the start again.
                    r.frame = 0;
                    return vec![Command::Seek(0)];
                }
                Vec::new()
            }
            Action::Faster => {
                r.speed = (r.speed + 1).min(SPEEDS.len() - 1);
                msg = Some(format!("speed ×{}", r.speed()));
                Vec::new()
            }
            Action::Slower => {
                r.speed = r.speed.saturating_sub(1);
                msg = Some(format!("speed ×{}", r.speed()));
                Vec::new()
            }
            Action::NextMark | Action::PrevMark => {
                let forward = action == Action::NextMark;
                let marked = |i: &usize| r.frames.get(*i).is_some_and(|f| !f.marks.is_empty());
                let found = if forward {
                    (r.frame + 1..n).find(marked)
                } else {
                    (0..r.frame).rev().find(marked)
                };
                match found {
                    Some(i) => {
                        r.playing = false;
                        msg = Some(r.frame_name(i));
                        seek(r, i)
                    }
                    None => {
                        msg = Some(if forward {
                            "no mark after this frame".into()
                        } else {
                            "no mark before this frame".into()
                        });
                        Vec::new()
                    }
                }
            }
            Action::BaselineFromFrame => {
                msg = Some(format!("baseline: {}…", r.frame_name(r.frame)));
                vec![Command::BaselineFrame(r.frame)]
            }
            Action::LastChange => match query {
                Some(what) => vec![Command::LastChange {
                    what,
                    frame: r.frame,
                }],
                None => {
                    msg = Some("select a register (an MSR, an MTRR line or a PCI register)".into());
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        if let Some(m) = msg {
            self.say(m);
        }
        cmds
    }

    /// The registers behind `node`, for "when did this last change".
    fn change_query(&self, node: Node) -> Option<Changed> {
        let ds = self.data.as_ref()?;
        match node {
            Node::Msr { cpu, index } => Some(Changed::Msrs {
                cpu,
                msrs: vec![index],
            }),
            Node::Mtrr(row) => {
                let e = ds.mtrr.get(row as usize)?;
                let cpu = ds.cpus.first()?.cpu;
                (!e.msrs.is_empty()).then(|| Changed::Msrs {
                    cpu,
                    msrs: e.msrs.clone(),
                })
            }
            Node::PciReg { bdf, offset } => {
                let r = ds.device(bdf)?.reg(offset)?;
                Some(Changed::Pci {
                    bdf,
                    offset,
                    len: r.width as u16,
                })
            }
            Node::Device(bdf) => {
                let len = ds
                    .current_device(bdf)
                    .or(ds.baseline_device(bdf))
                    .map_or(64, |d| d.config.len() as u16);
                Some(Changed::Pci {
                    bdf,
                    offset: 0,
                    len,
                })
            }
            _ => None,
        }
    }

    fn last_changed(
        &mut self,
        what: String,
        result: Result<Option<usize>, String>,
    ) -> Vec<Command> {
        let Session::Replay(r) = &mut self.session else {
            return Vec::new();
        };
        match result {
            Ok(Some(i)) => {
                let text = format!(
                    "{what} last changed at {} ({})",
                    r.frame_name(i),
                    r.frames.get(i).map_or(String::new(), |f| {
                        crate::record::format::format_time_ms(f.time_ms)
                    })
                );
                r.playing = false;
                let go = i != r.frame;
                r.frame = i;
                self.say(text);
                if go {
                    return vec![Command::Seek(i)];
                }
            }
            Ok(None) => self.say(format!("{what} is as frame 0 had it")),
            Err(e) => self.warn(e),
        }
        Vec::new()
    }

    fn tick(&mut self) -> Vec<Command> {
        let Session::Replay(r) = &mut self.session else {
            return Vec::new();
        };
        if !r.playing || r.shown != Some(r.frame) {
            // Paused, or the frame before has not loaded yet.
            return Vec::new();
        }
        if r.frame + 1 >= r.frames.len() {
            r.playing = false;
            self.say("end of the recording");
            return Vec::new();
        }
        r.frame += 1;
        vec![Command::Seek(r.frame)]
    }

    fn loaded(&mut self, l: Loaded) {
        let first = self.data.is_none();
        let none_before = self.tree.order.is_empty();
        for m in &l.moved.msrs {
            self.moving.msrs.insert(*m);
        }
        for p in &l.moved.pci {
            self.moving.pci.insert(*p);
        }
        if let Session::Live(s) = &mut self.session {
            s.capturing = false;
            s.error = None;
            s.last_took = l.took;
            if l.why == LoadReason::Refresh {
                s.refreshes += 1;
            }
        }
        if let Session::Replay(r) = &mut self.session {
            if l.frame.is_some() {
                r.shown = l.frame;
            }
            r.baseline_frame = l.baseline_frame;
        }
        let ds = l.data;
        if l.why == LoadReason::Baseline {
            self.say(format!("baseline: {}", ds.baseline.name));
        }
        // Rows that showed a divergence before this data (none on the first load).
        let before: HashSet<Node> = match (&self.data, first || l.why == LoadReason::Baseline) {
            (Some(old), false) => self
                .tree
                .order
                .iter()
                .filter_map(|&(_, i)| old.target(i))
                .collect(),
            _ => HashSet::new(),
        };
        self.data = Some(ds.clone());
        // Open the way to every divergence that is new.
        self.tree = Tree::build(&ds, self.know, self.filters, &self.moving, &self.expanded);
        for &(_, i) in &self.tree.order {
            if let Some(t) = ds.target(i).filter(|t| !before.contains(t)) {
                for a in tree::ancestors(&ds, t) {
                    self.expanded.insert(a);
                }
            }
        }
        self.rebuild();
        let on_header = matches!(
            self.selected,
            None | Some(Node::MsrSection | Node::MtrrSection | Node::PciSection)
        );
        if first || (none_before && on_header) {
            // Start on the first divergence, if any.
            if let Some(&(_, i)) = self.tree.order.first() {
                if let Some(t) = ds.target(i) {
                    self.select_node(t);
                }
            }
        }
    }

    /// Prompt editing; returns true when `action` was consumed by the prompt.
    fn prompt_action(&mut self, action: &Action, cmds: &mut Vec<Command>) -> bool {
        let Some(p) = self.prompt.as_mut() else {
            return false;
        };
        let kind = p.kind;
        match action {
            Action::Char(c) => {
                if !c.is_control() && p.text.chars().count() < 4096 {
                    p.text.push(*c);
                }
                if kind == PromptKind::Search {
                    self.run_search();
                }
            }
            Action::Backspace => {
                p.text.pop();
                if kind == PromptKind::Search {
                    self.run_search();
                }
            }
            Action::Down | Action::Up if kind == PromptKind::Search => {
                let n = p.hits.len();
                if n > 0 {
                    p.hit = if *action == Action::Down {
                        (p.hit + 1) % n
                    } else {
                        (p.hit + n - 1) % n
                    };
                    self.show_hit();
                }
            }
            Action::Escape => {
                let saved = p.saved;
                let view = p.saved_view.take();
                self.prompt = None;
                if kind == PromptKind::Search {
                    if let Some((f, e)) = view {
                        self.filters = f;
                        self.expanded = e;
                    }
                    match saved {
                        Some(s) => {
                            self.select_node(s);
                        }
                        None => self.rebuild(),
                    }
                }
            }
            Action::Submit => {
                let text = p.text.trim().to_string();
                let found = !p.hits.is_empty();
                self.prompt = None;
                match kind {
                    PromptKind::Search => {
                        if !found && !text.is_empty() {
                            self.warn(format!("no match for {text:?}"));
                        }
                    }
                    PromptKind::Export => {
                        if text.is_empty() {
                            self.warn("no file name: nothing exported");
                        } else if let Some(report) = self.shown_report() {
                            let path = PathBuf::from(&text);
                            let format = Format::from_file_name(&text);
                            self.say(format!("exporting to {text}…"));
                            cmds.push(Command::Export {
                                path,
                                format,
                                report: Box::new(report),
                            });
                        }
                    }
                    PromptKind::Mark => {
                        if text.is_empty() {
                            self.warn("no label: nothing marked");
                        } else {
                            cmds.push(Command::Mark(text));
                        }
                    }
                    PromptKind::Baseline => {
                        if text.is_empty() {
                            self.warn("no file name: baseline unchanged");
                        } else {
                            self.say(format!("loading {text}…"));
                            cmds.push(Command::LoadBaseline(PathBuf::from(text)));
                        }
                    }
                }
            }
            Action::Quit => {
                self.quit = true;
            }
            Action::Resize { width, height } => {
                self.size = (*width, *height);
                self.scroll_to_cursor();
            }
            Action::Loaded(_)
            | Action::CaptureStarted
            | Action::CaptureFailed(_)
            | Action::Failed(_)
            | Action::Exported(_)
            | Action::Signal(_)
            | Action::LastChanged { .. }
            | Action::Recorded(_)
            | Action::Marked(_)
            | Action::Tick => return false,
            _ => {}
        }
        true
    }

    fn move_by(&mut self, delta: isize) {
        match self.focus {
            Focus::Tree => {
                let i = (self.cursor as isize).saturating_add(delta).max(0) as usize;
                self.set_cursor(i);
            }
            Focus::Fields => {
                let n = self.detail().map_or(0, |d| d.fields.len());
                let i = (self.field_cursor as isize).saturating_add(delta).max(0) as usize;
                self.field_cursor = i.min(n.saturating_sub(1));
            }
        }
    }

    fn expand(&mut self) {
        let Some(row) = self.tree.rows.get(self.cursor).copied() else {
            return;
        };
        if !row.expandable {
            return;
        }
        if row.expanded {
            self.set_cursor(self.cursor + 1);
        } else {
            self.expanded.insert(row.node);
            self.rebuild();
        }
    }

    fn collapse(&mut self) {
        let Some(row) = self.tree.rows.get(self.cursor).copied() else {
            return;
        };
        if row.expandable && row.expanded {
            self.expanded.remove(&row.node);
            self.rebuild();
        } else if let Some(ds) = self.data.clone() {
            if let Some(p) = tree::parent(&ds, row.node) {
                if let Some(i) = self.tree.position(p) {
                    self.set_cursor(i);
                }
            }
        }
    }

    fn scroll_at(&mut self, column: u16, row: u16, delta: isize) {
        let a = self.areas();
        let pos = Position::new(column, row);
        if a.fields.contains(pos) && self.detail().is_some_and(|d| !d.fields.is_empty()) {
            self.focus = Focus::Fields;
        } else if a.nav.contains(pos) {
            self.focus = Focus::Tree;
        }
        self.move_by(delta);
    }

    fn click(&mut self, column: u16, row: u16) -> Vec<Command> {
        let a = self.areas();
        let pos = Position::new(column, row);
        if a.timeline_bar.contains(pos) {
            if let Session::Replay(r) = &mut self.session {
                let n = r.frames.len();
                let w = a.timeline_bar.width.saturating_sub(1).max(1) as usize;
                let i = ((column - a.timeline_bar.x) as usize * n.saturating_sub(1) + w / 2) / w;
                let i = i.min(n.saturating_sub(1));
                r.playing = false;
                if i != r.frame {
                    r.frame = i;
                    return vec![Command::Seek(i)];
                }
            }
            return Vec::new();
        }
        if a.nav_rows.contains(pos) {
            let i = self.offset + (row - a.nav_rows.y) as usize;
            if i < self.tree.rows.len() {
                self.focus = Focus::Tree;
                if i == self.cursor {
                    self.update(Action::ToggleExpand);
                } else {
                    self.set_cursor(i);
                }
            }
        } else if a.field_rows.contains(pos) {
            let n = self.detail().map_or(0, |d| d.fields.len());
            let i = ui::field_scroll(self.field_cursor, a.field_rows.height as usize)
                + (row - a.field_rows.y) as usize;
            if i < n {
                self.focus = Focus::Fields;
                self.field_cursor = i;
            }
        }
        Vec::new()
    }
}
