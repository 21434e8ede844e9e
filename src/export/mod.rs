//! Exporters: a [`Report`](crate::report::Report) as plain text (fit for a kernel mailing
//! list), Markdown, or JSON; a snapshot as text for `show`.

pub mod json;
pub mod markdown;
pub mod pci_show;
pub mod show;
pub mod text;

/// Output formats of `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

impl Format {
    /// The format a file name suggests (`.md`, `.json`), else text.
    pub fn from_file_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".md") || lower.ends_with(".markdown") {
            Format::Markdown
        } else if lower.ends_with(".json") {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// Render `report` in `format` (text without colour).
pub fn render(report: &crate::report::Report, format: Format) -> String {
    match format {
        Format::Text => text::render(report, &text::Style::plain()),
        Format::Markdown => markdown::render(report),
        Format::Json => json::render(report),
    }
}
