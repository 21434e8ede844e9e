//! The terminal: raw mode, the alternate screen and mouse capture while the TUI runs,
//! restored on every way out — a normal quit and an error (the guard's `Drop`), a panic
//! (ratatui's hook, wrapped so mouse capture is released too and the message is printed
//! after the restore), and SIGTERM, SIGHUP and SIGINT (turned into a quit by a signal
//! thread, so the restore runs on the UI thread as for `q`).

use std::io::{self, stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::DefaultTerminal;

/// The terminal is in TUI mode.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Some thread panicked: the UI must stop drawing (the terminal is already restored).
static PANICKED: AtomicBool = AtomicBool::new(false);

/// The terminal in TUI mode; restored when dropped.
pub struct Tty {
    pub terminal: DefaultTerminal,
}

impl Tty {
    /// Enter raw mode, the alternate screen and mouse capture.
    pub fn enter() -> io::Result<Tty> {
        // ratatui's hook restores raw mode and the screen, then prints the panic; ours
        // runs first and also releases the mouse.
        let terminal = ratatui::try_init()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let ratatui_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            release_mouse();
            ACTIVE.store(false, Ordering::SeqCst);
            ratatui_hook(info);
        }));
        if let Err(e) = execute!(stdout(), EnableMouseCapture) {
            restore();
            return Err(e);
        }
        Ok(Tty { terminal })
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        restore();
    }
}

fn release_mouse() {
    let _ = execute!(stdout(), DisableMouseCapture);
}

/// Leave TUI mode (once; later calls do nothing).
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        release_mouse();
        ratatui::restore();
    }
}

/// Whether any thread has panicked since the TUI started.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Deliver SIGTERM, SIGHUP and SIGINT to `tx` as `f(signal)` from a background thread.
pub fn forward_signals<M: Send + 'static>(
    tx: Sender<M>,
    f: impl Fn(i32) -> M + Send + 'static,
) -> io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT])?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("regdrift-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(f(sig)).is_err() {
                    break;
                }
            }
        })?;
    Ok(handle)
}
