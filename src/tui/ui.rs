//! Rendering: a pure function of the [`App`] (`impl Widget for &App`). Only the rows on
//! screen are turned into text. Colours are the terminal's named ANSI colours, dropped
//! under NO_COLOR; meaning is also carried by markers (`*` `~` `!` `^`) and reverse video.

use std::borrow::Cow;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget, Wrap};

use super::app::{App, Focus, PromptKind, ReplayState, Session, Shown};
use super::keymap;
use super::model::{Dataset, Node};
use super::tree::Row;
use super::view::{Detail, Val};
use crate::sanitize::inert;

/// Where each pane sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Areas {
    pub nav: Rect,
    /// The navigator's rows (inside its title and separator).
    pub nav_rows: Rect,
    pub values: Rect,
    /// Per-CPU view or hex dump.
    pub extra: Rect,
    pub fields: Rect,
    pub field_rows: Rect,
    pub owners: Rect,
    /// Replay: the timeline (a line of text, then the bar).
    pub timeline: Rect,
    pub timeline_bar: Rect,
    pub status: Rect,
}

/// Width of the bit grid in one line (16 groups of 4 bits and their gaps).
const GRID64: u16 = 79;
/// The label column before a bit grid row.
const GRID_LABEL: u16 = 11;

/// Split the screen. Also used by `update` to map mouse positions to rows.
pub fn areas(area: Rect, app: &App) -> Areas {
    let status_h = 2.min(area.height);
    let timeline_h = if app.is_replay() {
        2.min(area.height - status_h)
    } else {
        0
    };
    let main = Rect {
        height: area.height - status_h - timeline_h,
        ..area
    };
    let timeline = Rect {
        y: area.y + main.height,
        height: timeline_h,
        ..area
    };
    let timeline_bar = Rect {
        y: timeline.y + 1.min(timeline.height),
        height: timeline.height.saturating_sub(1),
        ..timeline
    };
    let status = Rect {
        y: timeline.y + timeline_h,
        height: status_h,
        ..area
    };
    let nav_w = (main.width * 35 / 100).clamp(20.min(main.width), 60.min(main.width));
    let nav = Rect {
        width: nav_w,
        ..main
    };
    let nav_rows = Rect {
        x: nav.x,
        y: nav.y + 1.min(nav.height),
        width: nav.width.saturating_sub(1),
        height: nav.height.saturating_sub(1),
    };
    let right = Rect {
        x: main.x + nav_w,
        width: main.width - nav_w,
        ..main
    };
    let detail = app.detail();
    let values_h = detail.map_or(2, |d| values_height(d, right.width));
    let n_fields = detail.map_or(0, |d| d.fields.len()) as u16;
    let owner_lines = detail.map_or(1, owner_line_estimate) as u16;
    let extra_need = match (&app.data, &app.shown) {
        (Some(ds), Some(s)) => extra_height(ds, s),
        _ => 0,
    };
    let rest = right.height.saturating_sub(values_h);
    let big = right.height >= 40;
    let fields_h = if n_fields == 0 {
        0
    } else {
        (n_fields + 1).min(if big { 14 } else { 6 }).min(rest / 2)
    };
    let owners_min = (owner_lines + 1)
        .clamp(2, if big { 14 } else { 7 })
        .min(rest.saturating_sub(fields_h));
    let extra_h = extra_need.min(rest.saturating_sub(fields_h + owners_min));
    let owners_h = rest.saturating_sub(fields_h + extra_h);
    let mut y = right.y;
    let mut take = |h: u16| {
        let r = Rect {
            y,
            height: h.min(right.y + right.height - y),
            ..right
        };
        y += r.height;
        r
    };
    let values = take(values_h);
    let extra = take(extra_h);
    let fields = take(fields_h);
    let owners = take(owners_h);
    let field_rows = Rect {
        y: fields.y + 1.min(fields.height),
        height: fields.height.saturating_sub(1),
        ..fields
    };
    Areas {
        nav,
        nav_rows,
        values,
        extra,
        fields,
        field_rows,
        owners,
        timeline,
        timeline_bar,
        status,
    }
}

fn wide_grid(width: u16) -> bool {
    width >= GRID_LABEL + GRID64
}

fn values_height(d: &Detail, width: u16) -> u16 {
    let mut h = 1; // title
    if d.baseline.is_some() || d.current.is_some() {
        h += 2;
    }
    if !d.description.is_empty() {
        h += 1;
    }
    if d.width > 0 {
        h += if d.width > 32 && !wide_grid(width) {
            6
        } else {
            4
        };
    }
    h
}

/// Rows the per-CPU view or the hex dump would fill.
fn extra_height(ds: &Dataset, s: &Shown) -> u16 {
    if s.detail.msr.is_some() {
        s.cpus.len() as u16 + 1
    } else if let Some((bdf, _)) = s.detail.pci {
        let len = ds
            .current_device(bdf)
            .or(ds.baseline_device(bdf))
            .map_or(0, |d| d.config.len());
        (len.div_ceil(16) as u16) + 1
    } else {
        0
    }
}

fn owner_line_estimate(d: &Detail) -> usize {
    d.owners.len() * 3 + d.notes.len() + d.drivers.is_some() as usize + 1
}

/// The first field row on screen for a cursor at `cursor` in `height` rows.
pub fn field_scroll(cursor: usize, height: usize) -> usize {
    if height == 0 {
        0
    } else {
        cursor.saturating_sub(height - 1)
    }
}

/// Styles, with or without colour.
#[derive(Clone, Copy)]
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    fn rule(self) -> Style {
        self.fg(Color::DarkGray)
    }
    fn diverge(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    fn changed_bit(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::REVERSED)
    }
    fn volatile_bit(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::REVERSED)
    }
    fn moving(self) -> Style {
        self.fg(Color::Yellow)
    }
    fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }
    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn key(self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }
    fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    fn good(self) -> Style {
        self.fg(Color::Green)
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = Theme { color: self.color };
        let a = areas(area, self);
        match &self.data {
            None => render_waiting(self, a, buf, t),
            Some(ds) => {
                render_nav(self, ds, a, buf, t);
                match self.detail() {
                    Some(d) => render_detail(self, ds, d, a, buf, t),
                    None => {
                        rule(buf, a.values, "nothing selected", t);
                    }
                }
            }
        }
        if let Session::Replay(r) = &self.session {
            render_timeline(r, a.timeline, buf, t);
        }
        render_status(self, a.status, buf, t);
        if self.help {
            render_help(self, area, buf, t);
        }
    }
}

fn render_waiting(app: &App, a: Areas, buf: &mut Buffer, t: Theme) {
    let text = match &app.session {
        Session::Live(s) => match &s.error {
            Some(e) => format!("capture failed: {}", inert(e)),
            None => format!("capturing {}…", inert(&s.root)),
        },
        Session::Files => "loading…".to_string(),
        Session::Replay(r) => format!("loading frame {} of {}…", r.frame, inert(&r.path)),
    };
    let area = a.nav.union(a.values);
    rule(buf, area, "regdrift", t);
    buf.set_stringn(
        area.x + 1,
        area.y + 1.min(area.height.saturating_sub(1)),
        text,
        area.width.saturating_sub(2) as usize,
        Style::new(),
    );
}

/// A pane title drawn as a rule across the top line of `area`.
fn rule(buf: &mut Buffer, area: Rect, title: &str, t: Theme) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let w = area.width as usize;
    let style = t.rule();
    for x in area.x..area.x + area.width {
        if let Some(c) = buf.cell_mut((x, area.y)) {
            c.set_symbol("─").set_style(style);
        }
    }
    if let Some(c) = buf.cell_mut((area.x + 1, area.y)) {
        c.set_symbol(" ");
    }
    if w > 2 {
        let (x, _) = buf.set_stringn(area.x + 2, area.y, title, w - 2, t.title());
        if x < area.x + area.width {
            buf.set_stringn(x, area.y, " ", 1, t.rule());
        }
    }
}

// ---- navigator ---------------------------------------------------------------------------

fn row_label<'a>(app: &'a App, ds: &'a Dataset, row: &Row) -> Cow<'a, str> {
    match row.node {
        Node::MsrSection => Cow::Owned(format!("MSRs ({} CPUs)", ds.cpus.len())),
        Node::Cpu(c) => Cow::Owned(format!("cpu {c}")),
        Node::Msr { index, .. } => Cow::Owned(format!(
            "{index:#x} {}",
            inert(&app.know.regdb.msr_name(index))
        )),
        Node::MtrrSection => Cow::Borrowed("MTRRs"),
        Node::Mtrr(r) => ds
            .mtrr
            .get(r as usize)
            .map_or(Cow::Borrowed("?"), |e| Cow::Borrowed(e.label.as_str())),
        Node::PciSection => Cow::Owned(format!("PCI ({} devices)", ds.devices.len())),
        Node::Device(bdf) => Cow::Owned(format!(
            "{bdf} {}",
            ds.device(bdf).map_or("", |d| d.label.as_str())
        )),
        Node::PciGroup { bdf, group } => ds
            .device(bdf)
            .and_then(|d| d.groups.get(group as usize))
            .map_or(Cow::Borrowed("?"), |g| Cow::Borrowed(g.name.as_str())),
        Node::PciReg { bdf, offset } => Cow::Owned(format!(
            "{offset:#05x} {}",
            ds.device(bdf)
                .and_then(|d| d.reg(offset))
                .map_or("", |r| r.name.as_str())
        )),
    }
}

/// The marker of a row: `*` diverges, `~` seen moving, `v` volatile register, `?` not
/// readable on one side, ` ` nothing to say.
fn row_marker(app: &App, ds: &Dataset, row: &Row) -> char {
    if row.count > 0 {
        return '*';
    }
    match row.node {
        Node::Msr { cpu, index } => {
            if app.moving.msrs.contains(&index) {
                '~'
            } else if !matches!(ds.baseline_msr(cpu, index), Some(Ok(_)))
                || !matches!(ds.current_msr(cpu, index), Some(Ok(_)))
            {
                '?'
            } else if app
                .know
                .regdb
                .msr(index)
                .is_some_and(|d| d.volatile.is_some())
            {
                'v'
            } else {
                ' '
            }
        }
        Node::PciReg { bdf, offset } => {
            if app.moving.pci.contains(&(bdf, offset)) {
                '~'
            } else if ds
                .device(bdf)
                .and_then(|d| d.reg(offset))
                .is_some_and(|r| r.volatile.is_some())
            {
                'v'
            } else {
                ' '
            }
        }
        Node::Device(bdf)
            if ds.baseline_device(bdf).is_none() || ds.current_device(bdf).is_none() =>
        {
            '?'
        }
        _ => ' ',
    }
}

fn render_nav(app: &App, ds: &Dataset, a: Areas, buf: &mut Buffer, t: Theme) {
    let title = if app.filters.only_diverging {
        "diverging"
    } else {
        "all registers"
    };
    rule(buf, a.nav, title, t);
    // Separator between the navigator and the panes.
    let sep_x = a.nav.x + a.nav.width.saturating_sub(1);
    let sep = t.rule();
    for y in a.nav.y + 1..a.nav.y + a.nav.height {
        if let Some(c) = buf.cell_mut((sep_x, y)) {
            c.set_symbol("│").set_style(sep);
        }
    }
    let r = a.nav_rows;
    if r.height == 0 {
        return;
    }
    if ds.report.divergences.is_empty() && app.tree.rows.is_empty() {
        buf.set_stringn(
            r.x + 1,
            r.y,
            "no divergence",
            r.width.saturating_sub(1) as usize,
            t.good(),
        );
        return;
    }
    if app.tree.rows.is_empty() {
        buf.set_stringn(
            r.x + 1,
            r.y,
            "nothing shown: d shows all",
            r.width.saturating_sub(1) as usize,
            t.dim(),
        );
        return;
    }
    let end = (app.offset + r.height as usize).min(app.tree.rows.len());
    for (i, row) in app.tree.rows[app.offset.min(end)..end].iter().enumerate() {
        let y = r.y + i as u16;
        let idx = app.offset + i;
        let selected = idx == app.cursor;
        let marker = row_marker(app, ds, row);
        let arrow = match (row.expandable, row.expanded) {
            (true, true) => "▾",
            (true, false) => "▸",
            _ => " ",
        };
        let count = if row.expandable && row.count > 0 {
            format!(" {}", row.count)
        } else {
            String::new()
        };
        let w = r.width as usize;
        let indent = (row.depth as usize * 2).min(w / 2);
        let base_style = match marker {
            '*' => t.diverge(),
            '~' => t.moving(),
            'v' | '?' => t.dim(),
            _ => Style::new(),
        };
        let style = if selected {
            if app.focus == Focus::Tree {
                base_style.add_modifier(Modifier::REVERSED)
            } else {
                base_style.add_modifier(Modifier::UNDERLINED)
            }
        } else {
            base_style
        };
        if selected {
            buf.set_style(Rect::new(r.x, y, r.width, 1), t.selected());
        }
        buf.set_stringn(r.x, y, marker.to_string(), w, style);
        let label = row_label(app, ds, row);
        let head = format!("{:indent$}{arrow} ", "");
        let (x, _) = buf.set_stringn(r.x + 1, y, &head, w.saturating_sub(1), style);
        let avail = (r.x + r.width).saturating_sub(x) as usize;
        let label_w = avail.saturating_sub(count.chars().count());
        let (x, _) = buf.set_stringn(x, y, &label, label_w, style);
        if !count.is_empty() {
            let cx = (r.x + r.width)
                .saturating_sub(count.chars().count() as u16)
                .max(x);
            buf.set_stringn(cx, y, &count, (r.x + r.width - cx) as usize, style);
        }
    }
    // Scroll position when not everything fits.
    if app.tree.rows.len() > r.height as usize {
        let pos = format!("{}-{}/{}", app.offset + 1, end, app.tree.rows.len());
        let w = pos.chars().count() as u16 + 1;
        if a.nav.width > w + 12 {
            buf.set_stringn(
                a.nav.x + a.nav.width - w - 1,
                a.nav.y,
                &pos,
                w as usize,
                t.rule(),
            );
        }
    }
}

// ---- detail panes ------------------------------------------------------------------------

fn render_detail(app: &App, ds: &Dataset, d: &Detail, a: Areas, buf: &mut Buffer, t: Theme) {
    render_values(d, a.values, buf, t);
    if let Some(index) = d.msr {
        render_cpus(app, d, index, a.extra, buf, t);
    } else if let Some((bdf, reg)) = d.pci {
        render_dump(app, ds, bdf, reg, a.extra, buf, t);
    } else if a.extra.height > 0 {
        rule(buf, a.extra, "", t);
    }
    render_fields(app, d, a.fields, buf, t);
    render_owners(app, ds, d, a.owners, buf, t);
}

fn render_values(d: &Detail, area: Rect, buf: &mut Buffer, t: Theme) {
    if area.height == 0 {
        return;
    }
    rule(buf, area, &d.title, t);
    let mut y = area.y + 1;
    let bottom = area.y + area.height;
    let w = area.width.saturating_sub(1) as usize;
    let x = area.x + 1;
    if !d.description.is_empty() && y < bottom {
        buf.set_stringn(x, y, &d.description, w, t.dim());
        y += 1;
    }
    if d.baseline.is_none() && d.current.is_none() {
        return;
    }
    let side = |v: &Option<Val>| v.as_ref().map_or(String::new(), |v| v.show(d.width));
    let diverges = d.changed != 0 || d.baseline != d.current;
    let cur_style = if diverges { t.diverge() } else { Style::new() };
    for (label, text, style) in [
        ("baseline ", side(&d.baseline), Style::new()),
        ("current  ", side(&d.current), cur_style),
    ] {
        if y >= bottom {
            return;
        }
        let (nx, _) = buf.set_stringn(x, y, label, w, t.dim());
        let avail = (area.x + area.width).saturating_sub(nx) as usize;
        buf.set_stringn(nx, y, text, avail, style);
        y += 1;
    }
    if d.width == 0 {
        return;
    }
    let (Some(b), Some(c)) = (
        d.baseline.as_ref().and_then(Val::num),
        d.current.as_ref().and_then(Val::num),
    ) else {
        if y < bottom {
            buf.set_stringn(x, y, "no bit grid: a side has no value", w, t.dim());
        }
        return;
    };
    let grid = Rect {
        x,
        y,
        width: area.width.saturating_sub(1),
        height: bottom.saturating_sub(y),
    };
    render_bit_grid(b, c, d.width, d.volatile_mask, grid, buf, t);
}

/// The bits of `width`, MSB left, in groups of four; bits that differ are reverse video
/// (red, or yellow when volatile) and marked `^` (`~` volatile) on the line below.
fn render_bit_grid(
    base: u64,
    cur: u64,
    width: u8,
    volatile: u64,
    area: Rect,
    buf: &mut Buffer,
    t: Theme,
) {
    let width = width.clamp(1, 64);
    let changed = base ^ cur;
    let per_line: u8 = if width > 32 && !wide_grid(area.width) {
        32
    } else {
        width
    };
    let mut y = area.y;
    let bottom = area.y + area.height;
    let mut hi = width;
    let mut first = true;
    while hi > 0 {
        let lo = hi.saturating_sub(per_line);
        let range = format!("{}:{}", hi - 1, lo);
        let lines: [(&str, Option<u64>); 3] =
            [("base", Some(base)), ("cur", Some(cur)), ("", None)];
        if per_line == width && first {
            // One line per side: a header of bit numbers first.
            if y < bottom {
                let mut header = String::new();
                for g in (0..width.div_ceil(4)).rev() {
                    let top = (g * 4 + 3).min(width - 1);
                    header.push_str(&format!("{top:<5}"));
                }
                buf.set_stringn(
                    area.x + GRID_LABEL,
                    y,
                    header.trim_end(),
                    area.width.saturating_sub(GRID_LABEL) as usize,
                    t.dim(),
                );
                y += 1;
            }
        }
        for (i, (label, val)) in lines.iter().enumerate() {
            if y >= bottom {
                return;
            }
            let label = if i == 0 && per_line != width {
                format!("{label:<4} {range:<5}")
            } else {
                label.to_string()
            };
            buf.set_stringn(area.x, y, &label, GRID_LABEL as usize, t.dim());
            let mut col = area.x + GRID_LABEL;
            for bit in (lo..hi).rev() {
                if col >= area.x + area.width {
                    break;
                }
                let m = 1u64 << bit;
                let lit = changed & m != 0;
                let vol = volatile & m != 0;
                let (sym, style) = match val {
                    Some(v) => {
                        let s = if v & m != 0 { "1" } else { "0" };
                        let st = match (lit, vol) {
                            (true, true) => t.volatile_bit(),
                            (true, false) => t.changed_bit(),
                            _ => Style::new(),
                        };
                        (s, st)
                    }
                    None => match (lit, vol) {
                        (true, true) => ("~", t.moving()),
                        (true, false) => ("^", t.diverge()),
                        _ => (" ", Style::new()),
                    },
                };
                if let Some(c) = buf.cell_mut((col, y)) {
                    c.set_symbol(sym).set_style(style);
                }
                col += 1;
                if bit % 4 == 0 && bit != lo {
                    col += 1;
                }
            }
            y += 1;
        }
        hi = lo;
        first = false;
    }
}

fn render_cpus(app: &App, d: &Detail, index: u32, area: Rect, buf: &mut Buffer, t: Theme) {
    if area.height == 0 {
        return;
    }
    let empty = Vec::new();
    let groups = app.shown.as_ref().map_or(&empty, |s| &s.cpus);
    let ncpus: usize = groups.iter().map(|g| g.cpus.len()).sum();
    let distinct = {
        let mut v: Vec<&Val> = groups.iter().map(|g| &g.current).collect();
        v.dedup();
        let mut uniq: Vec<&Val> = Vec::new();
        for x in v {
            if !uniq.contains(&x) {
                uniq.push(x);
            }
        }
        uniq.len()
    };
    rule(
        buf,
        area,
        &format!(
            "{index:#x} on {ncpus} CPUs · {distinct} value{}",
            if distinct == 1 { "" } else { "s" }
        ),
        t,
    );
    let sel_cpu = match app.selected {
        Some(Node::Msr { cpu, .. }) => Some(cpu),
        _ => None,
    };
    let w = area.width.saturating_sub(1) as usize;
    let x = area.x + 1;
    let rows = area.height.saturating_sub(1) as usize;
    for (i, g) in groups.iter().take(rows).enumerate() {
        let y = area.y + 1 + i as u16;
        let marks = format!(
            "{}{}{} ",
            if g.diverges { '*' } else { ' ' },
            if g.odd { '!' } else { ' ' },
            if sel_cpu.is_some_and(|c| g.cpus.contains(&c)) {
                '>'
            } else {
                ' '
            }
        );
        let style = if g.odd || g.diverges {
            t.diverge()
        } else {
            Style::new()
        };
        let values = if g.diverges {
            format!("{} → {}", g.baseline.show(d.width), g.current.show(d.width))
        } else {
            g.current.show(d.width)
        };
        let who = if g.cpus.len() == 1 {
            format!("cpu {}", g.cpus[0])
        } else {
            format!("cpus {}", crate::report::cpu_list(&g.cpus))
        };
        let (nx, _) = buf.set_stringn(x, y, &marks, w, style);
        let avail = (area.x + area.width).saturating_sub(nx) as usize;
        // Values first so that a long CPU list cannot push them off screen.
        let (nx2, _) = buf.set_stringn(nx, y, format!("{values}  "), avail, style);
        let avail = (area.x + area.width).saturating_sub(nx2) as usize;
        buf.set_stringn(nx2, y, &who, avail, t.dim());
    }
    if groups.len() > rows && rows > 0 {
        let y = area.y + area.height - 1;
        buf.set_stringn(
            x,
            y,
            format!("… {} more groups", groups.len() - rows + 1),
            w,
            t.dim(),
        );
    }
}

fn render_dump(
    app: &App,
    ds: &Dataset,
    bdf: crate::snapshot::Bdf,
    reg: Option<(u16, u8)>,
    area: Rect,
    buf: &mut Buffer,
    t: Theme,
) {
    if area.height == 0 {
        return;
    }
    let (base, cur) = (ds.baseline_device(bdf), ds.current_device(bdf));
    let (shown, other, side) = match (app.dump_baseline, base, cur) {
        (true, Some(b), _) => (b, cur, "baseline"),
        (_, _, Some(c)) => (c, base, "current"),
        (_, Some(b), None) => (b, None, "baseline"),
        (_, None, None) => return,
    };
    let cfg = &shown.config;
    rule(
        buf,
        area,
        &format!(
            "config space ({side}, {} bytes) · x: {}",
            cfg.len(),
            if side == "current" {
                "baseline"
            } else {
                "current"
            }
        ),
        t,
    );
    let lines = cfg.len().div_ceil(16);
    let rows = area.height.saturating_sub(1) as usize;
    if rows == 0 || lines == 0 {
        return;
    }
    let sel_line = reg.map_or(0, |(o, _)| o as usize / 16);
    let start = if sel_line >= rows {
        (sel_line + 1 - rows.div_ceil(2)).min(lines.saturating_sub(rows))
    } else {
        0
    };
    let digits = if cfg.len() > 256 { 3 } else { 2 };
    let right = area.x + area.width;
    for (i, line) in (start..lines).take(rows).enumerate() {
        let y = area.y + 1 + i as u16;
        let off = line * 16;
        // Flush left: 16 bytes of a 4 KiB space fit in the 52 columns of an 80-column
        // terminal.
        let (mut x, _) = buf.set_stringn(
            area.x,
            y,
            format!("{off:0digits$x}:"),
            area.width as usize,
            t.dim(),
        );
        for j in 0..16 {
            let o = off + j;
            let Some(&byte) = cfg.get(o) else { break };
            if x + 3 > right {
                break;
            }
            let differs = other.is_some_and(|d| d.config.get(o) != Some(&byte));
            let in_reg = reg.is_some_and(|(r, w)| o >= r as usize && o < r as usize + w as usize);
            let mut style = if differs {
                t.changed_bit()
            } else {
                Style::new()
            };
            if in_reg {
                style = style.add_modifier(Modifier::UNDERLINED | Modifier::BOLD);
            }
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            for (k, nib) in [byte >> 4, byte & 0xf].into_iter().enumerate() {
                if let Some(c) = buf.cell_mut((x + 1 + k as u16, y)) {
                    c.set_char(DIGITS[nib as usize] as char).set_style(style);
                }
            }
            x += 3;
        }
        let line_differs = other.is_some_and(|d| {
            (off..(off + 16).min(cfg.len())).any(|o| d.config.get(o) != cfg.get(o))
        });
        if line_differs && x + 2 <= right {
            buf.set_string(x + 1, y, "*", t.diverge());
        }
    }
}

fn fmt_field(v: Option<u64>, mask: u64) -> String {
    match v {
        None => "-".into(),
        Some(v) if mask.count_ones() <= 3 || v < 10 => v.to_string(),
        Some(v) => format!("{v:#x}"),
    }
}

fn render_fields(app: &App, d: &Detail, area: Rect, buf: &mut Buffer, t: Theme) {
    if area.height == 0 {
        return;
    }
    let changed = d.fields.iter().filter(|f| f.changed).count();
    rule(
        buf,
        area,
        &format!("fields · {changed} changed of {}", d.fields.len()),
        t,
    );
    let rows = area.height.saturating_sub(1) as usize;
    let start = if app.focus == Focus::Fields {
        field_scroll(app.field_cursor, rows)
    } else {
        0
    };
    let name_w = d
        .fields
        .iter()
        .map(|f| f.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let w = area.width.saturating_sub(1) as usize;
    for (i, f) in d.fields.iter().enumerate().skip(start).take(rows) {
        let y = area.y + 1 + (i - start) as u16;
        let values = if f.changed {
            format!(
                "{} → {}",
                fmt_field(f.baseline, f.mask),
                fmt_field(f.current, f.mask)
            )
        } else {
            fmt_field(f.current, f.mask)
        };
        let meaning = match (&f.baseline_meaning, &f.current_meaning) {
            (Some(a), Some(b)) if f.changed && a != b => format!("{a} → {b}"),
            (_, Some(b)) => b.clone(),
            (Some(a), None) => a.clone(),
            (None, None) => String::new(),
        };
        let text = format!(
            "{} {:<name_w$} {:>5}  {values}  {meaning}",
            if f.changed { '*' } else { ' ' },
            f.name,
            f.bits
        );
        let mut style = if f.changed { t.diverge() } else { Style::new() };
        if app.focus == Focus::Fields && i == app.field_cursor {
            style = style.add_modifier(Modifier::REVERSED);
        }
        buf.set_stringn(area.x + 1, y, text, w, style);
    }
}

fn render_owners(app: &App, ds: &Dataset, d: &Detail, area: Rect, buf: &mut Buffer, t: Theme) {
    if area.height == 0 {
        return;
    }
    let field = app.selected_field();
    let owners = d.owners_for_field(app.know, field);
    let title = match field.and_then(|i| d.fields.get(i)) {
        Some(f) => format!("likely owners of {}", f.name),
        None => "likely owners".to_string(),
    };
    rule(buf, area, &title, t);
    let mut lines: Vec<Line> = Vec::new();
    for o in &owners {
        lines.push(Line::from(vec![
            Span::styled(inert(&o.driver).into_owned(), t.key()),
            Span::raw("  restores: "),
            Span::styled(
                o.restores.as_str(),
                if o.restores == crate::owners::Restores::No {
                    t.diverge()
                } else {
                    Style::new()
                },
            ),
        ]));
        lines.push(Line::from(format!(
            "  {}: {}",
            inert(&o.source),
            inert(&o.function)
        )));
        if !o.note.is_empty() {
            lines.push(Line::styled(format!("  {}", inert(&o.note)), t.dim()));
        }
    }
    if owners.is_empty() && d.divergence.is_some() {
        lines.push(Line::styled("no owner known for these bits", t.dim()));
    }
    if let Some((b, c)) = &d.drivers {
        let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
        let text = if b == c {
            format!("bound driver: {}", show(c))
        } else {
            format!("bound driver: {} → {}", show(b), show(c))
        };
        lines.push(Line::styled(
            text,
            if b == c { Style::new() } else { t.diverge() },
        ));
    }
    for n in &d.notes {
        lines.push(Line::styled(format!("! {n}"), Style::new()));
    }
    let (only_b, only_c) = ds.modules_only();
    if !only_b.is_empty() || !only_c.is_empty() {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter()
                    .map(|s| inert(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        lines.push(Line::styled(
            format!(
                "modules only in baseline: {}; only now: {}",
                list(&only_b),
                list(&only_c)
            ),
            t.dim(),
        ));
    }
    let inner = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(1),
        height: area.height.saturating_sub(1),
    };
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
}

// ---- replay timeline ---------------------------------------------------------------------

fn render_timeline(r: &ReplayState, area: Rect, buf: &mut Buffer, t: Theme) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let n = r.frames.len();
    let time = |i: usize| r.frames.get(i).map(|f| f.time_ms);
    let since = match (time(0), time(r.frame)) {
        (Some(a), Some(b)) => {
            let d = std::time::Duration::from_secs(((b - a).max(0) / 1000) as u64);
            format!(" +{}", humantime::format_duration(d))
        }
        _ => String::new(),
    };
    let mut spans = vec![
        Span::styled(
            if r.playing {
                format!("▶ ×{} ", r.speed())
            } else {
                format!("‖ ×{} ", r.speed())
            },
            t.key(),
        ),
        Span::styled(
            format!("frame {}/{}", r.frame, n.saturating_sub(1)),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            match r.frames.get(r.frame).map(|f| f.marks.as_slice()) {
                Some([]) | None => String::new(),
                Some(m) => format!(" [{}]", inert(&m.join(", "))),
            },
            t.key(),
        ),
        Span::styled(
            format!(
                "  {}{since}",
                time(r.frame).map_or(String::new(), crate::record::format::format_time_ms)
            ),
            t.dim(),
        ),
    ];
    if r.shown != Some(r.frame) {
        spans.push(Span::styled("  loading…", t.moving()));
    }
    spans.push(Span::styled(
        match r.baseline_frame {
            Some(b) => format!("  baseline {}", r.frame_name(b)),
            None => "  baseline: a snapshot file".to_string(),
        },
        t.dim(),
    ));
    if r.warning.is_some() {
        spans.push(Span::styled("  ! truncated recording", t.error()));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    if area.height < 2 {
        return;
    }
    // The bar: frames spread over the width; marks `|`, the baseline `B`, this frame `●`.
    let y = area.y + 1;
    let w = area.width as usize;
    let x_of = |i: usize| -> u16 {
        if n <= 1 {
            0
        } else {
            ((i * (w - 1) + (n - 1) / 2) / (n - 1)) as u16
        }
    };
    for x in 0..area.width {
        if let Some(c) = buf.cell_mut((area.x + x, y)) {
            c.set_symbol("─").set_style(t.rule());
        }
    }
    for (i, f) in r.frames.iter().enumerate() {
        if !f.marks.is_empty() {
            if let Some(c) = buf.cell_mut((area.x + x_of(i), y)) {
                c.set_symbol("|").set_style(t.key());
            }
        }
    }
    if let Some(b) = r.baseline_frame {
        if let Some(c) = buf.cell_mut((area.x + x_of(b), y)) {
            c.set_symbol("B").set_style(t.title());
        }
    }
    if let Some(c) = buf.cell_mut((area.x + x_of(r.frame), y)) {
        c.set_symbol("●")
            .set_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD));
    }
}

// ---- status line -------------------------------------------------------------------------

/// ` (6.1.0, boot 1234abcd, 2024-05-01T10:00:00Z)`, or the import source, or nothing.
fn side_desc(s: &crate::snapshot::Snapshot) -> String {
    let m = &s.meta;
    let mut parts = Vec::new();
    if let Some(k) = &m.kernel_release {
        parts.push(k.clone());
    }
    if let Some(b) = &m.boot_id {
        parts.push(format!("boot {}", b.get(..8).unwrap_or(b)));
    }
    if let Some(t) = &m.captured_at {
        parts.push(t.clone());
    }
    if parts.is_empty() {
        if let crate::snapshot::Origin::Import { importer, .. } = &m.origin {
            parts.push(format!("{importer} dump"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", inert(&parts.join(", ")))
    }
}

fn render_status(app: &App, area: Rect, buf: &mut Buffer, t: Theme) {
    if area.height == 0 {
        return;
    }
    let w = area.width as usize;
    // Line 1: the sources.
    let mut spans = Vec::new();
    if let Session::Live(s) = &app.session {
        let state = if s.capturing && s.refreshes == 0 {
            "capturing…".to_string()
        } else if s.error.is_some() {
            "capture failed".to_string()
        } else {
            format!(
                "refresh #{}{} every {}",
                s.refreshes,
                s.last_took
                    .map(|d| format!(" ({} ms)", d.as_millis()))
                    .unwrap_or_default(),
                humantime::format_duration(s.interval)
            )
        };
        spans.push(Span::styled(
            format!("{}{state}  ", if s.capturing { "● " } else { "" }),
            if s.error.is_some() {
                t.error()
            } else {
                t.key()
            },
        ));
        if let Some(r) = &s.record {
            spans.push(match &r.error {
                Some(_) => Span::styled("recording stopped  ", t.error()),
                None => Span::styled(
                    format!(
                        "rec {} frame{}  ",
                        r.frames,
                        if r.frames == 1 { "" } else { "s" }
                    ),
                    t.diverge(),
                ),
            });
        }
    }
    if let Some(ds) = &app.data {
        spans.extend([
            Span::styled("base ", t.dim()),
            Span::raw(inert(&ds.baseline.name).into_owned()),
            Span::styled(side_desc(&ds.baseline.snap), t.dim()),
            Span::styled("  now ", t.dim()),
            Span::raw(inert(&ds.current.name).into_owned()),
            Span::styled(side_desc(&ds.current.snap), t.dim()),
        ]);
    } else if let Session::Live(s) = &app.session {
        spans.push(Span::styled(format!("live {}", inert(&s.root)), t.dim()));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    if area.height < 2 {
        return;
    }
    let y = area.y + 1;
    // Line 2: a prompt, or a message, or the counts; then key hints on the right.
    if let Some(p) = &app.prompt {
        let label = p.kind.label();
        let (x, _) = buf.set_stringn(area.x, y, label, w, t.key());
        let avail = (area.x + area.width).saturating_sub(x) as usize;
        let (x, _) = buf.set_stringn(x, y, inert(&p.text), avail, Style::new());
        if x < area.x + area.width {
            buf.set_string(x, y, " ", t.selected());
        }
        if p.kind == PromptKind::Search {
            if let Some(s) = app.search_status() {
                let x2 = x + 2;
                if x2 < area.x + area.width {
                    let avail = (area.x + area.width - x2) as usize;
                    buf.set_stringn(x2, y, format!("→ {s}"), avail, t.dim());
                }
            }
        }
        return;
    }
    let hints = if area.width >= 120 {
        "n next  / search  e export  ? help  q quit"
    } else {
        "? help  q quit"
    };
    let left: Line = if let Some(m) = &app.message {
        Line::styled(
            inert(&m.text).into_owned(),
            if m.error { t.error() } else { Style::new() },
        )
    } else {
        counts_line(app, t)
    };
    let hint_w = hints.chars().count() as u16;
    let left_w = if area.width > hint_w + 20 {
        area.width - hint_w - 1
    } else {
        area.width
    };
    buf.set_line(area.x, y, &left, left_w);
    if left_w < area.width {
        let mut x = area.x + left_w + 1;
        for (i, part) in hints.split("  ").enumerate() {
            if i > 0 {
                x += 2;
            }
            let (k, rest) = part.split_once(' ').unwrap_or((part, ""));
            let (nx, _) = buf.set_stringn(x, y, k, (area.x + area.width - x) as usize, t.key());
            let (nx, _) = buf.set_stringn(
                nx,
                y,
                format!(" {rest}"),
                (area.x + area.width).saturating_sub(nx) as usize,
                t.dim(),
            );
            x = nx;
        }
    }
}

fn counts_line(app: &App, t: Theme) -> Line<'static> {
    let Some(ds) = &app.data else {
        return Line::default();
    };
    let total = app.tree.total();
    let mut spans = Vec::new();
    if total == 0 {
        spans.push(Span::styled("no divergence shown", t.good()));
    } else {
        let at = app
            .divergence_number()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        spans.push(Span::styled(
            format!(
                "{at}{total} divergence{}",
                if total == 1 { "" } else { "s" }
            ),
            t.diverge(),
        ));
    }
    let hidden_v = app.tree.hidden_volatile + ds.report.hidden_volatile;
    if hidden_v > 0 {
        spans.push(Span::styled(
            format!(" · {hidden_v} volatile hidden"),
            t.dim(),
        ));
    }
    if !app.moving.is_empty() {
        let txt = if app.filters.hide_moving {
            format!(" · {} moving hidden", app.tree.hidden_moving)
        } else {
            format!(" · {} seen moving", app.moving.len())
        };
        spans.push(Span::styled(txt, t.moving()));
    }
    if !app.filters.only_diverging {
        spans.push(Span::styled(" · all rows", t.dim()));
    }
    Line::from(spans)
}

// ---- help --------------------------------------------------------------------------------

fn render_help(app: &App, area: Rect, buf: &mut Buffer, t: Theme) {
    let lines = keymap::help_lines(app.is_live(), app.is_replay());
    let key_w = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0);
    let mut text: Vec<Line> = lines
        .iter()
        .map(|(k, h)| {
            Line::from(vec![
                Span::styled(format!("{k:>key_w$}"), t.key()),
                Span::raw(format!("  {h}")),
            ])
        })
        .collect();
    text.push(Line::default());
    text.push(Line::styled("markers in the tree:", t.title()));
    for (m, what) in [
        ("*", "diverges from the baseline (count: divergences below)"),
        ("~", "seen moving between live refreshes"),
        ("v", "volatile register (counts by itself, or per boot)"),
        ("?", "unreadable or absent on one side"),
        ("!", "a CPU unlike its siblings; a note"),
        ("^", "a changed bit (reverse video in the grid)"),
    ] {
        text.push(Line::from(vec![
            Span::styled(format!("{m:>key_w$}"), t.key()),
            Span::raw(format!("  {what}")),
        ]));
    }
    let width = (key_w as u16 + 50)
        .min(area.width.saturating_sub(2))
        .max(10);
    let height = (text.len() as u16 + 2)
        .min(area.height.saturating_sub(2))
        .max(3);
    let popup = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width: width.min(area.width),
        height: height.min(area.height),
    };
    Clear.render(popup, buf);
    let max_off = text
        .len()
        .saturating_sub(popup.height.saturating_sub(2) as usize);
    let off = app.help_offset.min(max_off);
    Paragraph::new(text)
        .scroll((off as u16, 0))
        .block(
            ratatui::widgets::Block::bordered()
                .title(" keys · Esc closes ")
                .border_style(t.rule())
                .title_style(t.title()),
        )
        .render(popup, buf);
}
