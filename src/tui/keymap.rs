//! Key bindings as data: one table, looked up by the event loop and shown by `?`.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::Action;

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Explore and replay.
    All,
    /// Live exploring only.
    Live,
    /// Replaying a recording only (takes precedence over `All`).
    Replay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn code(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
    pub scope: Scope,
}

const fn b(keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        help,
        scope: Scope::All,
    }
}

const fn scoped(scope: Scope, keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        help,
        scope,
    }
}

/// Every key binding of the TUI.
pub static KEYMAP: &[Binding] = &[
    b(&[k('k'), code(KeyCode::Up)], Action::Up, "move up"),
    b(&[k('j'), code(KeyCode::Down)], Action::Down, "move down"),
    b(
        &[code(KeyCode::PageUp), ctrl('u'), ctrl('b')],
        Action::PageUp,
        "page up",
    ),
    b(
        &[code(KeyCode::PageDown), ctrl('d'), ctrl('f')],
        Action::PageDown,
        "page down",
    ),
    b(&[k('g'), code(KeyCode::Home)], Action::Top, "first row"),
    b(&[k('G'), code(KeyCode::End)], Action::Bottom, "last row"),
    scoped(
        Scope::Replay,
        &[code(KeyCode::Left), k('[')],
        Action::FramePrev,
        "previous frame",
    ),
    scoped(
        Scope::Replay,
        &[code(KeyCode::Right), k(']')],
        Action::FrameNext,
        "next frame",
    ),
    b(
        &[k('l'), code(KeyCode::Right)],
        Action::Expand,
        "expand, or go to the first child",
    ),
    b(
        &[k('h'), code(KeyCode::Left)],
        Action::Collapse,
        "collapse, or go to the parent",
    ),
    b(
        &[code(KeyCode::Enter), k(' ')],
        Action::ToggleExpand,
        "expand or collapse",
    ),
    b(&[k('E')], Action::ExpandAll, "expand everything shown"),
    b(&[k('C')], Action::CollapseAll, "collapse everything"),
    b(&[k('n')], Action::NextDivergence, "next divergence"),
    b(&[k('N')], Action::PrevDivergence, "previous divergence"),
    b(
        &[k('/')],
        Action::Search,
        "search (names, numbers, fields, devices, drivers)",
    ),
    b(
        &[k('d')],
        Action::ToggleOnlyDiverging,
        "only diverging rows / all rows",
    ),
    b(&[k('v')], Action::ToggleVolatile, "show volatile registers"),
    b(
        &[k('M')],
        Action::ToggleHideMoving,
        "leave out registers seen moving",
    ),
    b(
        &[code(KeyCode::Tab)],
        Action::FocusNext,
        "switch between the tree and the fields",
    ),
    b(
        &[k('x')],
        Action::ToggleDumpSide,
        "hex dump: current / baseline",
    ),
    b(&[k('e')], Action::ExportPrompt, "export the diff to a file"),
    b(
        &[k('b')],
        Action::BaselinePrompt,
        "load another baseline file",
    ),
    scoped(Scope::Live, &[k('r')], Action::Refresh, "capture again now"),
    scoped(
        Scope::Live,
        &[k('m')],
        Action::MarkPrompt,
        "mark the last recorded frame (--record)",
    ),
    scoped(Scope::Replay, &[k('p')], Action::PlayPause, "play / pause"),
    scoped(
        Scope::Replay,
        &[k('+'), k('=')],
        Action::Faster,
        "play faster",
    ),
    scoped(Scope::Replay, &[k('-')], Action::Slower, "play slower"),
    scoped(Scope::Replay, &[k('>')], Action::NextMark, "next mark"),
    scoped(Scope::Replay, &[k('<')], Action::PrevMark, "previous mark"),
    scoped(Scope::Replay, &[k('0')], Action::FirstFrame, "first frame"),
    scoped(Scope::Replay, &[k('$')], Action::LastFrame, "last frame"),
    scoped(
        Scope::Replay,
        &[k('B')],
        Action::BaselineFromFrame,
        "this frame becomes the baseline (0 B: the first frame again)",
    ),
    scoped(
        Scope::Replay,
        &[k('L')],
        Action::LastChange,
        "when did this register last change",
    ),
    b(&[k('?')], Action::Help, "this help"),
    b(
        &[code(KeyCode::Esc)],
        Action::Escape,
        "close help / message",
    ),
    b(&[k('q'), ctrl('c')], Action::Quit, "quit"),
];

/// Whether a binding of `scope` applies in a session that is `live` or `replay`.
fn applies(scope: Scope, live: bool, replay: bool) -> bool {
    match scope {
        Scope::All => true,
        Scope::Live => live,
        Scope::Replay => replay,
    }
}

fn matches(key: &Key, ev: &KeyEvent) -> bool {
    // Shift is part of the character for letters and symbols.
    let mods = ev.modifiers - KeyModifiers::SHIFT;
    key.code == ev.code && key.mods == mods
}

/// The action bound to `ev`: a binding of the session's own scope first, then `All`.
pub fn lookup(ev: &KeyEvent, live: bool, replay: bool) -> Option<Action> {
    let scoped = KEYMAP.iter().find(|bd| {
        bd.scope != Scope::All
            && applies(bd.scope, live, replay)
            && bd.keys.iter().any(|k| matches(k, ev))
    });
    scoped
        .or_else(|| {
            KEYMAP
                .iter()
                .find(|bd| bd.scope == Scope::All && bd.keys.iter().any(|k| matches(k, ev)))
        })
        .map(|bd| bd.action.clone())
}

/// A key as the help shows it: `j`, `↓`, `C-c`, `PgUp`.
pub fn key_name(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::Esc => "Esc".into(),
        other => format!("{other:?}"),
    };
    if key.mods.contains(KeyModifiers::CONTROL) {
        format!("C-{base}")
    } else {
        base
    }
}

/// The bindings that apply in this session, as (keys, help) lines for `?`.
pub fn help_lines(live: bool, replay: bool) -> Vec<(String, &'static str)> {
    KEYMAP
        .iter()
        .filter(|bd| applies(bd.scope, live, replay))
        .map(|bd| {
            let keys: Vec<String> = bd.keys.iter().map(key_name).collect();
            (keys.join(" "), bd.help)
        })
        .collect()
}

/// The first key bound to `action`, for the hints in the status line.
pub fn key_for(action: &Action) -> Option<String> {
    KEYMAP
        .iter()
        .find(|bd| &bd.action == action)
        .and_then(|bd| bd.keys.first())
        .map(key_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventKind;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: mods,
            kind: KeyEventKind::Press,
            state: ratatui::crossterm::event::KeyEventState::NONE,
        }
    }

    #[test]
    fn arrows_step_frames_only_in_replay() {
        let right = ev(KeyCode::Right, KeyModifiers::NONE);
        assert_eq!(lookup(&right, false, false), Some(Action::Expand));
        assert_eq!(lookup(&right, false, true), Some(Action::FrameNext));
        assert_eq!(
            lookup(&ev(KeyCode::Char('r'), KeyModifiers::NONE), false, false),
            None
        );
        assert_eq!(
            lookup(&ev(KeyCode::Char('r'), KeyModifiers::NONE), true, false),
            Some(Action::Refresh)
        );
    }

    #[test]
    fn shifted_letters_and_control_keys() {
        assert_eq!(
            lookup(&ev(KeyCode::Char('N'), KeyModifiers::SHIFT), false, false),
            Some(Action::PrevDivergence)
        );
        assert_eq!(
            lookup(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL), false, false),
            Some(Action::Quit)
        );
        assert_eq!(
            lookup(&ev(KeyCode::Char('c'), KeyModifiers::NONE), false, false),
            None
        );
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for bd in &KEYMAP[i + 1..] {
                if a.scope != bd.scope {
                    continue;
                }
                for key in a.keys {
                    assert!(
                        !bd.keys.contains(key),
                        "{} bound to {:?} and {:?}",
                        key_name(key),
                        a.action,
                        bd.action
                    );
                }
            }
        }
    }
}
