//! Strings from files other people send (driver names, command lines, host names, notes)
//! are shown inert: no control character or escape sequence reaches a terminal or a mail.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) and bidirectional override written as a
/// visible escape (`\x1b`, `\u{202e}`). Plain text comes back borrowed, unchanged.
pub fn inert(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            if (c as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as pretty JSON in which every string is inert: besides the C0 controls JSON
/// itself escapes, DEL, C1 controls and bidirectional overrides are written as `\uXXXX`.
/// The JSON means the same (it parses back to the same strings), and printing the file
/// to a terminal cannot move the cursor, retitle the window or reorder the text.
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(4096);
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, InertJson(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    // serde_json writes only UTF-8; the escapes added are ASCII.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

use serde_json::ser::{Formatter, PrettyFormatter};
use std::io;

struct InertJson<'a>(PrettyFormatter<'a>);

impl Formatter for InertJson<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_escape(c) {
                w.write_all(fragment.as_bytes().get(start..i).unwrap_or_default())?;
                // Every character `needs_escape` selects is in the BMP.
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(fragment.as_bytes().get(start..).unwrap_or_default())
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_made_visible() {
        assert_eq!(inert("ahci"), "ahci");
        assert!(matches!(inert("ahci"), Cow::Borrowed(_)));
        assert_eq!(inert("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
        assert_eq!(inert("a\u{9b}31mb"), "a\\x9b31mb");
        assert_eq!(inert("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(inert("tab\there"), "tab\\x09here");
    }

    #[test]
    fn json_strings_are_inert_and_mean_the_same() {
        let v = vec![
            "a\x1b[31m",
            "b\u{9b}c\u{7f}",
            "d\u{202e}e",
            "plain \u{e9}",
            "q\"\\",
        ];
        let text = to_json_pretty(&v).unwrap();
        assert!(
            text.chars().all(|c| c == '\n' || !needs_escape(c)),
            "{text:?}"
        );
        assert!(text.contains("\\u001b") && text.contains("\\u009b") && text.contains("\\u007f"));
        assert!(text.contains("\\u202e") && text.contains("plain \u{e9}"));
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        // The same layout as serde_json's own pretty printer.
        let plain = vec!["x", "y"];
        assert_eq!(
            to_json_pretty(&plain).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }
}
