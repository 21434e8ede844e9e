//! The mtrr importer on arbitrary text: never panics; what it imports renders (show,
//! JSON) without an escape reaching the output, and round-trips through JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regdrift::import;
use regdrift::snapshot::Snapshot;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(imp) = import::parse_mtrr(text, "fuzz\x1b[31m.txt") else { return };
    let shown = regdrift::export::show::render(&imp.snapshot, "fuzz");
    assert!(!shown.contains('\x1b'), "an escape reached the output");
    let again = Snapshot::from_json(&imp.snapshot.to_json()).expect("round trip");
    assert_eq!(again, imp.snapshot);
});
