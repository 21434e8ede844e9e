//! MSR value helpers shared by the MTRR and PAT decoders.

/// The x86 memory type names used by MTRRs and PAT entries.
pub fn memory_type_name(t: u64) -> Option<&'static str> {
    Some(match t {
        0 => "UC",
        1 => "WC",
        4 => "WT",
        5 => "WP",
        6 => "WB",
        7 => "UC-",
        _ => return None,
    })
}
