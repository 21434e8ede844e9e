//! Machines for tests: fixture roots with several CPUs, MTRRs, /proc files and PCI
//! devices, in a cold-boot state and a state with planted divergences.
#![allow(dead_code)]

use std::path::Path;

use regdrift::fixture::FixtureRoot;
use regdrift::snapshot::Bdf;

pub const CPUS: u32 = 4;

/// A cold-boot MSR set for one CPU (values as a real Intel laptop might hold). No two
/// are closer than 8 apart: each takes 8 bytes of the regular file that stands for the
/// MSR device.
pub fn cold_msrs(cpu: u32, boot: u64) -> Vec<(u32, u64)> {
    let mut v = vec![
        (0x10, 0x1234_5678 * (boot + 1) + cpu as u64 * 77), // TSC: counts
        (0x1b, if cpu == 0 { 0xfee0_0900 } else { 0xfee0_0800 }), // APIC_BASE (BSP on cpu 0)
        (0xe2, 0x1e00_0008),                                // PKG_CST_CONFIG_CONTROL
        (0x1a0, 0x0085_0089),                               // MISC_ENABLE
        (0x1b0, 0x6),                                       // ENERGY_PERF_BIAS
        (0x1fc, 0x2404_005f),                               // POWER_CTL, C1E on
        (0x277, 0x0007_0406_0007_0406),                     // PAT
        (0x38f, 0x0),                                       // PERF_GLOBAL_CTRL
        (0x176, 0xffff_ffff_8100_0000 + boot * 0x20_0000),  // SYSENTER_EIP (KASLR)
        (0xc000_0082, 0xffff_ffff_8180_0000 + boot * 0x20_0000), // LSTAR (KASLR)
        // MTRRs: no variable ranges and no fixed ranges (adjacent MSRs cannot hold
        // independent values in a regular file; see regdrift::fixture), enabled, WB.
        (0xfe, 0x400),
        (0x2ff, 0x806),
    ];
    v.sort_unstable();
    v
}

pub const PROC_MTRR_COLD: &str = "";
pub const PROC_MTRR_PLANTED: &str =
    "reg00: base=0x040000000 ( 1024MB), size=  256MB, count=1: write-combining\n";

/// A small PCI device: a type-0 header with a PM capability at 0x40 and MSI at 0x50.
pub fn simple_device(vendor: u16, device: u16, class: u32) -> Vec<u8> {
    let mut c = vec![0u8; 256];
    c[0..2].copy_from_slice(&vendor.to_le_bytes());
    c[2..4].copy_from_slice(&device.to_le_bytes());
    c[4] = 0x06; // Mem + BusMaster
    c[6] = 0x10; // capabilities list
    c[8] = 0x01;
    c[9..12].copy_from_slice(&class.to_le_bytes()[..3]);
    c[0x0c] = 0x00;
    c[0x34] = 0x40;
    c[0x3c] = 0x0b;
    c[0x3d] = 0x01;
    // PM capability
    c[0x40] = 0x01;
    c[0x41] = 0x50;
    c[0x42] = 0x03;
    c[0x43] = 0xc8;
    // MSI capability
    c[0x50] = 0x05;
    c[0x51] = 0x00;
    c[0x52] = 0x80; // 64-bit
    c
}

/// The machine after a cold boot; `boot` varies the per-boot and counter values.
pub fn cold_machine(root: &Path, boot: u64) -> FixtureRoot {
    let f = FixtureRoot::new(root).unwrap();
    for cpu in 0..CPUS {
        f.msrs(cpu, &cold_msrs(cpu, boot)).unwrap();
        f.cpuid(cpu, 0x8000_0008, [0x3027, 0, 0, 0]).unwrap(); // 39 physical bits
    }
    f.cpus_online(&format!("0-{}", CPUS - 1)).unwrap();
    f.proc_mtrr(PROC_MTRR_COLD).unwrap();
    f.meta(
        "6.1.0-28-amd64",
        "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet",
        &format!("1f2e3d4c-0000-4000-8000-00000000000{boot}"),
        "testbox",
    )
    .unwrap();
    f.modules(&["msr", "e1000e", "ahci", "intel_idle"]).unwrap();
    let devs: [(&str, u16, u16, u32, Option<&str>); 3] = [
        ("0000:00:00.0", 0x8086, 0x9b61, 0x060000, None),
        ("0000:00:17.0", 0x8086, 0x02d3, 0x010601, Some("ahci")),
        ("0000:00:1f.6", 0x8086, 0x0d4f, 0x020000, Some("e1000e")),
    ];
    for (bdf, v, d, class, drv) in devs {
        let bdf: Bdf = bdf.parse().unwrap();
        f.pci_device(bdf, &simple_device(v, d, class), drv).unwrap();
    }
    f
}

/// The cold machine with planted stale state, as a buggy driver would leave it:
/// C1E promotion cleared on every CPU, MISC_ENABLE bit 22 set on cpu 2 only, a WC entry
/// in /proc/mtrr (the MTRR MSRs themselves are tested through an injected reader), MSI
/// enabled and INTx disabled on the NIC, the SATA controller in D3hot.
pub fn planted_machine(root: &Path, boot: u64) -> FixtureRoot {
    let f = cold_machine(root, boot);
    for cpu in 0..CPUS {
        f.msrs(cpu, &[(0x1fc, 0x2404_005d)]).unwrap();
    }
    f.msrs(2, &[(0x1a0, 0x0085_0089 | 1 << 22)]).unwrap();
    f.proc_mtrr(PROC_MTRR_PLANTED).unwrap();
    let nic: Bdf = "0000:00:1f.6".parse().unwrap();
    let mut c = simple_device(0x8086, 0x0d4f, 0x020000);
    c[0x05] |= 0x04; // INTx disable
    c[0x52] |= 0x01; // MSI enable
    f.pci_device(nic, &c, Some("e1000e")).unwrap();
    let sata: Bdf = "0000:00:17.0".parse().unwrap();
    let mut c = simple_device(0x8086, 0x02d3, 0x010601);
    c[0x44] = 0x03; // D3hot
    f.pci_device(sata, &c, Some("ahci")).unwrap();
    f
}
