//! The JSON report: `Report` serialized as documented in the README
//! (`"format": "regdrift-report"`, `"version": 1`).

use crate::report::Report;

pub fn render(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("report serializes");
    s.push('\n');
    s
}
