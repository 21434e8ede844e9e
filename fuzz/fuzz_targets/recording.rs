//! Recording files: opening never panics and never allocates from a claimed length;
//! every frame that loads rebuilds, lists and answers "last change" queries without
//! panicking; appending to whatever opened works or fails cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regdrift::record::{Recording, RecordingWriter, WriterOptions};
use regdrift::snapshot::Bdf;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("regdrift-fuzz-{}.rec", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(rec) = Recording::open(&path) {
        let n = rec.frame_count();
        for i in 0..n.min(64) {
            let _ = rec.snapshot(i);
            let _ = rec.changes(i);
        }
        let _ = rec.last_change_msr(0, 0x10, n - 1);
        let _ = rec.last_change_pci(Bdf::default(), 4, n - 1);
        let _ = regdrift::record::command::list(&rec);
    }
    let opts = WriterOptions {
        sync: false,
        ..WriterOptions::default()
    };
    if let Ok(mut w) = RecordingWriter::open_append_with(&path, opts) {
        if let Some(s) = w.last().cloned() {
            let _ = w.append(&s, &["fuzz".to_string()]);
        }
    }
    let _ = std::fs::remove_file(&path);
});
