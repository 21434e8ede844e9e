//! /proc/mtrr text and the MTRR decoder on arbitrary MSR values.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use regdrift::decode::mtrr;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mtrr::parse_proc_mtrr(text);
    }
    // The same bytes as MSR values: MTRRcap, MTRRdefType, then the variable pairs.
    let mut values = BTreeMap::new();
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut it = words.iter().copied();
    if let (Some(cap), Some(def)) = (it.next(), it.next()) {
        values.insert(mtrr::MTRRCAP, cap);
        values.insert(mtrr::MTRR_DEF_TYPE, def);
        for (i, w) in it.enumerate() {
            values.insert(mtrr::PHYSBASE0 + i as u32, w);
        }
        let phys = data.first().copied();
        if let Some(st) = mtrr::decode(&values, phys) {
            for v in &st.variable {
                let _ = v.describe();
            }
            if let Ok(text) = std::str::from_utf8(data) {
                if let Ok(lines) = mtrr::parse_proc_mtrr(text) {
                    let _ = mtrr::cross_check(&st, &lines);
                }
            }
        }
    }
});
