//! Snapshot JSON: parse never panics; what parses renders (show, JSON) without panicking
//! and round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = regdrift::snapshot::Snapshot::from_json(text) {
        let _ = regdrift::export::show::render(&s, "fuzz");
        let again = regdrift::snapshot::Snapshot::from_json(&s.to_json()).expect("round trip");
        assert_eq!(again, s);
    }
});
