//! The recording reader on arbitrary files. The first byte picks how the rest is used:
//!
//! - even: the bytes are the file, as found (header and checksums included);
//! - odd: the bytes are records `[len u16 LE][kind u8][payload]…`, written after a valid
//!   header with correct checksums, so that the fuzzer reaches the frame and delta
//!   decoders instead of stopping at a checksum.
//!
//! Opening never panics; every frame that opens rebuilds (or fails with an error), and
//! the listing and the rebuilt snapshots never carry an escape.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use regdrift::record::format::{Recording, FORMAT, VERSION};

fn records(mut data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 24];
    out[..FORMAT.len()].copy_from_slice(FORMAT.as_bytes());
    out[20..24].copy_from_slice(&VERSION.to_le_bytes());
    while let [a, b, kind, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        let mut head = [0u8; 9];
        head[..4].copy_from_slice(&(len as u32).to_le_bytes());
        head[4] = *kind;
        let mut h = crc32fast::Hasher::new();
        h.update(&head[..5]);
        h.update(payload);
        head[5..].copy_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(payload);
        data = tail;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 { rest.to_vec() } else { records(rest) };
    let path = std::env::temp_dir().join(format!("regdrift-fuzz-{}.rec", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else { return };
    if f.write_all(&bytes).is_err() {
        return;
    }
    drop(f);
    if let Ok(rec) = Recording::open(&path) {
        if let Ok(list) = regdrift::record::command::list(&rec) {
            assert!(!list.contains('\x1b'), "an escape reached the listing");
        }
        for i in 0..rec.frame_count().min(64) {
            if let Ok(s) = rec.snapshot(i) {
                let shown = regdrift::export::show::render(&s, "fuzz");
                assert!(!shown.contains('\x1b'), "an escape reached the output");
            }
        }
    }
});
