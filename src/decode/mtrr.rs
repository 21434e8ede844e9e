//! MTRR decoding: MTRRcap, MTRRdefType, the fixed ranges and the variable PHYSBASE/PHYSMASK
//! pairs, from MSR values; and the /proc/mtrr text the kernel prints, for the cross-check.

use std::collections::BTreeMap;

use crate::decode::msr::memory_type_name;
use crate::error::ParseError;

pub const MTRRCAP: u32 = 0xfe;
pub const MTRR_DEF_TYPE: u32 = 0x2ff;
pub const PHYSBASE0: u32 = 0x200;
/// The fixed-range MSRs, with the first address and size of each of their 8 subranges.
pub const FIXED: [(u32, u64, u64); 11] = [
    (0x250, 0x00000, 0x10000),
    (0x258, 0x80000, 0x4000),
    (0x259, 0xa0000, 0x4000),
    (0x268, 0xc0000, 0x1000),
    (0x269, 0xc8000, 0x1000),
    (0x26a, 0xd0000, 0x1000),
    (0x26b, 0xd8000, 0x1000),
    (0x26c, 0xe0000, 0x1000),
    (0x26d, 0xe8000, 0x1000),
    (0x26e, 0xf0000, 0x1000),
    (0x26f, 0xf8000, 0x1000),
];
/// The most variable ranges decoded: 32 pairs, 0x200–0x23F. VCNT is an 8-bit field, but
/// the fixed-range MSRs start at 0x250 and no CPU implements more than a few tens.
pub const MAX_VCNT: u32 = 32;

/// The memory type name, or `type N` for a reserved encoding.
pub fn type_name(t: u64) -> String {
    memory_type_name(t)
        .map(str::to_string)
        .unwrap_or_else(|| format!("type {t}"))
}

/// The MSRs that hold MTRR state, for a CPU whose MTRRcap reports `vcnt` variable ranges.
pub fn mtrr_msrs(vcnt: u32) -> Vec<u32> {
    let mut v = vec![MTRRCAP, MTRR_DEF_TYPE];
    v.extend(FIXED.iter().map(|f| f.0));
    v.extend((0..vcnt.min(MAX_VCNT) * 2).map(|i| PHYSBASE0 + i));
    v
}

/// One variable range: `base .. base+size` of `mem_type`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VarRange {
    pub reg: u32,
    pub base: u64,
    /// The size implied by the mask (for a contiguous mask), else `None`.
    pub size: Option<u64>,
    pub mask: u64,
    pub mem_type: u64,
}

impl VarRange {
    pub fn describe(&self) -> String {
        match self.size {
            Some(size) => format!(
                "{:#x}-{:#x} ({}) {}",
                self.base,
                self.base.wrapping_add(size).wrapping_sub(1),
                human_size(size),
                type_name(self.mem_type)
            ),
            None => format!(
                "base {:#x} mask {:#x} (non-contiguous) {}",
                self.base,
                self.mask,
                type_name(self.mem_type)
            ),
        }
    }
}

/// `256MB`, `4GB`, `64KB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TB"),
        (1 << 30, "GB"),
        (1 << 20, "MB"),
        (1 << 10, "KB"),
    ];
    for (u, name) in UNITS {
        if bytes >= u && bytes % u == 0 {
            return format!("{}{name}", bytes / u);
        }
    }
    format!("{bytes}B")
}

/// The MTRR state of one CPU, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MtrrState {
    pub vcnt: u32,
    pub fixed_supported: bool,
    pub wc_supported: bool,
    pub enabled: bool,
    pub fixed_enabled: bool,
    pub default_type: u64,
    /// Fixed subranges as (start, size, type), when fixed ranges are enabled and readable.
    pub fixed: Vec<(u64, u64, u64)>,
    /// Valid variable ranges.
    pub variable: Vec<VarRange>,
    /// MSRs that were needed but could not be read.
    pub missing: Vec<u32>,
}

/// Decode the MTRR state from one CPU's MSR values. `phys_bits` is the physical address
/// width (CPUID 0x80000008); without it 36 bits are assumed, as the kernel does.
pub fn decode(values: &BTreeMap<u32, u64>, phys_bits: Option<u8>) -> Option<MtrrState> {
    let cap = *values.get(&MTRRCAP)?;
    let mut st = MtrrState {
        vcnt: (cap & 0xff) as u32,
        fixed_supported: cap & (1 << 8) != 0,
        wc_supported: cap & (1 << 10) != 0,
        ..MtrrState::default()
    };
    match values.get(&MTRR_DEF_TYPE) {
        Some(&d) => {
            st.default_type = d & 0xff;
            st.fixed_enabled = d & (1 << 10) != 0;
            st.enabled = d & (1 << 11) != 0;
        }
        None => st.missing.push(MTRR_DEF_TYPE),
    }
    if st.fixed_supported {
        for &(msr, start, step) in &FIXED {
            match values.get(&msr) {
                Some(&v) => {
                    for i in 0..8u64 {
                        st.fixed
                            .push((start + i * step, step, (v >> (i * 8)) & 0xff));
                    }
                }
                None => st.missing.push(msr),
            }
        }
    }
    let bits = phys_bits.unwrap_or(36).clamp(32, 52) as u32;
    let addr_mask: u64 = ((1u64 << bits) - 1) & !0xfff;
    for n in 0..st.vcnt.min(MAX_VCNT) {
        let (bi, mi) = (PHYSBASE0 + 2 * n, PHYSBASE0 + 2 * n + 1);
        let (Some(&b), Some(&m)) = (values.get(&bi), values.get(&mi)) else {
            st.missing
                .extend([bi, mi].iter().filter(|i| !values.contains_key(i)));
            continue;
        };
        if m & (1 << 11) == 0 {
            continue;
        }
        let mask = m & addr_mask;
        // A contiguous mask covers 2^k bytes: the lowest set bit of the mask is the size.
        let size = if mask == 0 {
            None
        } else {
            let low = mask & mask.wrapping_neg();
            let contiguous = (mask | (low - 1)) == addr_mask | 0xfff;
            contiguous.then_some(low)
        };
        st.variable.push(VarRange {
            reg: n,
            base: b & addr_mask,
            size,
            mask,
            mem_type: b & 0xff,
        });
    }
    Some(st)
}

/// The MTRR state of every CPU of `s` that has MTRRcap, decoded with the snapshot's
/// physical address width (the `--phys-bits` override, else each CPU's CPUID).
pub fn cpu_states(s: &crate::snapshot::Snapshot) -> BTreeMap<u32, MtrrState> {
    let phys = s.mtrr.as_ref().and_then(|m| m.phys_bits);
    s.msr
        .as_ref()
        .map(|m| {
            m.cpus
                .iter()
                .filter_map(|(&cpu, v)| decode(&v.values, phys.or(v.phys_bits)).map(|st| (cpu, st)))
                .collect()
        })
        .unwrap_or_default()
}

/// One line of /proc/mtrr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcMtrrLine {
    pub reg: u32,
    pub base: u64,
    pub size: u64,
    pub count: u64,
    /// The kernel's type name: `uncachable`, `write-combining`, `write-through`,
    /// `write-protect`, `write-back`.
    pub type_name: String,
}

impl ProcMtrrLine {
    /// The type as the MTRR encoding (0 UC, 1 WC, 4 WT, 5 WP, 6 WB).
    pub fn mem_type(&self) -> Option<u64> {
        Some(match self.type_name.as_str() {
            "uncachable" => 0,
            "write-combining" => 1,
            "write-through" => 4,
            "write-protect" => 5,
            "write-back" => 6,
            _ => return None,
        })
    }
}

/// Parse /proc/mtrr: `regNN: base=0x… (  NMB), size= NMB, count=N: TYPE`, and the older
/// order `regNN: base=0x… (  NMB), size= NMB: TYPE, count=N`; sizes in KB, MB or GB.
/// Blank lines are skipped; any other line that does not fit is an error with its number.
pub fn parse_proc_mtrr(text: &str) -> Result<Vec<ProcMtrrLine>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        out.push(parse_line(line).map_err(|what| ParseError::at(i + 1, what))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<ProcMtrrLine, String> {
    let expected = "expected `regNN: base=0x… (…), size= NMB, count=N: TYPE`";
    let rest = line.strip_prefix("reg").ok_or(expected)?;
    let (reg, rest) = rest.split_once(':').ok_or(expected)?;
    let reg: u32 = reg
        .trim()
        .parse()
        .map_err(|_| format!("bad register number {reg:?}"))?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("base=").ok_or(expected)?;
    let (base_s, rest) = rest
        .split_once(|c: char| c.is_whitespace() || c == ',')
        .ok_or(expected)?;
    let base = crate::snapshot::parse_hex(base_s).ok_or_else(|| format!("bad base {base_s:?}"))?;
    // Skip the "(  1024MB)" that follows the base.
    let rest = match rest.trim_start().strip_prefix('(') {
        Some(r) => r.split_once(')').ok_or(expected)?.1,
        None => rest,
    };
    let rest = rest.trim_start().trim_start_matches(',').trim_start();
    let rest = rest.strip_prefix("size=").ok_or(expected)?.trim_start();
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (num, rest) = rest.split_at(digits_end);
    let num: u64 = num.parse().map_err(|_| "bad size".to_string())?;
    let (unit, rest) = if let Some(r) = rest.strip_prefix("GB") {
        (1u64 << 30, r)
    } else if let Some(r) = rest.strip_prefix("MB") {
        (1 << 20, r)
    } else if let Some(r) = rest.strip_prefix("KB") {
        (1 << 10, r)
    } else {
        return Err("size unit must be KB, MB or GB".into());
    };
    let size = num.checked_mul(unit).ok_or("size overflows")?;
    // Either ", count=N: TYPE" or ": TYPE, count=N".
    let rest = rest.trim();
    let (count, type_name) = if let Some(r) = rest.strip_prefix(',') {
        let r = r.trim().strip_prefix("count=").ok_or(expected)?;
        let (c, t) = r.split_once(':').ok_or(expected)?;
        (c.trim(), t.trim())
    } else if let Some(r) = rest.strip_prefix(':') {
        let (t, c) = r.split_once(',').ok_or(expected)?;
        let c = c.trim().strip_prefix("count=").ok_or(expected)?;
        (c.trim(), t.trim())
    } else {
        return Err(expected.into());
    };
    let count: u64 = count.parse().map_err(|_| format!("bad count {count:?}"))?;
    if type_name.is_empty() {
        return Err("missing memory type".into());
    }
    Ok(ProcMtrrLine {
        reg,
        base,
        size,
        count,
        type_name: type_name.to_string(),
    })
}

/// Compare the decoded variable ranges with /proc/mtrr; one line per disagreement.
pub fn cross_check(state: &MtrrState, proc_lines: &[ProcMtrrLine]) -> Vec<String> {
    let mut out = Vec::new();
    let by_reg: BTreeMap<u32, &VarRange> = state.variable.iter().map(|v| (v.reg, v)).collect();
    for l in proc_lines {
        match by_reg.get(&l.reg) {
            None => out.push(format!(
                "/proc/mtrr reg{:02} ({:#x}, {}, {}) has no valid PHYSBASE{}/PHYSMASK{} pair",
                l.reg,
                l.base,
                human_size(l.size),
                l.type_name,
                l.reg,
                l.reg
            )),
            Some(v) => {
                if v.base != l.base || v.size != Some(l.size) || Some(v.mem_type) != l.mem_type() {
                    out.push(format!(
                        "/proc/mtrr reg{:02} says {:#x} {} {} but the MSRs say {}",
                        l.reg,
                        l.base,
                        human_size(l.size),
                        l.type_name,
                        v.describe()
                    ));
                }
            }
        }
    }
    for v in &state.variable {
        if !proc_lines.iter().any(|l| l.reg == v.reg) {
            out.push(format!(
                "variable range {} ({}) is missing from /proc/mtrr",
                v.reg,
                v.describe()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the QEMU lab saw: MTRRcap 0x508, WB default, a WC range at 1 GiB for 256 MiB.
    fn lab_values() -> BTreeMap<u32, u64> {
        let mut v = BTreeMap::new();
        v.insert(MTRRCAP, 0x508);
        v.insert(MTRR_DEF_TYPE, 0xc06);
        for &(m, _, _) in &FIXED {
            v.insert(m, 0x0606060606060606);
        }
        for i in 0..16 {
            v.insert(PHYSBASE0 + i, 0);
        }
        v.insert(0x200, 0x80000000);
        v.insert(0x201, 0xff80000800);
        v.insert(0x202, 0x40000001);
        v.insert(0x203, 0xfff0000800);
        v
    }

    #[test]
    fn decodes_variable_ranges_with_phys_bits() {
        let st = decode(&lab_values(), Some(40)).unwrap();
        assert_eq!(st.vcnt, 8);
        assert!(st.fixed_supported && st.wc_supported && st.enabled && st.fixed_enabled);
        assert_eq!(st.default_type, 6);
        assert_eq!(st.fixed.len(), 88);
        assert_eq!(st.variable.len(), 2);
        let wc = &st.variable[1];
        assert_eq!(
            (wc.reg, wc.base, wc.size, wc.mem_type),
            (1, 0x40000000, Some(0x10000000), 1)
        );
        assert_eq!(wc.describe(), "0x40000000-0x4fffffff (256MB) WC");
        assert_eq!(st.variable[0].describe(), "0x80000000-0xffffffff (2GB) UC");
    }

    #[test]
    fn parses_both_proc_mtrr_orders() {
        let text = "reg00: base=0x080000000 ( 2048MB), size= 2048MB, count=1: uncachable\n\
                    reg01: base=0x040000000 ( 1024MB), size=  256MB, count=1: write-combining\n\
                    reg02: base=0x000f0000 (   0MB), size=  64KB: write-back, count=1\n";
        let l = parse_proc_mtrr(text).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].base, 0x40000000);
        assert_eq!(l[1].size, 256 << 20);
        assert_eq!(l[1].mem_type(), Some(1));
        assert_eq!(l[2].size, 64 << 10);
        assert_eq!(l[2].type_name, "write-back");
        let e = parse_proc_mtrr("reg00: base=0x0\ngarbage\n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn cross_check_finds_disagreements() {
        let st = decode(&lab_values(), Some(40)).unwrap();
        let good = parse_proc_mtrr(
            "reg00: base=0x080000000 ( 2048MB), size= 2048MB, count=1: uncachable\n\
             reg01: base=0x040000000 ( 1024MB), size=  256MB, count=1: write-combining\n",
        )
        .unwrap();
        assert!(cross_check(&st, &good).is_empty());
        let bad = parse_proc_mtrr(
            "reg00: base=0x080000000 ( 2048MB), size= 2048MB, count=1: uncachable\n",
        )
        .unwrap();
        let d = cross_check(&st, &bad);
        assert_eq!(d.len(), 1);
        assert!(d[0].contains("variable range 1"), "{d:?}");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(256 << 20), "256MB");
        assert_eq!(human_size(1 << 32), "4GB");
        assert_eq!(human_size(4096), "4KB");
    }
}
