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
    Refresh,
    Help,
    Escape,
    Quit,
    // Replay
    FramePrev,
    FrameNext,
    FirstFrame,
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
    BaselineFailed(String),
    Exported(Result<String, String>),
    /// SIGTERM, SIGHUP or SIGINT: quit (restoring the terminal).
    Signal(i32),
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
}

impl PromptKind {
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::Search => "/",
            PromptKind::Export => "export to (.txt, .md, .json): ",
            PromptKind::Baseline => "baseline file: ",
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
}

#[derive(Clone, Debug, PartialEq)]
pub struct LiveState {
    pub root: String,
    pub interval: Duration,
    pub refreshes: u64,
    pub capturing: bool,
    pub last_took: Option<Duration>,
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
        }));
        app
    }

    pub fn is_live(&self) -> bool {
        matches!(self.session, Session::Live(_))
    }

    pub fn is_replay(&self) -> bool {
        false
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
                    }
                    None
                }
            })
            .collect();
        r.hidden_volatile = hidden_volatile;
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
                | Action::BaselineFailed(_)
                | Action::Exported(_)
                | Action::Signal(_)
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
            Action::Click { column, row } => self.click(column, row),
            Action::Resize { width, height } => {
                self.size = (width, height);
                self.scroll_to_cursor();
            }
            Action::FramePrev
            | Action::FrameNext
            | Action::FirstFrame
            | Action::PlayPause
            | Action::Faster
            | Action::Slower
            | Action::NextMark
            | Action::PrevMark
            | Action::BaselineFromFrame
            | Action::LastChange => {}
            Action::Char(_) | Action::Backspace | Action::Submit => {}
            other => return self.update_background(other),
        }
        cmds
    }

    /// Worker messages and ticks: handled the same whatever is on screen.
    fn update_background(&mut self, action: Action) -> Vec<Command> {
        match action {
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
            Action::BaselineFailed(e) => self.warn(e),
            Action::Exported(Ok(path)) => self.say(format!("exported to {path}")),
            Action::Exported(Err(e)) => self.warn(format!("export failed: {e}")),
            Action::Signal(sig) => {
                self.signal = Some(sig);
                self.quit = true;
            }
            _ => {}
        }
        Vec::new()
    }

    fn loaded(&mut self, l: Loaded) {
        let first = self.data.is_none();
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
        if first {
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
            | Action::BaselineFailed(_)
            | Action::Exported(_)
            | Action::Signal(_)
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

    fn click(&mut self, column: u16, row: u16) {
        let a = self.areas();
        let pos = Position::new(column, row);
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
    }
}
