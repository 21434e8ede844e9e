//! The embedded register database (assets/msrs.toml) and owner table (assets/owners.toml):
//! they load, agree with each other, and say what the kernel sources say.

use std::collections::{BTreeSet, HashMap};

use regdrift::decode::Field;
use regdrift::owners::{OwnerDb, Restores};
use regdrift::regdb::{RegDb, Volatility};

fn db() -> &'static RegDb {
    RegDb::embedded()
}

fn owners() -> &'static OwnerDb {
    OwnerDb::embedded()
}

fn field<'a>(fields: &'a [Field], name: &str) -> &'a Field {
    fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

fn drivers(index: u32, changed: u64) -> Vec<String> {
    owners()
        .for_msr(index, changed)
        .iter()
        .map(|o| o.driver.clone())
        .collect()
}

#[test]
fn embedded_assets_load() {
    assert!(db().known_msrs().count() > 1200);
    assert!(owners().msr_indices().len() > 100);
    assert!(owners().entries().count() > 100);
}

#[test]
fn every_x86_crate_constant_is_named() {
    // A sample across the x86 crate's list, including indices where it has several names.
    for index in [
        x86::msr::IA32_TIME_STAMP_COUNTER,
        x86::msr::IA32_APIC_BASE,
        x86::msr::IA32_FEATURE_CONTROL,
        x86::msr::IA32_MISC_ENABLE,
        x86::msr::IA32_PAT,
        x86::msr::IA32_EFER,
        x86::msr::IA32_KERNEL_GSBASE,
        x86::msr::MSR_POWER_CTL,
        x86::msr::IA32_DEBUGCTL,
        x86::msr::IA32_MC4_CTL,
        x86::msr::MSR_C5_PMON_BOX_CTRL,
        x86::msr::MSR_EMON_L3_GL_CTL,
        x86::msr::IA32_X2APIC_SELF_IPI,
    ] {
        assert!(db().msr(index).is_some(), "{index:#x} is not named");
    }
}

#[test]
fn names_are_kernel_names_with_aliases_for_the_others() {
    let misc = db().msr(0x1a0).unwrap();
    assert_eq!(misc.name, "MSR_IA32_MISC_ENABLE");
    assert!(misc.aliases.iter().any(|a| a == "IA32_MISC_ENABLE"));
    assert_eq!(db().msr_name(0x1d9), "MSR_IA32_DEBUGCTLMSR");
    assert_eq!(
        db().msr_by_name("IA32_DEBUGCTL").map(|d| d.index),
        Some(0x1d9)
    );
    assert_eq!(db().msr_name(0x407), "MSR_IA32_MC1_MISC");
    assert_eq!(db().msr_name(0x202), "IA32_MTRR_PHYSBASE1");
    assert_eq!(db().msr_name(0x203), "IA32_MTRR_PHYSMASK1");
    // Names (and aliases) lead to one register each.
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for d in db().described_msrs() {
        if let Some(other) = seen.insert(d.name.as_str(), d.index) {
            panic!("{} names both {other:#x} and {:#x}", d.name, d.index);
        }
        assert!(!d.description.is_empty(), "{} has no description", d.name);
    }
}

#[test]
fn the_msrs_the_x86_crate_lacks_are_there() {
    for index in [
        0x770, 0x771, 0x772, 0x773, 0x774, 0x775, 0x776, 0x777, 0x48, 0x49, 0x10a, 0x10b, 0x122,
        0x123, 0x33, 0xcf, 0xe2, 0x1fc, 0x1b0, 0xc0010015, 0xc0010010, 0xc001001a, 0xc001001d,
        0xc0011029, 0xc0011020, 0xc0010114, 0xc0010117, 0xc0010061, 0xc0010062, 0xc0010063,
        0xc0010064, 0xc001006b, 0xc0010000, 0xc0010007, 0xc0010200, 0xc001020b, 0xc81, 0xc8f,
        0xc90, 0xd10, 0xd50, 0x606, 0x610, 0x611, 0x614, 0x638, 0x639, 0x640, 0x641, 0x64d,
        0xc0010299, 0xc001029a, 0xc001029b, 0xfe, 0x2ff, 0x200, 0x21f, 0x250, 0x258, 0x259, 0x268,
        0x26f, 0x179, 0x17a, 0x17b, 0x400, 0x47f, 0x280, 0x29f, 0x186, 0x18d, 0xc1, 0xc8, 0x309,
        0x30c, 0x38d, 0x38e, 0x38f, 0x390, 0x1d9, 0x19b, 0x19c, 0x1b1, 0x1b2, 0x1a2, 0x198, 0x199,
        0x19a, 0x1a0, 0x3a, 0x1b, 0x802, 0x80f, 0x830, 0x83f, 0x277, 0xc0000080, 0xc0000081,
        0xc0000084, 0xc0000100, 0xc0000102, 0xc0000103, 0x174, 0x176, 0x10, 0x3b, 0x6e0, 0xe8,
        0xe7, 0x4f, 0x4e, 0xce, 0x34, 0x6a0, 0x6a2, 0x6a4, 0x6a7, 0x6a8, 0xda0, 0xe1, 0xc00102b0,
        0xc00102b3, 0xc00000e7, 0xc00000e8, 0xc00000e9,
    ] {
        assert!(db().msr(index).is_some(), "{index:#x} is missing");
    }
}

#[test]
fn fields_lie_within_64_bits_and_do_not_overlap() {
    let mut fields = 0;
    for d in db().described_msrs() {
        let mut seen = 0u64;
        for f in &d.fields {
            fields += 1;
            assert_ne!(f.mask, 0, "{}.{} is empty", d.name, f.name);
            assert_eq!(
                seen & f.mask,
                0,
                "{}.{} ({:#x}) overlaps another field",
                d.name,
                f.name,
                f.mask
            );
            seen |= f.mask;
            let width = f.mask.count_ones();
            for &value in f.values.keys() {
                assert!(
                    width == 64 || value >> width == 0,
                    "{}.{}: value {value} does not fit {width} bits",
                    d.name,
                    f.name
                );
            }
        }
        let mut names = BTreeSet::new();
        for f in &d.fields {
            assert!(names.insert(&f.name), "{}: field {} twice", d.name, f.name);
        }
    }
    assert!(fields > 400, "only {fields} fields");
}

#[test]
fn the_required_registers_have_named_fields() {
    for index in [
        0x1b, 0x3a, 0x1a0, 0x1fc, 0xe2, 0x199, 0x1b0, 0x277, 0xc0000080, 0xfe, 0x2ff, 0x200, 0x201,
        0x250, 0x258, 0x259, 0x268, 0x26f, 0x38f, 0x186, 0x18d, 0x38d, 0x1d9, 0x48, 0x122,
        0xc0010015, 0xc0010010, 0x19b, 0x19c, 0x770, 0x774, 0x33, 0x17b, 0x400, 0x47c,
    ] {
        let d = db().msr(index).unwrap();
        assert!(
            !d.fields.is_empty(),
            "{} ({index:#x}) has no fields",
            d.name
        );
    }
    let masks = |index: u32| -> Vec<(String, u64)> {
        db().msr(index)
            .unwrap()
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.mask))
            .collect()
    };
    let has = |index: u32, name: &str, mask: u64| {
        assert!(
            masks(index).contains(&(name.to_string(), mask)),
            "{index:#x} lacks {name} = {mask:#x}: {:?}",
            masks(index)
        );
    };
    has(0x1b, "BSP", 1 << 8);
    has(0x1b, "EXTD", 1 << 10);
    has(0x1b, "EN", 1 << 11);
    has(0x3a, "LOCK", 1);
    has(0x3a, "LMCE_ON", 1 << 20);
    has(0x1a0, "FAST_STRING", 1);
    has(0x1a0, "TM1", 1 << 3);
    has(0x1a0, "TURBO_DISABLE", 1 << 38);
    has(0x1a0, "XD_DISABLE", 1 << 34);
    has(0x1fc, "C1E_PROMOTION", 1 << 1);
    has(0xe2, "PKG_CST_LIMIT", 0xf);
    has(0xe2, "IO_MWAIT_REDIRECTION", 1 << 10);
    has(0xe2, "CFG_LOCK", 1 << 15);
    has(0xe2, "C3_AUTO_DEMOTE", 1 << 25);
    has(0xe2, "C1_AUTO_DEMOTE", 1 << 26);
    has(0xe2, "C3_AUTO_UNDEMOTE", 1 << 27);
    has(0xe2, "C1_AUTO_UNDEMOTE", 1 << 28);
    has(0x199, "TARGET_RATIO", 0xff00);
    has(0x199, "IDA_DISENGAGE", 1 << 32);
    has(0x1b0, "EPB", 0xf);
    has(0x2ff, "TYPE", 0xff);
    has(0x2ff, "FE", 1 << 10);
    has(0x2ff, "E", 1 << 11);
    has(0x201, "VALID", 1 << 11);
    has(0x201, "PHYSMASK", 0x000f_ffff_ffff_f000);
    has(0x200, "PHYSBASE", 0x000f_ffff_ffff_f000);
    has(0x38f, "PMC7_EN", 1 << 7);
    has(0x38f, "FIXED_CTR3_EN", 1 << 35);
    has(0x18d, "EN", 1 << 22);
    has(0x18d, "CMASK", 0xff00_0000);
    has(0x38d, "CTR2_PMI", 1 << 11);
    has(0x1d9, "FREEZE_WHILE_SMM", 1 << 14);
    has(0x48, "BHI_DIS_S", 1 << 10);
    has(0x122, "TSX_CPUID_CLEAR", 1 << 1);
    has(0xc0010015, "CPB_DIS", 1 << 25);
    has(0xc0010015, "TSC_FREQ_SEL", 1 << 24);
    has(0xc0010010, "SNP_EN", 1 << 24);
    has(0x19b, "THRESHOLD2", 0x7f_0000);
    has(0x19b, "PLN_INT_EN", 1 << 24);
    has(0x770, "HWP_ENABLE", 1);
    has(0x774, "EPP", 0xff00_0000);
    has(0x774, "ACTIVITY_WINDOW", 0x3ff_0000_0000);
    has(0x774, "PACKAGE_CONTROL", 1 << 42);
    has(0x33, "SPLIT_LOCK_DETECT", 1 << 29);
    has(0x280, "CMCI_EN", 1 << 30);
    has(0x26f, "RANGE_FF000", 0xff00_0000_0000_0000);
}

#[test]
fn decode_pat() {
    let f = db().decode_msr(0x277, 0x0007_0406_0007_0406);
    let types: Vec<(&str, Option<&str>)> = f
        .iter()
        .map(|f| (f.name.as_str(), f.meaning.as_deref()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("PA0", Some("WB")),
            ("PA1", Some("WT")),
            ("PA2", Some("UC-")),
            ("PA3", Some("UC")),
            ("PA4", Some("WB")),
            ("PA5", Some("WT")),
            ("PA6", Some("UC-")),
            ("PA7", Some("UC")),
        ]
    );
    // PA1 = WC in Linux's own table.
    let f = db().decode_msr(0x277, 0x0007_0406_0007_0106);
    assert_eq!(field(&f, "PA1").meaning.as_deref(), Some("WC"));
}

#[test]
fn decode_efer() {
    let f = db().decode_msr(0xc000_0080, 0xd01);
    for set in ["SCE", "LME", "LMA", "NXE"] {
        assert_eq!(field(&f, set).value, 1, "{set}");
    }
    for clear in ["SVME", "LMSLE", "FFXSR", "TCE", "AUTOIBRS"] {
        assert_eq!(field(&f, clear).value, 0, "{clear}");
    }
}

#[test]
fn decode_misc_enable() {
    let f = db().decode_msr(0x1a0, 0x44_0001);
    assert_eq!(field(&f, "LIMIT_CPUID").value, 1);
    assert_eq!(field(&f, "MWAIT").value, 1);
    assert_eq!(field(&f, "FAST_STRING").value, 1);
    assert_eq!(field(&f, "TURBO_DISABLE").value, 0);
    assert_eq!(field(&f, "LIMIT_CPUID").mask, 1 << 22);
}

#[test]
fn decode_pkg_cst_config_control_and_epb() {
    let f = db().decode_msr(0xe2, (1 << 25) | (1 << 26) | (1 << 15) | 8);
    assert_eq!(field(&f, "C3_AUTO_DEMOTE").value, 1);
    assert_eq!(field(&f, "C1_AUTO_DEMOTE").value, 1);
    assert_eq!(field(&f, "CFG_LOCK").value, 1);
    assert_eq!(field(&f, "PKG_CST_LIMIT").value, 8);
    assert_eq!(field(&f, "C1_AUTO_UNDEMOTE").value, 0);
    let epb = |v| {
        db().decode_msr(0x1b0, v)
            .into_iter()
            .next()
            .unwrap()
            .meaning
    };
    assert_eq!(epb(0).as_deref(), Some("performance"));
    assert_eq!(epb(4).as_deref(), Some("balance-performance"));
    assert_eq!(epb(6).as_deref(), Some("normal (default)"));
    assert_eq!(epb(8).as_deref(), Some("balance-power"));
    assert_eq!(epb(15).as_deref(), Some("powersave"));
    assert_eq!(epb(7), None);
}

#[test]
fn decode_mtrrs() {
    let f = db().decode_msr(0xfe, 0x1d0a);
    assert_eq!(field(&f, "VCNT").value, 10);
    assert_eq!(field(&f, "FIX").value, 1);
    assert_eq!(field(&f, "WC").value, 1);
    assert_eq!(field(&f, "SMRR").value, 1);
    assert_eq!(field(&f, "PRMRR").value, 1);
    let f = db().decode_msr(0x2ff, 0xc00);
    assert_eq!(field(&f, "TYPE").meaning.as_deref(), Some("UC"));
    assert_eq!(field(&f, "E").value, 1);
    let f = db().decode_msr(0x204, 0x8000_0006);
    assert_eq!(field(&f, "TYPE").meaning.as_deref(), Some("WB"));
    assert_eq!(field(&f, "PHYSBASE").value, 0x80000);
    let f = db().decode_msr(0x259, 0x0101_0101_0000_0000);
    assert_eq!(field(&f, "RANGE_A0000").meaning.as_deref(), Some("UC"));
    assert_eq!(field(&f, "RANGE_B0000").meaning.as_deref(), Some("WC"));
    assert_eq!(field(&f, "RANGE_BC000").meaning.as_deref(), Some("WC"));
}

#[test]
fn volatile_registers_are_marked() {
    let counters = [
        0x10, 0xe7, 0xe8, 0xc1, 0xc8, 0x4c1, 0x309, 0x30c, 0x38e, 0x611, 0x619, 0x639, 0x641,
        0x64d, 0xc001029a, 0xc001029b, 0x34, 0x198, 0xc0010004, 0xc0010007, 0xc0010201, 0xc001020b,
        0xc00000e7, 0xc00000e8, 0xc00000e9, 0x401, 0x47d, 0x839, 0x810, 0xc8e,
    ];
    for index in counters {
        let d = db().msr(index).unwrap();
        assert_eq!(
            d.volatile,
            Some(Volatility::Counter),
            "{} ({index:#x})",
            d.name
        );
        assert_eq!(db().volatile_mask(index), u64::MAX);
    }
    let per_boot = [
        0xc0000082, 0xc0000083, 0x175, 0x176, 0xc0000100, 0xc0000101, 0xc0000102, 0x6e0, 0x6a4,
        0x6a7, 0x6a8, 0x838, 0xc0010117,
    ];
    for index in per_boot {
        let d = db().msr(index).unwrap();
        assert_eq!(
            d.volatile,
            Some(Volatility::PerBoot),
            "{} ({index:#x})",
            d.name
        );
    }
    // Fixed by the kernel, stable across boots: not volatile.
    for index in [
        0xc0000081, 0xc0000084, 0x174, 0xc0000103, 0x1a0, 0x277, 0xe2, 0x1fc,
    ] {
        assert_eq!(db().volatile_mask(index), 0, "{index:#x}");
    }
    // The readout bits of THERM_STATUS and PACKAGE_THERM_STATUS, not their reserved bits.
    for index in [0x19c, 0x1b1] {
        let d = db().msr(index).unwrap();
        assert_eq!(d.volatile, None);
        let mask = d.volatile_mask();
        assert_eq!(mask & 0x7f_0000, 0x7f_0000, "{index:#x} readout");
        assert_eq!(mask & 0x3, 0x3, "{index:#x} status and log");
        assert_eq!(mask & (1 << 63), 0, "{index:#x} reserved bit");
        assert_eq!(d.volatility_of(1 << 20), Some(Volatility::Counter));
    }
    assert_eq!(db().volatile_mask(0x19c) & (1 << 31), 1 << 31);
}

#[test]
fn never_read_list_is_kept_out_of_the_known_set() {
    for index in [0x1f4, 0x1f5, 0x2f4, 0x2f5] {
        let nr = db().never_read(index).unwrap();
        assert!(nr.reason.contains("chipsec issue #887"), "{}", nr.reason);
        // Described (a name for imported values), never read.
        assert!(db().msr(index).is_some());
    }
    assert!(db().never_read(0x1f3).is_none());
    assert!(db().never_read(0x1f6).is_none());
    for d in db().known_msrs() {
        assert!(
            db().never_read(d.index).is_none(),
            "{} ({:#x}) is in the known set",
            d.name,
            d.index
        );
    }
    let known = db().known_msrs().count();
    assert_eq!(db().described_msrs().count(), known + 4);
}

#[test]
fn every_owned_msr_is_named() {
    for index in owners().msr_indices() {
        assert!(
            db().msr(index).is_some(),
            "owners.toml names MSR {index:#x}, msrs.toml does not"
        );
        assert!(
            db().never_read(index).is_none(),
            "owners.toml names never-read MSR {index:#x}"
        );
    }
}

#[test]
fn owner_masks_lie_within_their_registers() {
    for (owner, msrs, pci, mask) in owners().entries() {
        assert_ne!(mask, 0, "{}: empty mask", owner.driver);
        assert!(!owner.source.is_empty() && !owner.function.is_empty());
        assert!(
            !owner.note.is_empty(),
            "{} ({}) has no note",
            owner.driver,
            owner.function
        );
        if mask != u64::MAX {
            for index in &msrs {
                let d = db().msr(*index).unwrap();
                if d.fields.is_empty() {
                    continue;
                }
                let fields = d.fields.iter().fold(0, |m, f| m | f.mask);
                assert_eq!(
                    mask & !fields,
                    0,
                    "{} writes bits {:#x} of {} that no field names",
                    owner.driver,
                    mask & !fields,
                    d.name
                );
            }
            if !pci.is_empty() {
                assert!(
                    mask <= 0xffff_ffff,
                    "{}: PCI mask past 32 bits",
                    owner.driver
                );
            }
        }
    }
}

#[test]
fn owners_from_the_issue_table() {
    assert_eq!(drivers(0x1fc, 0x2), vec!["intel_idle"]);
    assert_eq!(drivers(0xe2, 1 << 25), vec!["intel_idle"]);
    assert_eq!(drivers(0xe2, 1 << 26).len(), 2);
    assert!(drivers(0xe2, 1 << 28).iter().all(|d| d == "intel_idle"));
    assert!(owners()
        .for_msr(0x1fc, 0x2)
        .iter()
        .all(|o| o.restores == Restores::No));
    assert!(drivers(0x202, 1 << 11)
        .iter()
        .all(|d| d.starts_with("MTRR")));
    assert!(drivers(0x202, 1 << 11).contains(&"MTRR".to_string()));
    assert_eq!(drivers(0x2ff, 1 << 11), vec!["MTRR"]);
    for index in [0x770, 0x773, 0x774, 0x199, 0x1b0] {
        assert!(
            drivers(index, 1).contains(&"intel_pstate".to_string()),
            "{index:#x}: {:?}",
            drivers(index, 1)
        );
    }
    assert!(drivers(0x1b0, 0x6).contains(&"intel_epb".to_string()));
    assert!(drivers(0x199, 0x100).contains(&"acpi-cpufreq".to_string()));
    assert_eq!(drivers(0xc0010062, 1), vec!["acpi-cpufreq"]);
    assert_eq!(drivers(0x1a0, 1 << 38), vec!["acpi-cpufreq"]);
    assert_eq!(drivers(0xc0010015, 1 << 25), vec!["acpi-cpufreq"]);
    assert_eq!(drivers(0x277, 1), vec!["PAT"]);
    assert_eq!(owners().for_msr(0x277, 1)[0].restores, Restores::Rewritten);
    for index in [0x38f, 0x38d, 0x309, 0x30c, 0x186, 0x18d] {
        assert!(
            drivers(index, 1).iter().any(|d| d.starts_with("perf")),
            "{index:#x}"
        );
    }
    assert_eq!(drivers(0xc0000080, 1 << 12), vec!["KVM (SVM)"]);
    assert_eq!(drivers(0xc0010117, 1), vec!["KVM (SVM)"]);
    assert_eq!(drivers(0xc0000104, 1), vec!["KVM (SVM)"]);
    for index in [0xc8f, 0xc90, 0xc9f, 0xd10, 0xd50, 0xc81] {
        assert_eq!(drivers(index, 1), vec!["resctrl"], "{index:#x}");
    }
    assert_eq!(drivers(0x19b, 1), vec!["thermal"]);
    assert!(drivers(0x1b2, 1).contains(&"thermal".to_string()));
    assert_eq!(drivers(0x1a0, 1 << 3), vec!["thermal"]);
    assert_eq!(drivers(0x17b, 1), vec!["MCE"]);
    assert_eq!(drivers(0x47c, 1), vec!["MCE"]);
    assert_eq!(drivers(0x29f, 1 << 30), vec!["MCE (Intel CMCI)"]);
    assert_eq!(drivers(0x1b, 1 << 10), vec!["APIC"]);
    assert_eq!(owners().for_msr(0x1b, 1 << 10)[0].restores, Restores::No);
    assert_eq!(drivers(0x3b, 1), vec!["TSC"]);
    assert_eq!(drivers(0x6e0, 1), vec!["APIC timer"]);
    assert!(drivers(0x48, 1).contains(&"mitigations".to_string()));
    assert_eq!(drivers(0x122, 3), vec!["TSX"]);
    assert!(!drivers(0x123, 1).is_empty());
    assert_eq!(drivers(0x33, 1 << 29), vec!["split lock detection"]);
    assert_eq!(drivers(0xc0011029, 2), vec!["AMD init"]);
    assert!(drivers(0xc0010010, 1 << 19).contains(&"MTRR".to_string()));
}

#[test]
fn kexec_facts_in_the_owner_table() {
    // SPEC_CTRL mitigation bits are cleared and re-selected by the next kernel (bugs.c).
    let spec = owners().for_msr(0x48, 1);
    assert!(spec
        .iter()
        .any(|o| o.restores == Restores::Rewritten && o.note.contains("kexec")));
    // HWP cannot be turned off once on.
    assert_eq!(owners().for_msr(0x770, 1)[0].restores, Restores::No);
    // CET is cleared by machine_kexec on one CPU only.
    assert_eq!(owners().for_msr(0x6a2, 1)[0].restores, Restores::Partial);
    // KVM's syscore shutdown disables SVM.
    assert_eq!(
        owners().for_msr(0xc0000080, 1 << 12)[0].restores,
        Restores::Yes
    );
}

const PCI_KEYS: [&str; 32] = [
    "header.command",
    "header.cache_line_size",
    "header.latency_timer",
    "header.interrupt_line",
    "header.bar",
    "header.bridge_control",
    "pm.pmcsr",
    "msi.control",
    "msix.control",
    "msi.address",
    "msi.data",
    "msi.mask",
    "pcie.devctl",
    "pcie.lnkctl",
    "pcie.devctl2",
    "pcie.lnkctl2",
    "pcie.sltctl",
    "pcie.rootctl",
    "aer.uncor_mask",
    "aer.uncor_severity",
    "aer.cor_mask",
    "aer.cap_control",
    "aer.root_command",
    "sriov.ctrl",
    "sriov.num_vfs",
    "acs.ctrl",
    "ari.ctrl",
    "ltr.max_snoop",
    "ltr.max_nosnoop",
    "l1ss.ctl1",
    "l1ss.ctl2",
    "device.specific",
];

#[test]
fn every_pci_key_has_an_owner_and_no_other_key_is_used() {
    let keys: BTreeSet<&str> = owners().pci_keys().into_iter().collect();
    let expected: BTreeSet<&str> = PCI_KEYS.into_iter().collect();
    assert_eq!(keys, expected);
}

#[test]
fn pci_owners() {
    let one = |key: &str, changed: u64| -> (String, Restores) {
        let o = owners().for_pci(key, changed);
        assert_eq!(o.len(), 1, "{key} {changed:#x}: {o:?}");
        (o[0].driver.clone(), o[0].restores)
    };
    assert_eq!(one("pcie.lnkctl", 0x3), ("ASPM".into(), Restores::No));
    assert_eq!(one("msi.control", 1).0, "MSI core");
    assert_eq!(one("msix.control", 0x8000).0, "MSI core");
    assert_eq!(
        one("header.command", 0x4),
        ("PCI core".into(), Restores::Partial)
    );
    for bits in [0x1, 0x2, 0x400, 0x10, 0x100] {
        assert_eq!(one("header.command", bits).1, Restores::No, "{bits:#x}");
    }
    assert_eq!(one("pm.pmcsr", 0x3).1, Restores::Partial);
    assert_eq!(one("pcie.devctl2", 0x400).0, "PCI core");
    assert_eq!(one("pcie.sltctl", 0x20).0, "pciehp");
    assert_eq!(one("sriov.ctrl", 0x1).0, "SR-IOV");
    assert_eq!(one("device.specific", 0xff).0, "(bound driver)");
    assert_eq!(one("aer.root_command", 0x7).0, "AER");
    assert_eq!(one("l1ss.ctl1", 0xf).0, "ASPM");
}
