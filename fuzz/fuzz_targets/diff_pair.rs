//! Two hostile snapshots through the whole diff and every exporter.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regdrift::export::{self, Format};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Two snapshots separated by a NUL (the seed corpus holds real pairs).
    let Some((a, b)) = text.split_once('\0') else { return };
    let (Ok(a), Ok(b)) = (
        regdrift::snapshot::Snapshot::from_json(a),
        regdrift::snapshot::Snapshot::from_json(b),
    ) else {
        return;
    };
    let r = regdrift::diff::diff(&a, &b, &Default::default());
    for f in [Format::Text, Format::Markdown, Format::Json] {
        let out = export::render(&r, f);
        assert!(!out.contains('\x1b'), "an escape reached the output");
    }
});
