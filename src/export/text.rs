//! Plain-text report: ASCII, lines of at most 80 columns, ready to paste into a mail to a
//! kernel mailing list. Colour only when asked for (a terminal without NO_COLOR).

use std::fmt::Write;

use crate::decode::bit_range;
use crate::report::{Divergence, Report, Value};
use crate::sanitize::inert;

pub const WIDTH: usize = 80;

/// Terminal styling; `plain()` for files and pipes.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn plain() -> Self {
        Style { color: false }
    }

    /// Colour when `is_terminal` and NO_COLOR is unset or empty.
    pub fn for_terminal(is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: is_terminal && !no_color,
        }
    }

    fn paint(&self, s: &str, style: anstyle::Style) -> String {
        if self.color {
            format!("{}{s}{}", style.render(), style.render_reset())
        } else {
            s.to_string()
        }
    }
    fn head(&self, s: &str) -> String {
        self.paint(s, anstyle::Style::new().bold())
    }
    fn old(&self, s: &str) -> String {
        self.paint(s, anstyle::AnsiColor::Red.on_default())
    }
    fn new_(&self, s: &str) -> String {
        self.paint(s, anstyle::AnsiColor::Green.on_default())
    }
    fn dim(&self, s: &str) -> String {
        self.paint(s, anstyle::Style::new().dimmed())
    }
}

/// Wrap `text` to the report width with `indent` (first line) and `cont` (the rest).
fn wrap(out: &mut String, text: &str, indent: &str, cont: &str) {
    if fits_one_line(text, indent) {
        // Most lines of a report: what the line breaker would give, without it.
        out.push_str(indent);
        out.push_str(text);
        out.push('\n');
        return;
    }
    let opts = textwrap::Options::new(WIDTH)
        .initial_indent(indent)
        .subsequent_indent(cont)
        .break_words(true);
    for line in textwrap::wrap(text, opts) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// `text` after `indent` is one line that textwrap would leave as it is: printable ASCII
/// single-spaced words, short enough.
fn fits_one_line(text: &str, indent: &str) -> bool {
    !text.is_empty()
        && indent.len() + text.len() <= WIDTH
        && indent.bytes().all(|b| b == b' ')
        && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.contains("  ")
}

fn value(v: &Option<Value>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "(unreadable)".into(),
    }
}

/// The one-line heading of a divergence, e.g. `MSR 0x1a0 IA32_MISC_ENABLE, cpus 0-1`.
pub fn heading(d: &Divergence) -> String {
    use crate::report::Kind;
    let name = inert(&d.name);
    let reg = d.register.as_deref().unwrap_or("");
    match d.kind {
        Kind::Msr => format!("MSR {reg} {name}, {}", d.location()),
        Kind::Mtrr if d.register.as_deref().is_some_and(|r| r.contains(',')) => {
            format!("MTRR {name} ({reg}), {}", d.location())
        }
        Kind::Mtrr => format!("MTRR MSR {reg} {name}, {}", d.location()),
        Kind::ProcMtrr => name.into_owned(),
        Kind::Pci => format!(
            "PCI {} {} +{reg} {name}",
            d.location(),
            inert(d.group.as_deref().unwrap_or(""))
        ),
        Kind::PciDevice => format!("PCI {} {name}", d.location()),
    }
}

pub fn render(r: &Report, st: &Style) -> String {
    let mut out = String::new();
    let n = r.divergences.len();
    let sig = r.significant().count();
    let mut summary = format!(
        "regdrift: {sig} divergence{}",
        if sig == 1 { "" } else { "s" }
    );
    if n > sig {
        let _ = write!(summary, " and {} volatile shown", n - sig);
    }
    if r.hidden_volatile > 0 {
        let _ = write!(
            summary,
            ", {} volatile left out (--all shows them)",
            r.hidden_volatile
        );
    }
    wrap(&mut out, &st.head(&summary), "", "  ");
    wrap(
        &mut out,
        &format!("{}: {}", inert(&r.baseline.name), r.baseline.description),
        "baseline: ",
        "          ",
    );
    wrap(
        &mut out,
        &format!("{}: {}", inert(&r.current.name), r.current.description),
        "current:  ",
        "          ",
    );
    if !r.compared.is_empty() {
        wrap(&mut out, &r.compared.join(", "), "compared: ", "          ");
    }
    for l in &r.left_out {
        wrap(&mut out, &inert(l), "left out: ", "          ");
    }
    for w in &r.warnings {
        wrap(&mut out, &inert(w), "warning:  ", "          ");
    }
    if !r.modules.only_baseline.is_empty() {
        wrap(
            &mut out,
            &inert(&r.modules.only_baseline.join(" ")),
            "modules only in the baseline: ",
            "  ",
        );
    }
    if !r.modules.only_current.is_empty() {
        wrap(
            &mut out,
            &inert(&r.modules.only_current.join(" ")),
            "modules only in the current:  ",
            "  ",
        );
    }
    for (i, d) in r.divergences.iter().enumerate() {
        out.push('\n');
        render_divergence(&mut out, i + 1, d, st);
    }
    if n == 0 {
        out.push_str("\nNo divergences.\n");
    }
    out
}

pub fn render_divergence(out: &mut String, number: usize, d: &Divergence, st: &Style) {
    let tag = format!("[{number}] ");
    let head = heading(d);
    let head = if d.volatile.is_some() {
        format!("{head} (volatile)")
    } else {
        head
    };
    wrap(out, &st.head(&head), &tag, &" ".repeat(tag.len() + 2));
    let mut line = format!(
        "{} -> {}",
        st.old(&value(&d.baseline)),
        st.new_(&value(&d.current))
    );
    if let Some(bits) = d.changed_bits {
        let _ = write!(line, ", changed bits {} ({bits:#x})", bit_range(bits));
    }
    wrap(out, &line, "    ", "      ");
    for f in &d.fields {
        let meaning = |m: &Option<String>| {
            m.as_ref()
                .map(|m| format!(" ({})", inert(m)))
                .unwrap_or_default()
        };
        wrap(
            out,
            &format!(
                "{} [{}]: {:#x}{} -> {:#x}{}",
                inert(&f.name),
                f.bits,
                f.baseline,
                meaning(&f.baseline_meaning),
                f.current,
                meaning(&f.current_meaning)
            ),
            "    ",
            "      ",
        );
    }
    for note in &d.notes {
        wrap(out, &inert(note), "    note: ", "          ");
    }
    if let Some(v) = d.volatile {
        wrap(out, v.describe(), "    volatile: ", "      ");
    }
    if let Some(drv) = &d.drivers {
        let name = |x: &Option<String>| {
            x.as_deref()
                .map(inert)
                .map(|s| s.into_owned())
                .unwrap_or_else(|| "(none)".into())
        };
        let text = if drv.baseline == drv.current {
            format!("driver: {}", name(&drv.current))
        } else {
            format!("driver: {} -> {}", name(&drv.baseline), name(&drv.current))
        };
        wrap(out, &text, "    ", "      ");
    }
    for o in &d.owners {
        wrap(
            out,
            &format!(
                "{} ({}: {}), restores: {}",
                inert(&o.driver),
                inert(&o.source),
                inert(&o.function),
                o.restores.as_str()
            ),
            "    owner: ",
            "           ",
        );
        if !o.note.is_empty() {
            wrap(out, &st.dim(&inert(&o.note)), "           ", "           ");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(text: &str, indent: &str, cont: &str) -> String {
        let opts = textwrap::Options::new(WIDTH)
            .initial_indent(indent)
            .subsequent_indent(cont)
            .break_words(true);
        let mut out = String::new();
        for line in textwrap::wrap(text, opts) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    #[test]
    fn short_lines_wrap_as_textwrap_does() {
        let long = "word ".repeat(30);
        let texts = [
            "MSR 0x1fc MSR_IA32_POWER_CTL, cpus 0-255",
            "a",
            "x".repeat(80).leak(),
            "x".repeat(74).leak(),
            "x".repeat(75).leak(),
            "two  spaces",
            " leading",
            "trailing ",
            "tab\there",
            "new\nline",
            "caf\u{e9} 1",
            long.trim_end(),
            "",
        ];
        for indent in ["", "  ", "      "] {
            for t in texts {
                let mut fast = String::new();
                wrap(&mut fast, t, indent, "        ");
                assert_eq!(fast, slow(t, indent, "        "), "{t:?} after {indent:?}");
            }
        }
    }
}
