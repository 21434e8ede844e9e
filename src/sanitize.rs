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
}
