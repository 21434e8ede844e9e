//! A synthetic machine that changes over time, for tests and benchmarks of recordings and
//! replay: N CPUs × M MSRs with plausible values (most equal across CPUs, many zero or
//! small), D PCI devices with 4 KiB config spaces holding a header and a capability chain,
//! and a step function that advances it like a live machine sampled at an interval: the
//! time-stamp counter, MPERF and APERF tick on every CPU at every step; now and then a
//! real register changes (a bit of an MSR on one CPU, a device's command register).
//! Deterministic for a given seed.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use crate::snapshot::{
    Bdf, CpuMsrs, MsrSection, MtrrSection, Origin, PciDevice, PciSection, Snapshot,
};

pub const TSC: u32 = 0x10;
pub const MPERF: u32 = 0xe7;
pub const APERF: u32 = 0xe8;

/// MSRs of a typical Intel core, in the order a machine description lists them; the rest
/// of a larger set is filled from the machine-check banks and the RAPL/uncore range.
const KNOWN: &[u32] = &[
    0x10, 0x1b, 0x3a, 0x8b, 0xce, 0xe2, 0xe7, 0xe8, 0xfe, 0x174, 0x175, 0x176, 0x179, 0x17a, 0x198,
    0x199, 0x19a, 0x19b, 0x1a0, 0x1a2, 0x1aa, 0x1ad, 0x1b0, 0x1b1, 0x1b2, 0x1c9, 0x1d9, 0x1fc,
    0x277, 0x2ff, 0x38d, 0x38e, 0x38f, 0x390, 0xc0000080, 0xc0000081, 0xc0000082, 0xc0000083,
    0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103,
];

/// Parameters of a synthetic machine.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub cpus: u32,
    pub msrs_per_cpu: usize,
    pub devices: usize,
    /// Time between steps.
    pub interval: Duration,
    /// A real (non-counter) MSR changes every this many steps (0: never).
    pub msr_change_every: u64,
    /// A device's config space changes every this many steps (0: never).
    pub pci_change_every: u64,
    pub seed: u64,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            cpus: 4,
            msrs_per_cpu: 60,
            devices: 6,
            interval: Duration::from_secs(1),
            msr_change_every: 50,
            pci_change_every: 300,
            seed: 1,
        }
    }
}

/// A machine whose state advances one sample at a time.
#[derive(Clone, Debug)]
pub struct Machine {
    spec: Spec,
    snap: Snapshot,
    rng: u64,
    step: u64,
    indices: Vec<u32>,
    bdfs: Vec<Bdf>,
}

/// The MSR indices of a machine with `n` MSRs per CPU.
pub fn msr_indices(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = KNOWN.to_vec();
    v.extend(0x200..0x214); // variable MTRRs
    v.extend([0x250, 0x258, 0x259]);
    v.extend(0x268..0x270); // fixed MTRRs
    v.extend(0x400..0x500); // machine-check banks
    v.extend(0x600..0x700); // RAPL, uncore
    v.extend(0xd90..0x1000);
    v.truncate(n);
    v.sort_unstable();
    v
}

impl Machine {
    pub fn new(spec: Spec) -> Machine {
        let mut m = Machine {
            spec,
            snap: Snapshot::new(Origin::Synthetic {
                generator: "record::synth".into(),
            }),
            rng: spec.seed.max(1),
            step: 0,
            indices: msr_indices(spec.msrs_per_cpu),
            bdfs: Vec::new(),
        };
        m.build();
        m
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn build(&mut self) {
        let meta = &mut self.snap.meta;
        meta.hostname = Some("synth-host".into());
        meta.kernel_release = Some("6.8.0-synthetic".into());
        meta.cmdline = Some("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet".into());
        meta.boot_id = Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into());
        meta.modules = Some(
            [
                "ahci",
                "e1000e",
                "i915",
                "intel_rapl_msr",
                "kvm",
                "kvm_intel",
                "msr",
                "nvme",
                "xhci_pci",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        );
        meta.cpus_online = Some(format!("0-{}", self.spec.cpus.saturating_sub(1)));
        // Values shared by every CPU, as on real hardware.
        let shared: Vec<(u32, u64)> = self
            .indices
            .clone()
            .into_iter()
            .map(|i| {
                let v = match self.below(10) {
                    0..=2 => 0,
                    3..=5 => self.below(1 << 16),
                    _ => self.next(),
                };
                (i, v)
            })
            .collect();
        let mut cpus = BTreeMap::new();
        for cpu in 0..self.spec.cpus {
            let mut c = CpuMsrs {
                phys_bits: Some(46),
                ..CpuMsrs::default()
            };
            for &(i, v) in &shared {
                let v = match i {
                    TSC => 1_000_000_000_000 + u64::from(cpu) * 1000,
                    MPERF | APERF => 400_000_000_000 + self.below(1 << 30),
                    0x1b => 0xfee0_0900 | if cpu == 0 { 0x100 } else { 0 },
                    _ => v,
                };
                c.values.insert(i, v);
            }
            if c.values.remove(&0x1fc).is_some() && cpu % 8 == 7 {
                c.unreadable.insert(0x1fc, "EIO".into());
            } else {
                c.values.insert(0x1fc, 0x2904_005d);
            }
            cpus.insert(cpu, c);
        }
        self.snap.msr = Some(MsrSection {
            selection: "known".into(),
            cpus,
        });
        self.snap.mtrr = Some(MtrrSection {
            phys_bits: Some(46),
            proc_mtrr: Some(
                "reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n\
                 reg01: base=0x080000000 ( 2048MB), size= 1024MB, count=1: write-back\n\
                 reg02: base=0x0c0000000 ( 3072MB), size=  256MB, count=1: uncachable\n"
                    .into(),
            ),
        });
        let mut devices = BTreeMap::new();
        for d in 0..self.spec.devices {
            let bdf = Bdf {
                domain: 0,
                bus: (d / 32) as u8,
                device: (d % 32) as u8,
                function: 0,
            };
            let dev = self.device(d);
            self.bdfs.push(bdf);
            devices.insert(bdf, dev);
        }
        self.snap.pci = Some(PciSection { devices });
        self.snap.meta.captured_at = Some(self.time());
    }

    /// A device with a type 0 header and a capability chain: power management at 0x40,
    /// MSI at 0x50, PCI Express at 0x70; AER at 0x100 and more extended capabilities
    /// after it.
    fn device(&mut self, d: usize) -> PciDevice {
        const CLASSES: &[u32] = &[
            0x060000, 0x030000, 0x010601, 0x020000, 0x0c0330, 0x010802, 0x040300, 0x0c0500,
        ];
        let class = CLASSES[d % CLASSES.len()];
        let mut c = vec![0u8; 4096];
        let dev_id = self.below(0x10000) as u16;
        let put16 = |c: &mut [u8], o: usize, v: u16| c[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let put32 = |c: &mut [u8], o: usize, v: u32| c[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut c, 0, 0x8086);
        put16(&mut c, 2, dev_id);
        put16(&mut c, 4, 0x0406);
        put16(&mut c, 6, 0x0010);
        put32(&mut c, 8, (class << 8) | (d % 16) as u32);
        c[0x0c] = 0x10;
        for bar in 0..3 {
            put32(&mut c, 0x10 + bar * 4, (self.next() as u32) & 0xffff_f000);
        }
        put16(&mut c, 0x2c, 0x17aa);
        put16(&mut c, 0x2e, self.below(0x10000) as u16);
        c[0x34] = 0x40;
        c[0x3c] = (16 + d % 16) as u8;
        c[0x3d] = 1;
        // Power management.
        c[0x40] = 0x01;
        c[0x41] = 0x50;
        put16(&mut c, 0x42, 0xc803);
        put16(&mut c, 0x44, 0x0008);
        // MSI, 64-bit.
        c[0x50] = 0x05;
        c[0x51] = 0x70;
        put16(&mut c, 0x52, 0x0081);
        put32(&mut c, 0x54, 0xfee0_0000 | ((d as u32) << 12));
        put16(&mut c, 0x5c, 0x4020 + d as u16);
        // PCI Express endpoint.
        c[0x70] = 0x10;
        c[0x71] = 0x00;
        put16(&mut c, 0x72, 0x0002);
        put32(&mut c, 0x74, 0x0000_8fc0 | (self.below(8) as u32));
        put16(&mut c, 0x78, 0x2910);
        put16(&mut c, 0x7a, 0x0010);
        put32(&mut c, 0x7c, 0x0047_3c43);
        put16(&mut c, 0x80, 0x0042);
        put16(&mut c, 0x82, 0x1043);
        // Extended: AER at 0x100 → 0x140 → 0x180.
        put32(&mut c, 0x100, 0x1401_0001);
        put32(&mut c, 0x108, 0x0040_0000);
        put32(&mut c, 0x10c, 0x0046_2030);
        put32(&mut c, 0x114, 0x0000_2000);
        put32(&mut c, 0x140, 0x1801_000b);
        for o in (0x144..0x180).step_by(4) {
            put32(&mut c, o, self.next() as u32);
        }
        put32(&mut c, 0x180, 0x0001_0018);
        put32(&mut c, 0x184, 0x1003_1003);
        PciDevice {
            vendor: 0x8086,
            device: dev_id,
            class,
            revision: (d % 16) as u8,
            subsystem_vendor: Some(0x17aa),
            subsystem_device: Some(u16::from_le_bytes([c[0x2e], c[0x2f]])),
            driver: [
                "pcieport",
                "i915",
                "ahci",
                "e1000e",
                "xhci_hcd",
                "nvme",
                "snd_hda_intel",
                "",
            ]
            .get(d % 8)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string()),
            config: c,
            config_note: None,
            vanished: false,
        }
    }

    fn time(&self) -> String {
        let start = UNIX_EPOCH + Duration::from_secs(1_714_557_600); // 2024-05-01T10:00:00Z
        let t = start + self.spec.interval * (self.step as u32);
        humantime::format_rfc3339_millis(t).to_string()
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Advance one interval and return the new state.
    pub fn step(&mut self) -> &Snapshot {
        self.step += 1;
        let ticks = 2_400_000 * self.spec.interval.as_millis() as u64;
        let cpus = self.spec.cpus;
        let jitter: Vec<(u64, u64, u64)> = (0..cpus)
            .map(|_| {
                (
                    self.below(1000),
                    self.below(ticks / 2 + 1),
                    self.below(ticks / 2 + 1),
                )
            })
            .collect();
        let mut real = None;
        if self.spec.msr_change_every > 0 && self.step % self.spec.msr_change_every == 0 {
            let cpu = self.below(u64::from(cpus)) as u32;
            let k = self.below(self.indices.len() as u64) as usize;
            let pick = self.indices.get(k).copied();
            let bit = self.below(64);
            real = pick
                .filter(|i| ![TSC, MPERF, APERF].contains(i))
                .map(|i| (cpu, i, bit));
        }
        let mut pci = None;
        if self.spec.pci_change_every > 0 && self.step % self.spec.pci_change_every == 0 {
            let d = self.below(self.bdfs.len() as u64) as usize;
            pci = self.bdfs.get(d).copied();
        }
        let time = self.time();
        let s = &mut self.snap;
        s.meta.captured_at = Some(time);
        if let Some(msr) = s.msr.as_mut() {
            for (cpu, c) in msr.cpus.iter_mut() {
                let (j, m, a) = jitter.get(*cpu as usize).copied().unwrap_or_default();
                if let Some(v) = c.values.get_mut(&TSC) {
                    *v = v.wrapping_add(ticks + j);
                }
                if let Some(v) = c.values.get_mut(&MPERF) {
                    *v = v.wrapping_add(m);
                }
                if let Some(v) = c.values.get_mut(&APERF) {
                    *v = v.wrapping_add(a);
                }
            }
            if let Some((cpu, i, bit)) = real {
                if let Some(v) = msr.cpus.get_mut(&cpu).and_then(|c| c.values.get_mut(&i)) {
                    *v ^= 1 << bit;
                }
            }
        }
        if let (Some(bdf), Some(p)) = (pci, s.pci.as_mut()) {
            if let Some(dev) = p.devices.get_mut(&bdf) {
                // Toggle bus mastering and the PM state, as a driver binding would.
                dev.config[4] ^= 0x04;
                dev.config[0x44] ^= 0x03;
            }
        }
        &self.snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_has_the_requested_shape_and_ticks() {
        let mut m = Machine::new(Spec {
            cpus: 8,
            msrs_per_cpu: 400,
            devices: 20,
            ..Spec::default()
        });
        let s0 = m.snapshot().clone();
        let msr = s0.msr.as_ref().unwrap();
        assert_eq!(msr.cpus.len(), 8);
        let c7 = &msr.cpus[&7];
        assert_eq!(c7.values.len() + c7.unreadable.len(), 400);
        let pci = s0.pci.as_ref().unwrap();
        assert_eq!(pci.devices.len(), 20);
        let nonzero = pci
            .devices
            .values()
            .next()
            .unwrap()
            .config
            .iter()
            .filter(|&&b| b != 0)
            .count();
        assert!(nonzero > 100, "{nonzero}");
        let s1 = m.step().clone();
        assert_ne!(s0.meta.captured_at, s1.meta.captured_at);
        let d = crate::record::Delta::between(&s0, &s1);
        assert_eq!(d.summary().msr_values, 8 * 3);
        // Deterministic.
        let again = Machine::new(*m.spec());
        assert_eq!(again.snapshot(), &s0);
    }
}
