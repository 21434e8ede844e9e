//! Markdown report: for a bug tracker or a browser.

use std::fmt::Write;

use crate::decode::bit_range;
use crate::report::{Report, Value};
use crate::sanitize::inert;

/// Text safe inside a Markdown table cell or paragraph: inert, with `|`, `<`, `>`, `*`,
/// `_` and backquotes escaped.
fn md(s: &str) -> String {
    let s = inert(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '*' | '_' | '`' | '[' | ']' | '#' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn value(v: &Option<Value>) -> String {
    match v {
        Some(v) => format!("`{}`", v.to_string().replace('`', "'")),
        None => "*unreadable*".into(),
    }
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let sig = r.significant().count();
    let _ = writeln!(
        o,
        "# regdrift report: {sig} divergence{}\n",
        if sig == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "| | snapshot |\n|---|---|");
    let _ = writeln!(
        o,
        "| baseline | {}: {} |",
        md(&r.baseline.name),
        md(&r.baseline.description)
    );
    let _ = writeln!(
        o,
        "| current | {}: {} |",
        md(&r.current.name),
        md(&r.current.description)
    );
    let _ = writeln!(o);
    if !r.compared.is_empty() {
        let _ = writeln!(o, "Compared: {}.", r.compared.join(", "));
    }
    if r.hidden_volatile > 0 {
        let _ = writeln!(
            o,
            "{} volatile divergences left out (counters, per-boot addresses; `--all` shows them).",
            r.hidden_volatile
        );
    }
    for l in &r.left_out {
        let _ = writeln!(o, "- Left out: {}", md(l));
    }
    for w in &r.warnings {
        let _ = writeln!(o, "- Warning: {}", md(w));
    }
    if !r.modules.only_baseline.is_empty() || !r.modules.only_current.is_empty() {
        let _ = writeln!(
            o,
            "- Modules only in the baseline: {}; only in the current: {}",
            md(&r.modules.only_baseline.join(" ")),
            md(&r.modules.only_current.join(" "))
        );
    }
    if r.divergences.is_empty() {
        let _ = writeln!(o, "\nNo divergences.");
        return o;
    }
    let _ = writeln!(o, "\n## Summary\n\n| # | kind | where | register | baseline | current | owners |\n|---|---|---|---|---|---|---|");
    for (i, d) in r.divergences.iter().enumerate() {
        let owners: Vec<String> = d.owners.iter().map(|o| md(&o.driver)).collect();
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {} {} | {} | {} | {} |",
            i + 1,
            d.kind.as_str(),
            if d.volatile.is_some() {
                " (volatile)"
            } else {
                ""
            },
            md(&d.location()),
            d.register
                .as_deref()
                .map(|r| format!("`{r}`"))
                .unwrap_or_default(),
            md(&d.name),
            value(&d.baseline),
            value(&d.current),
            owners.join(", ")
        );
    }
    let _ = writeln!(o, "\n## Details");
    for (i, d) in r.divergences.iter().enumerate() {
        let _ = writeln!(
            o,
            "\n### {}. {}\n",
            i + 1,
            md(&crate::export::text::heading(d))
        );
        let _ = write!(o, "{} → {}", value(&d.baseline), value(&d.current));
        if let Some(bits) = d.changed_bits {
            let _ = write!(o, "; changed bits {} (`{bits:#x}`)", bit_range(bits));
        }
        let _ = writeln!(o);
        if !d.fields.is_empty() {
            let _ = writeln!(
                o,
                "\n| field | bits | baseline | current |\n|---|---|---|---|"
            );
            for f in &d.fields {
                let m = |v: u64, m: &Option<String>| match m {
                    Some(m) => format!("`{v:#x}` {}", md(m)),
                    None => format!("`{v:#x}`"),
                };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    md(&f.name),
                    f.bits,
                    m(f.baseline, &f.baseline_meaning),
                    m(f.current, &f.current_meaning)
                );
            }
        }
        for n in &d.notes {
            let _ = writeln!(o, "\n- {}", md(n));
        }
        if let Some(v) = d.volatile {
            let _ = writeln!(o, "\n- Volatile: {}", v.describe());
        }
        if let Some(drv) = &d.drivers {
            let name = |x: &Option<String>| x.as_deref().map(md).unwrap_or_else(|| "(none)".into());
            let _ = writeln!(
                o,
                "\n- Bound driver: baseline {}, current {}",
                name(&drv.baseline),
                name(&drv.current)
            );
        }
        if !d.owners.is_empty() {
            let _ = writeln!(o, "\n| likely owner | source | function | restored on kexec | note |\n|---|---|---|---|---|");
            for ow in &d.owners {
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} | {} | {} |",
                    md(&ow.driver),
                    inert(&ow.source).replace('`', "'"),
                    md(&ow.function),
                    ow.restores.as_str(),
                    md(&ow.note)
                );
            }
        }
    }
    o
}
