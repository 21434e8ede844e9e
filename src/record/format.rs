//! The recording file: a fixed header, then length-prefixed, checksummed records,
//! appended and never rewritten.
//!
//! ```text
//! header   24 bytes   "regdrift-recording" NUL-padded to 20 bytes, version (u32 LE) = 1
//! record    9 bytes   payload length (u32 LE), kind (u8),
//!                     CRC-32 (u32 LE) of the length, the kind and the payload
//!           payload
//! ```
//!
//! Kinds of record:
//!
//! - **frame** (1): time (unix milliseconds, zigzag varint), marks (count, strings), then
//!   the [`Delta`] from the previous frame. The first frame's delta is against
//!   [`delta::empty`], so it holds the whole snapshot.
//! - **checkpoint** (2): a frame number (always the frame just written) and the delta from
//!   frame 0 to that frame. Written every 64 frames (or after 256 KiB of deltas), so that
//!   reaching any frame costs one checkpoint and at most 63 small deltas. A checkpoint
//!   against frame 0 rather than a whole snapshot keeps an hour of a machine whose
//!   counters tick every second close to one snapshot in size. Checkpoints only speed up
//!   seeking: every frame is also reachable through the chain of deltas.
//! - **mark** (3): a frame number (an earlier frame) and a label.
//!
//! There is no stored index: opening a recording reads it once from the start, checks
//! every record's checksum and keeps the offsets of frames and checkpoints. That read is
//! needed anyway to find where a crash cut the file, it cannot disagree with the records
//! (a stored index could, after a crash), and at crc32 speed an hour of recording (a few
//! MiB) takes milliseconds.
//!
//! Each append is a single `write` of whole records to a file opened with `O_APPEND`,
//! followed by `fsync`. A file cut at any byte (kill -9, power loss, full disk) loads up
//! to its last complete record; the cut is reported. Appending again first cuts off a
//! torn record at the end of the file, and refuses a file damaged in the middle.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{FileError, ParseError};
use crate::record::codec::{Dec, Enc};
use crate::record::delta::{self, ChangeSummary, Delta, Query};
use crate::snapshot::{Bdf, Snapshot};

pub const FORMAT: &str = "regdrift-recording";
pub const VERSION: u32 = 1;
/// Bytes of the file header.
pub const HEADER_LEN: u64 = 24;
const NAME_FIELD: usize = 20;
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 9;
/// The largest record regdrift writes or reads: a whole snapshot of a 256-CPU server with
/// a thousand devices is about 6 MiB.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
/// The longest mark label.
pub const MAX_LABEL_BYTES: usize = 1024;

const KIND_FRAME: u8 = 1;
const KIND_CHECKPOINT: u8 = 2;
const KIND_MARK: u8 = 3;

fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..FORMAT.len()].copy_from_slice(FORMAT.as_bytes());
    h[NAME_FIELD..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Whether the file starts like a recording (for telling a recording from a snapshot).
pub fn looks_like_recording(path: &Path) -> bool {
    let mut buf = [0u8; FORMAT.len()];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map(|_| buf == FORMAT.as_bytes())
        .unwrap_or(false)
}

enum HeaderState {
    Complete,
    /// The file is shorter than the header but starts like one.
    Partial,
}

fn check_header(bytes: &[u8], path: &Path) -> Result<HeaderState, FileError> {
    let want = header_bytes();
    let n = bytes.len().min(NAME_FIELD);
    if bytes.get(..n) != want.get(..n) {
        let what = if bytes.first() == Some(&b'{') {
            "a JSON file (a snapshot?), not a regdrift recording".to_string()
        } else {
            format!("not a regdrift recording (no {FORMAT:?} header)")
        };
        return Err(FileError::invalid(path, what));
    }
    let Some(v) = bytes.get(NAME_FIELD..HEADER_LEN as usize) else {
        return Ok(HeaderState::Partial);
    };
    let version = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    if version == VERSION {
        Ok(HeaderState::Complete)
    } else if version > VERSION {
        Err(FileError::invalid(
            path,
            format!(
                "{FORMAT} version {version} is newer than this regdrift understands \
                 (version {VERSION}); upgrade regdrift"
            ),
        ))
    } else {
        Err(FileError::invalid(
            path,
            format!("unknown {FORMAT} version {version}"),
        ))
    }
}

/// Append one record to `out`: header, then whatever `payload` writes.
fn put_record(out: &mut Vec<u8>, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER as usize]);
    payload(out);
    let len = (out.len() - start - RECORD_HEADER as usize) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4] = kind;
    let mut h = crc32fast::Hasher::new();
    h.update(&out[start..start + 5]);
    h.update(&out[start + RECORD_HEADER as usize..]);
    let crc = h.finalize();
    out[start + 5..start + 9].copy_from_slice(&crc.to_le_bytes());
}

fn record_crc(head: &[u8; RECORD_HEADER as usize], payload: &[u8]) -> (u32, u32) {
    let mut h = crc32fast::Hasher::new();
    h.update(&head[..5]);
    h.update(payload);
    let stored = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    (stored, h.finalize())
}

// ---------------------------------------------------------------------------------------
// Scanning

#[derive(Clone, Debug)]
struct FrameEntry {
    /// Offset of the record header in the file.
    offset: u64,
    /// Payload length.
    len: u32,
    /// Where the delta starts in the payload.
    body: u32,
    time_ms: i64,
    /// Inline marks and those of later mark records, in file order.
    marks: Vec<String>,
}

#[derive(Clone, Debug)]
struct CheckpointEntry {
    frame: usize,
    offset: u64,
    len: u32,
    body: u32,
}

/// A label on a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub frame: usize,
    pub label: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// The file ends inside a record (or inside the header).
    Truncated,
    /// A record is unreadable: bad checksum, impossible length, invalid contents.
    Corrupt,
}

/// Why a recording did not load to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub kind: DamageKind,
    /// Byte offset of the record (or header) that could not be read.
    pub offset: u64,
    /// What is wrong, naming the file and the offset.
    pub message: String,
    /// Where the damaged record claims to end, when its length is plausible.
    record_end: Option<u64>,
}

struct Scan {
    header: HeaderState,
    frames: Vec<FrameEntry>,
    checkpoints: Vec<CheckpointEntry>,
    marks: Vec<Mark>,
    /// End of the last good record.
    valid_end: u64,
    file_len: u64,
    damage: Option<Damage>,
}

enum Parsed {
    Frame {
        time_ms: i64,
        marks: Vec<String>,
        body: u32,
    },
    Checkpoint {
        frame: usize,
        body: u32,
    },
    Mark(Mark),
}

fn parse_record(kind: u8, payload: &[u8], frames: usize) -> Result<Parsed, ParseError> {
    let mut d = Dec::new(payload);
    match kind {
        KIND_FRAME => {
            let time_ms = d.i()?;
            let n = d.count(1)?;
            let mut marks = Vec::with_capacity(n);
            for _ in 0..n {
                marks.push(d.str()?.to_string());
            }
            Ok(Parsed::Frame {
                time_ms,
                marks,
                body: d.pos() as u32,
            })
        }
        KIND_CHECKPOINT => {
            let frame = d.u()?;
            if frames == 0 || frame != (frames - 1) as u64 {
                return Err(d.err(format!(
                    "checkpoint for frame {frame} follows frame {}",
                    frames as i64 - 1
                )));
            }
            Ok(Parsed::Checkpoint {
                frame: frame as usize,
                body: d.pos() as u32,
            })
        }
        KIND_MARK => {
            let frame = d.u()?;
            if frame >= frames as u64 {
                return Err(d.err(format!(
                    "mark for frame {frame}, but only {frames} frames precede it"
                )));
            }
            let label = d.str()?.to_string();
            d.finish()?;
            Ok(Parsed::Mark(Mark {
                frame: frame as usize,
                label,
            }))
        }
        k => Err(ParseError::new(format!("unknown record kind {k}"))),
    }
}

fn scan(file: &File, path: &Path) -> Result<Scan, FileError> {
    let read_err = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file_len = file.metadata().map_err(read_err)?.len();
    let mut f = file;
    f.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut head = Vec::with_capacity(HEADER_LEN as usize);
    (&mut r)
        .take(HEADER_LEN)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let mut s = Scan {
        header: check_header(&head, path)?,
        frames: Vec::new(),
        checkpoints: Vec::new(),
        marks: Vec::new(),
        valid_end: 0,
        file_len,
        damage: None,
    };
    let name = path.display();
    if let HeaderState::Partial = s.header {
        s.damage = Some(Damage {
            kind: DamageKind::Truncated,
            offset: 0,
            message: format!(
                "{name}: cut off inside the file header ({} of {HEADER_LEN} bytes)",
                head.len()
            ),
            record_end: None,
        });
        return Ok(s);
    }
    let mut pos = HEADER_LEN;
    s.valid_end = pos;
    let mut payload = Vec::new();
    let truncated = |pos: u64, what: String| Damage {
        kind: DamageKind::Truncated,
        offset: pos,
        message: format!("{name}: cut off at byte {file_len}, {what}"),
        record_end: None,
    };
    while pos < file_len {
        let remaining = file_len - pos;
        if remaining < RECORD_HEADER {
            s.damage = Some(truncated(
                pos,
                format!("inside the header of the record at byte {pos}"),
            ));
            break;
        }
        let mut h = [0u8; RECORD_HEADER as usize];
        match r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                s.damage = Some(truncated(pos, "while it was being read".into()));
                break;
            }
            Err(e) => return Err(read_err(e)),
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let kind = h[4];
        if len > MAX_RECORD_BYTES {
            s.damage = Some(Damage {
                kind: DamageKind::Corrupt,
                offset: pos,
                message: format!(
                    "{name}: the record at byte {pos} claims {len} bytes, more than the \
                     {} MiB a record may hold: corrupt",
                    MAX_RECORD_BYTES >> 20
                ),
                record_end: None,
            });
            break;
        }
        let end = pos + RECORD_HEADER + u64::from(len);
        if end > file_len {
            s.damage = Some(truncated(
                pos,
                format!(
                    "inside the record at byte {pos} ({} of its {} bytes)",
                    remaining,
                    RECORD_HEADER + u64::from(len)
                ),
            ));
            break;
        }
        payload.resize(len as usize, 0);
        match r.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                s.damage = Some(truncated(pos, "while it was being read".into()));
                break;
            }
            Err(e) => return Err(read_err(e)),
        }
        let corrupt = |what: String| Damage {
            kind: DamageKind::Corrupt,
            offset: pos,
            message: format!("{name}: the record at byte {pos} {what}"),
            record_end: Some(end),
        };
        let (stored, computed) = record_crc(&h, &payload);
        if stored != computed {
            s.damage = Some(corrupt(format!(
                "has a bad checksum ({stored:#010x}, computed {computed:#010x}): corrupt"
            )));
            break;
        }
        match parse_record(kind, &payload, s.frames.len()) {
            Ok(Parsed::Frame {
                time_ms,
                marks,
                body,
            }) => {
                for label in &marks {
                    s.marks.push(Mark {
                        frame: s.frames.len(),
                        label: label.clone(),
                    });
                }
                s.frames.push(FrameEntry {
                    offset: pos,
                    len,
                    body,
                    time_ms,
                    marks,
                });
            }
            Ok(Parsed::Checkpoint { frame, body }) => s.checkpoints.push(CheckpointEntry {
                frame,
                offset: pos,
                len,
                body,
            }),
            Ok(Parsed::Mark(m)) => {
                if let Some(f) = s.frames.get_mut(m.frame) {
                    f.marks.push(m.label.clone());
                }
                s.marks.push(m);
            }
            Err(e) => {
                s.damage = Some(corrupt(format!("is invalid: {e}")));
                break;
            }
        }
        pos = end;
        s.valid_end = pos;
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// Reading

/// A recording opened for reading. Frames are rebuilt on demand from the file.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    file: File,
    frames: Vec<FrameEntry>,
    checkpoints: Vec<CheckpointEntry>,
    marks: Vec<Mark>,
    first: Snapshot,
    damage: Option<Damage>,
    valid_end: u64,
}

/// What a timeline shows of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta<'a> {
    pub index: usize,
    /// When the frame was captured (its snapshot's `captured_at`, or when it was
    /// recorded), in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Labels as written: show them through [`crate::sanitize::inert`].
    pub marks: &'a [String],
}

impl FrameMeta<'_> {
    pub fn time(&self) -> Option<SystemTime> {
        let ms = u64::try_from(self.time_ms).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }

    /// RFC 3339 in UTC with milliseconds, or `@<ms>` for a time RFC 3339 cannot show.
    pub fn rfc3339(&self) -> String {
        format_time_ms(self.time_ms)
    }
}

/// RFC 3339 in UTC with milliseconds, or `@<ms>` for a time before 1970 or after 9999.
pub fn format_time_ms(ms: i64) -> String {
    // humantime formats years 1970 to 9999.
    const MAX_MS: i64 = 253_402_300_799_999;
    if (0..=MAX_MS).contains(&ms) {
        let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
        humantime::format_rfc3339_millis(t).to_string()
    } else {
        format!("@{ms}")
    }
}

/// Which frame: a number (negative counts from the end: -1 is the last) or a mark label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameRef {
    Index(usize),
    FromEnd(usize),
    Mark(String),
}

impl FrameRef {
    /// `12`, `-1`, or a mark label (anything that is not a number).
    pub fn parse(s: &str) -> FrameRef {
        if let Ok(n) = s.parse::<usize>() {
            return FrameRef::Index(n);
        }
        if let Some(n) = s.strip_prefix('-').and_then(|n| n.parse::<usize>().ok()) {
            if n > 0 {
                return FrameRef::FromEnd(n);
            }
        }
        FrameRef::Mark(s.to_string())
    }
}

impl Recording {
    /// Open a recording and read its index. A recording cut short (or damaged) opens up
    /// to its last good frame, with [`Recording::truncated`] set; one with no good frame
    /// at all is an error.
    pub fn open(path: &Path) -> Result<Recording, FileError> {
        let file = File::open(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let s = scan(&file, path)?;
        Recording::from_scan(path, file, s)
    }

    fn from_scan(path: &Path, file: File, s: Scan) -> Result<Recording, FileError> {
        if s.frames.is_empty() {
            let why = match &s.damage {
                Some(d) => d.message.clone(),
                None => format!("{}: holds no frame", path.display()),
            };
            return Err(FileError::invalid(
                path,
                format!("no complete frame: {why}"),
            ));
        }
        let mut rec = Recording {
            path: path.to_path_buf(),
            file,
            frames: s.frames,
            checkpoints: s.checkpoints,
            marks: s.marks,
            first: delta::empty(),
            damage: s.damage,
            valid_end: s.valid_end,
        };
        let mut first = delta::empty();
        rec.delta(0)?
            .apply(&mut first)
            .map_err(|e| rec.frame_error(0, e))?;
        rec.first = first;
        Ok(rec)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    pub fn frame_meta(&self, i: usize) -> Option<FrameMeta<'_>> {
        self.frames.get(i).map(|f| FrameMeta {
            index: i,
            time_ms: f.time_ms,
            marks: &f.marks,
        })
    }

    /// Every mark, in the order they were written.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// Frames carrying the mark `label`.
    pub fn frames_marked(&self, label: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .marks
            .iter()
            .filter(|m| m.label == label)
            .map(|m| m.frame)
            .collect();
        v.dedup();
        v
    }

    /// The file did not load to its end (cut off, or damaged).
    pub fn truncated(&self) -> bool {
        self.damage.is_some()
    }

    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// The message to show when the recording did not load to its end.
    pub fn warning(&self) -> Option<String> {
        self.damage.as_ref().map(|d| {
            format!(
                "{}; loaded the {} frame{} before it",
                d.message,
                self.frames.len(),
                if self.frames.len() == 1 { "" } else { "s" }
            )
        })
    }

    /// Bytes of the file that loaded.
    pub fn loaded_bytes(&self) -> u64 {
        self.valid_end
    }

    /// Frame 0, kept in memory.
    pub fn first(&self) -> &Snapshot {
        &self.first
    }

    fn frame_error(&self, i: usize, e: impl std::fmt::Display) -> FileError {
        let at = self.frames.get(i).map_or(0, |f| f.offset);
        FileError::invalid(&self.path, format!("frame {i} (record at byte {at}): {e}"))
    }

    fn no_frame(&self, i: usize) -> FileError {
        FileError::invalid(
            &self.path,
            format!(
                "no frame {i}: the recording has {} frame{}{}",
                self.frames.len(),
                if self.frames.len() == 1 { "" } else { "s" },
                if self.truncated() {
                    " (it is truncated)"
                } else {
                    ""
                }
            ),
        )
    }

    /// Read and check one record's payload.
    fn payload(&self, offset: u64, len: u32) -> Result<Vec<u8>, FileError> {
        let mut buf = vec![0u8; RECORD_HEADER as usize + len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|source| FileError::Read {
                path: self.path.clone(),
                source,
            })?;
        let mut h = [0u8; RECORD_HEADER as usize];
        h.copy_from_slice(&buf[..RECORD_HEADER as usize]);
        let payload = buf.split_off(RECORD_HEADER as usize);
        let (stored, computed) = record_crc(&h, &payload);
        if stored != computed || u32::from_le_bytes([h[0], h[1], h[2], h[3]]) != len {
            return Err(self.changed(offset));
        }
        Ok(payload)
    }

    /// Call `f(j, delta body)` for the frames `lo..=hi`, ascending or descending, reading
    /// them in spans of up to 256 frames or 4 MiB with one read each; stops when `f`
    /// returns true (and then returns true).
    fn walk(
        &self,
        lo: usize,
        hi: usize,
        descending: bool,
        mut f: impl FnMut(usize, &[u8]) -> Result<bool, FileError>,
    ) -> Result<bool, FileError> {
        const SPAN_FRAMES: usize = 256;
        const SPAN_BYTES: u64 = 4 << 20;
        let end_of = |j: usize| {
            self.frames
                .get(j)
                .map_or(0, |e| e.offset + RECORD_HEADER + u64::from(e.len))
        };
        let start_of = |j: usize| self.frames.get(j).map_or(0, |e| e.offset);
        // Cut lo..=hi into spans.
        let mut spans = Vec::new();
        let mut a = lo;
        while a <= hi {
            let mut b = a;
            while b < hi && b - a + 1 < SPAN_FRAMES && end_of(b + 1) - start_of(a) <= SPAN_BYTES {
                b += 1;
            }
            spans.push((a, b));
            a = b + 1;
        }
        if descending {
            spans.reverse();
        }
        let mut buf = Vec::new();
        for (a, b) in spans {
            let base = start_of(a);
            let len = usize::try_from(end_of(b) - base)
                .map_err(|_| FileError::invalid(&self.path, "span too large"))?;
            buf.resize(len, 0);
            self.file
                .read_exact_at(&mut buf, base)
                .map_err(|source| FileError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            let mut one = |j: usize| -> Result<bool, FileError> {
                let e = self.frames.get(j).ok_or_else(|| self.no_frame(j))?;
                let at = (e.offset - base) as usize;
                let rec = buf
                    .get(at..at + RECORD_HEADER as usize + e.len as usize)
                    .ok_or_else(|| self.changed(e.offset))?;
                let mut h = [0u8; RECORD_HEADER as usize];
                h.copy_from_slice(&rec[..RECORD_HEADER as usize]);
                let payload = &rec[RECORD_HEADER as usize..];
                let (stored, computed) = record_crc(&h, payload);
                if stored != computed {
                    return Err(self.changed(e.offset));
                }
                f(j, payload.get(e.body as usize..).unwrap_or(&[]))
            };
            if descending {
                for j in (a..=b).rev() {
                    if one(j)? {
                        return Ok(true);
                    }
                }
            } else {
                for j in a..=b {
                    if one(j)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn changed(&self, offset: u64) -> FileError {
        FileError::invalid(
            &self.path,
            format!("the record at byte {offset} changed since the file was opened"),
        )
    }

    /// The change that made frame `i` from frame `i - 1` (frame 0: from an empty
    /// snapshot).
    pub fn delta(&self, i: usize) -> Result<Delta, FileError> {
        let f = self.frames.get(i).ok_or_else(|| self.no_frame(i))?;
        let p = self.payload(f.offset, f.len)?;
        let body = p.get(f.body as usize..).unwrap_or(&[]);
        Delta::decode(body).map_err(|e| self.frame_error(i, e))
    }

    /// Counts of what frame `i` changed.
    pub fn changes(&self, i: usize) -> Result<ChangeSummary, FileError> {
        Ok(self.delta(i)?.summary())
    }

    /// Frame `i`, rebuilt: frame 0, the latest checkpoint at or before `i`, and the deltas
    /// after it.
    pub fn snapshot(&self, i: usize) -> Result<Snapshot, FileError> {
        if i >= self.frames.len() {
            return Err(self.no_frame(i));
        }
        let mut s = self.first.clone();
        let mut at = 0;
        let cp = self.checkpoints.partition_point(|c| c.frame <= i);
        if let Some(c) = cp.checked_sub(1).and_then(|k| self.checkpoints.get(k)) {
            if c.frame > 0 {
                let p = self.payload(c.offset, c.len)?;
                let body = p.get(c.body as usize..).unwrap_or(&[]);
                Delta::decode(body)
                    .and_then(|d| d.apply(&mut s))
                    .map_err(|e| {
                        FileError::invalid(
                            &self.path,
                            format!(
                                "checkpoint of frame {} (record at byte {}): {e}",
                                c.frame, c.offset
                            ),
                        )
                    })?;
                at = c.frame;
            }
        }
        if at < i {
            self.walk(at + 1, i, false, |j, body| {
                Delta::decode(body)
                    .and_then(|d| d.apply(&mut s))
                    .map_err(|e| self.frame_error(j, e))?;
                Ok(false)
            })?;
        }
        Ok(s)
    }

    /// Turn `s`, which must be frame `from`, into frame `to` (later) by applying the
    /// deltas between: stepping forward (replay's play mode) costs one delta a frame.
    pub fn advance(&self, s: &mut Snapshot, from: usize, to: usize) -> Result<(), FileError> {
        if to >= self.frames.len() {
            return Err(self.no_frame(to));
        }
        if to < from {
            return Err(FileError::invalid(
                &self.path,
                format!("cannot advance from frame {from} back to frame {to}"),
            ));
        }
        if from == to {
            return Ok(());
        }
        self.walk(from + 1, to, false, |j, body| {
            Delta::decode(body)
                .and_then(|d| d.apply(s))
                .map_err(|e| self.frame_error(j, e))?;
            Ok(false)
        })?;
        Ok(())
    }

    /// Resolve a frame reference; a mark that several frames carry is an error that lists
    /// them.
    pub fn resolve(&self, r: &FrameRef) -> Result<usize, FileError> {
        match r {
            FrameRef::Index(i) if *i < self.frames.len() => Ok(*i),
            FrameRef::Index(i) => Err(self.no_frame(*i)),
            FrameRef::FromEnd(n) => self
                .frames
                .len()
                .checked_sub(*n)
                .ok_or_else(|| self.no_frame(0)),
            FrameRef::Mark(label) => match self.frames_marked(label).as_slice() {
                [i] => Ok(*i),
                [] => Err(FileError::invalid(
                    &self.path,
                    format!(
                        "no frame is marked {:?} (marks: {})",
                        crate::sanitize::inert(label),
                        self.mark_list()
                    ),
                )),
                many => Err(FileError::invalid(
                    &self.path,
                    format!(
                        "{} frames are marked {:?} ({}): give a frame number",
                        many.len(),
                        crate::sanitize::inert(label),
                        many.iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            },
        }
    }

    fn mark_list(&self) -> String {
        if self.marks.is_empty() {
            return "none".into();
        }
        let v: Vec<String> = self
            .marks
            .iter()
            .map(|m| format!("{}@{}", crate::sanitize::inert(&m.label), m.frame))
            .collect();
        v.join(", ")
    }

    /// The latest frame in `1..=frame` that changed MSR `index` on `cpu` (its value, its
    /// readability, or its presence); `None` if it stayed as frame 0 had it.
    pub fn last_change_msr(
        &self,
        cpu: u32,
        index: u32,
        frame: usize,
    ) -> Result<Option<usize>, FileError> {
        self.last_change(frame, Query::Msr { cpu, index })
    }

    /// The latest frame in `1..=frame` that changed config byte `offset` of `bdf` (or
    /// added or removed the device); `None` if it stayed as frame 0 had it.
    pub fn last_change_pci(
        &self,
        bdf: Bdf,
        offset: u16,
        frame: usize,
    ) -> Result<Option<usize>, FileError> {
        self.last_change(frame, Query::Pci { bdf, offset })
    }

    /// The latest frame in `1..=frame` whose delta touches what `q` names.
    pub fn last_change(&self, frame: usize, q: Query) -> Result<Option<usize>, FileError> {
        if frame >= self.frames.len() {
            return Err(self.no_frame(frame));
        }
        if frame == 0 {
            return Ok(None);
        }
        let mut found = None;
        self.walk(1, frame, true, |j, body| {
            let hit = Delta::encoded_touches(body, q).map_err(|e| self.frame_error(j, e))?;
            if hit {
                found = Some(j);
            }
            Ok(hit)
        })?;
        Ok(found)
    }
}

// ---------------------------------------------------------------------------------------
// Writing

#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// fsync after every append (default). Off only for generators and benchmarks.
    pub sync: bool,
    /// Write a checkpoint every this many frames.
    pub checkpoint_every: usize,
    /// ... or once this many bytes of deltas were written since the last one.
    pub checkpoint_bytes: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            sync: true,
            checkpoint_every: 64,
            checkpoint_bytes: 256 << 10,
        }
    }
}

/// Appends frames to a recording.
#[derive(Debug)]
pub struct RecordingWriter {
    path: PathBuf,
    file: File,
    opts: WriterOptions,
    frames: usize,
    first: Option<Snapshot>,
    last: Snapshot,
    since_checkpoint: usize,
    bytes_since_checkpoint: u64,
    end: u64,
    repaired: Option<String>,
    buf: Vec<u8>,
}

/// Take the writer's lock on the file. A lock held for a moment longer than its writer
/// (a child forked while the descriptor was open, before its exec closes it) is waited
/// for briefly; a live writer is refused.
fn lock(file: &File, path: &Path) -> Result<(), FileError> {
    for attempt in 0..10 {
        // SAFETY: flock on a descriptor this function borrows; no memory is passed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            // Filesystems without locks: carry on unlocked.
            return Ok(());
        }
        if attempt < 9 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(FileError::invalid(
        path,
        "is being written by another regdrift process",
    ))
}

/// The frame's time: its `captured_at` if it parses, else now.
fn frame_time_ms(s: &Snapshot) -> i64 {
    let t = s
        .meta
        .captured_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .unwrap_or_else(SystemTime::now);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn check_label(path: &Path, label: &str) -> Result<(), FileError> {
    if label.is_empty() || label.len() > MAX_LABEL_BYTES {
        return Err(FileError::invalid(
            path,
            format!("a mark label must have 1 to {MAX_LABEL_BYTES} bytes"),
        ));
    }
    Ok(())
}

impl RecordingWriter {
    /// Start a recording at `path` with `first` as frame 0. The file appears (replacing
    /// any file of that name) only once its first frame is on disk. Mode 0644 less the
    /// umask: never world-writable.
    pub fn create(
        path: &Path,
        first: &Snapshot,
        marks: &[String],
    ) -> Result<RecordingWriter, FileError> {
        RecordingWriter::create_with(path, first, marks, WriterOptions::default())
    }

    pub fn create_with(
        path: &Path,
        first: &Snapshot,
        marks: &[String],
        opts: WriterOptions,
    ) -> Result<RecordingWriter, FileError> {
        for m in marks {
            check_label(path, m)?;
        }
        let werr = |source| FileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| FileError::invalid(path, "not a file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(werr)?;
        let mut w = RecordingWriter {
            path: path.to_path_buf(),
            file,
            opts,
            frames: 0,
            first: None,
            last: delta::empty(),
            since_checkpoint: 0,
            bytes_since_checkpoint: 0,
            end: 0,
            repaired: None,
            buf: Vec::new(),
        };
        let result = (|| {
            lock(&w.file, path)?;
            w.buf.clear();
            w.buf.extend_from_slice(&header_bytes());
            w.frame_records(first, marks);
            w.file.write_all(&w.buf).map_err(werr)?;
            w.file.sync_all().map_err(werr)?;
            fs::rename(&tmp, path).map_err(werr)?;
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        w.end = w.buf.len() as u64;
        w.committed(first);
        Ok(w)
    }

    /// Open an existing recording to append to it (a boot script calls this once per
    /// boot). A record torn at the end of the file by a crash is cut off first (see
    /// [`RecordingWriter::repaired`]); a file damaged before its end is refused.
    pub fn open_append(path: &Path) -> Result<RecordingWriter, FileError> {
        RecordingWriter::open_append_with(path, WriterOptions::default())
    }

    pub fn open_append_with(
        path: &Path,
        opts: WriterOptions,
    ) -> Result<RecordingWriter, FileError> {
        let werr = |source| FileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|source| FileError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        lock(&file, path)?;
        let s = scan(&file, path)?;
        let mut repaired = None;
        if let Some(d) = &s.damage {
            let at_end = match d.kind {
                DamageKind::Truncated => true,
                DamageKind::Corrupt => d.record_end == Some(s.file_len),
            };
            if !at_end {
                return Err(FileError::invalid(
                    path,
                    format!(
                        "{}, and {} bytes follow that record: appending would leave the new \
                         frames unreadable; refused (export the good frames with \
                         `regdrift replay --export-frame` and start a new recording)",
                        d.message,
                        s.file_len.saturating_sub(d.offset)
                    ),
                ));
            }
            file.set_len(s.valid_end).map_err(werr)?;
            repaired = Some(format!(
                "{}; cut off the {} damaged bytes at the end",
                d.message,
                s.file_len - s.valid_end
            ));
        }
        let mut w = RecordingWriter {
            path: path.to_path_buf(),
            file,
            opts,
            frames: 0,
            first: None,
            last: delta::empty(),
            since_checkpoint: 0,
            bytes_since_checkpoint: 0,
            end: s.valid_end,
            repaired,
            buf: Vec::new(),
        };
        if let HeaderState::Partial = s.header {
            w.file.write_all(&header_bytes()).map_err(werr)?;
            w.end = HEADER_LEN;
            if w.opts.sync {
                w.file.sync_data().map_err(werr)?;
            }
            return Ok(w);
        }
        if s.frames.is_empty() {
            return Ok(w);
        }
        let last_cp = s.checkpoints.last().map_or(0, |c| c.frame);
        let since: u64 = s
            .frames
            .iter()
            .skip(last_cp + 1)
            .map(|f| RECORD_HEADER + u64::from(f.len))
            .sum();
        let n = s.frames.len();
        let reader = w.file.try_clone().map_err(werr)?;
        let rec = Recording::from_scan(path, reader, s)?;
        w.last = rec.snapshot(n - 1)?;
        w.first = Some(rec.first);
        w.frames = n;
        w.since_checkpoint = n - 1 - last_cp;
        w.bytes_since_checkpoint = since;
        Ok(w)
    }

    /// What was cut off the end of the file when it was opened for appending.
    pub fn repaired(&self) -> Option<&str> {
        self.repaired.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.end
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// The last frame written.
    pub fn last(&self) -> Option<&Snapshot> {
        (self.frames > 0).then_some(&self.last)
    }

    /// Append the records of a frame (and a checkpoint when one is due) to `self.buf`.
    fn frame_records(&mut self, s: &Snapshot, marks: &[String]) {
        let index = self.frames;
        let d = Delta::between(&self.last, s);
        let start = self.buf.len();
        put_record(&mut self.buf, KIND_FRAME, |out| {
            let mut e = Enc(out);
            e.i(frame_time_ms(s));
            e.u(marks.len() as u64);
            for m in marks {
                e.str(m);
            }
            d.encode(out);
        });
        let frame_bytes = (self.buf.len() - start) as u64;
        let due = self.since_checkpoint + 1 >= self.opts.checkpoint_every
            || self.bytes_since_checkpoint + frame_bytes >= self.opts.checkpoint_bytes;
        let checkpoint = match &self.first {
            Some(first) if index > 0 && due => Some(Delta::between(first, s)),
            _ => None,
        };
        if let Some(cd) = checkpoint {
            put_record(&mut self.buf, KIND_CHECKPOINT, |out| {
                Enc(out).u(index as u64);
                cd.encode(out);
            });
            self.since_checkpoint = 0;
            self.bytes_since_checkpoint = 0;
        } else if index > 0 {
            self.since_checkpoint += 1;
            self.bytes_since_checkpoint += frame_bytes;
        }
    }

    fn committed(&mut self, s: &Snapshot) {
        if self.first.is_none() {
            self.first = Some(s.clone());
        }
        self.last = s.clone();
        self.frames += 1;
    }

    /// Write `self.buf` in one write; on failure cut the file back to where it was.
    fn flush_buf(&mut self) -> Result<(), FileError> {
        let sync = self.opts.sync;
        let r = self.file.write_all(&self.buf).and_then(|_| {
            if sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(source) = r {
            let _ = self.file.set_len(self.end);
            return Err(FileError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.end += self.buf.len() as u64;
        Ok(())
    }

    /// Append `s` as the next frame, with `marks`; returns its frame number.
    pub fn append(&mut self, s: &Snapshot, marks: &[String]) -> Result<usize, FileError> {
        for m in marks {
            check_label(&self.path, m)?;
        }
        let saved = (self.since_checkpoint, self.bytes_since_checkpoint);
        self.buf.clear();
        self.frame_records(s, marks);
        if let Err(e) = self.flush_buf() {
            (self.since_checkpoint, self.bytes_since_checkpoint) = saved;
            return Err(e);
        }
        self.committed(s);
        Ok(self.frames - 1)
    }

    /// Mark the last frame written with `label`.
    pub fn mark(&mut self, label: &str) -> Result<(), FileError> {
        check_label(&self.path, label)?;
        let Some(frame) = self.frames.checked_sub(1) else {
            return Err(FileError::invalid(&self.path, "no frame to mark yet"));
        };
        self.buf.clear();
        put_record(&mut self.buf, KIND_MARK, |out| {
            let mut e = Enc(out);
            e.u(frame as u64);
            e.str(label);
        });
        self.flush_buf()
    }
}
