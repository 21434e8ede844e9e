//! Recordings: snapshots over time, with marks, in one append-only file.
//!
//! A recording is what happened to the registers over time: frames taken at an interval
//! (`regdrift record`), assembled from snapshots taken across boots (`--from`,
//! `--append`), with marks ("cold", "after-kexec"). [`RecordingWriter`] appends frames;
//! [`Recording`] opens a file (even one cut short by a crash), lists its frames and
//! rebuilds any of them. The file layout is described in [`format`].
//!
//! Diff and the other commands name a frame as `FILE.rec@N` (`@-1` is the last frame) or
//! `FILE.rec@MARK`: see [`load_frame_arg`].

mod codec;
pub mod command;
pub mod delta;
pub mod format;
pub mod synth;

use std::path::Path;

pub use command::{RecordArgs, ReplayArgs};
pub use delta::{ChangeSummary, Delta, Query};
pub use format::{
    Damage, DamageKind, FrameMeta, FrameRef, Mark, Recording, RecordingWriter, WriterOptions,
    FORMAT, VERSION,
};

use crate::error::FileError;
use crate::snapshot::Snapshot;

/// Split `FILE@FRAME` when `FILE` is a recording: a name ending in `.rec`, or a file that
/// starts with the recording header. An argument naming an existing file as a whole is a
/// path, not a frame reference.
pub fn split_frame_arg(arg: &str) -> Option<(&Path, FrameRef)> {
    if Path::new(arg).exists() {
        return None;
    }
    let (file, frame) = arg.rsplit_once('@')?;
    if file.is_empty() || frame.is_empty() {
        return None;
    }
    let path = Path::new(file);
    if !(file.ends_with(".rec") || format::looks_like_recording(path)) {
        return None;
    }
    Some((path, FrameRef::parse(frame)))
}

/// Load the frame an argument of the form `FILE.rec@N` or `FILE.rec@MARK` names;
/// `None` when the argument does not have that form (it is then a snapshot path).
pub fn load_frame_arg(arg: &str) -> Option<Result<Snapshot, FileError>> {
    let (path, frame) = split_frame_arg(arg)?;
    Some(Recording::open(path).and_then(|rec| {
        let i = rec.resolve(&frame)?;
        rec.snapshot(i)
    }))
}
