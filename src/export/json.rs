//! The JSON report: `Report` serialized as documented in the README
//! (`"format": "regdrift-report"`, `"version": 1`).

use crate::report::Report;

pub fn render(report: &Report) -> String {
    let mut s = crate::sanitize::to_json_pretty(report).expect("report serializes");
    s.push('\n');
    s
}
