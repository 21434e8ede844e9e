//! A whole laptop as a fixture root (8 CPUs, 18 PCI functions with real capability chains),
//! in a cold-boot state and in the state a kexec left: `capture` then `diff` must report
//! exactly the planted changes with their fields and owners, none of the volatile noise.

mod common;

use assert_cmd::Command;
use regdrift::fixture::pci_configs as pc;
use regdrift::fixture::FixtureRoot;
use serde_json::Value;

const CPUS: u32 = 8;

fn machine(root: &std::path::Path, boot: u64, kexec: bool) {
    let f = FixtureRoot::new(root).unwrap();
    for cpu in 0..CPUS {
        let mut msrs = common::cold_msrs(cpu, boot);
        if kexec {
            // intel_idle: C1E promotion off and C1 auto-demotion off, on every CPU.
            for (i, v) in msrs.iter_mut() {
                if *i == 0x1fc {
                    *v &= !0x2;
                }
                if *i == 0xe2 {
                    *v &= !(1 << 26);
                }
            }
            // perf left PMC0 enabled in PERF_GLOBAL_CTRL.
            msrs.retain(|(i, _)| *i != 0x38f);
            msrs.push((0x38f, 0x1));
        }
        f.msrs(cpu, &msrs).unwrap();
        f.cpuid(cpu, 0x8000_0008, [0x3027, 0, 0, 0]).unwrap();
    }
    f.cpus_online(&format!("0-{}", CPUS - 1)).unwrap();
    f.proc_mtrr("").unwrap();
    f.meta("6.12.0", "quiet", &format!("b00t-{boot}"), "laptop")
        .unwrap();
    f.modules(&["msr", "nvme", "snd_hda_intel", "i915"])
        .unwrap();
    for (bdf, mut config, drv) in pc::laptop() {
        if kexec {
            match bdf.to_string().as_str() {
                // ASPM changed on the NVMe's root port, MSI-X flipped in the NVMe.
                "0000:00:06.0" => {
                    let at = pc::cap_offset(&config, 0x10).unwrap() + 0x10;
                    let aspm = pc::get_le(&config, at, 2).unwrap() & 0x3;
                    assert!(pc::set_aspm(&mut config, if aspm == 3 { 0 } else { 3 }));
                }
                "0000:01:00.0" => {
                    let at = pc::cap_offset(&config, 0x11).unwrap() + 2;
                    let on = pc::get_le(&config, at, 2).unwrap() & 0x8000 != 0;
                    assert!(pc::set_msix_enable(&mut config, !on));
                }
                // Audio left in D3hot.
                "0000:00:1f.3" => assert!(pc::set_power_state(&mut config, 3)),
                _ => {}
            }
        }
        f.pci_device(bdf, &config, drv).unwrap();
    }
}

#[test]
fn laptop_kexec_reports_exactly_the_planted_state() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("cold"), dir.path().join("kexec"));
    machine(&r1, 0, false);
    machine(&r2, 1, true);
    let (s1, s2) = (dir.path().join("cold.json"), dir.path().join("kexec.json"));
    for (r, s) in [(&r1, &s1), (&r2, &s2)] {
        Command::cargo_bin("regdrift")
            .unwrap()
            .arg("capture")
            .arg("--root")
            .arg(r)
            .arg("-o")
            .arg(s)
            .assert()
            .success();
    }
    let out = Command::cargo_bin("regdrift")
        .unwrap()
        .arg("diff")
        .arg(&s1)
        .arg(&s2)
        .args(["--format", "json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let r: Value = serde_json::from_slice(&out).unwrap();
    let divs = r["divergences"].as_array().unwrap();
    let got: Vec<String> = divs
        .iter()
        .map(|d| {
            let fields: Vec<String> = d["fields"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|f| f["name"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} {} {} {} [{}] cpus={} owner={}",
                d["kind"].as_str().unwrap(),
                d["bdf"].as_str().unwrap_or("-"),
                d["register"].as_str().unwrap_or("-"),
                d["name"].as_str().unwrap(),
                fields.join(","),
                d["cpus"].as_array().map_or(0, |c| c.len()),
                d["owners"][0]["driver"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let want = [
        "msr - 0xe2 MSR_PKG_CST_CONFIG_CONTROL [C1_AUTO_DEMOTE] cpus=8 owner=intel_idle",
        "msr - 0x1fc MSR_IA32_POWER_CTL [C1E_PROMOTION] cpus=8 owner=intel_idle",
        "msr - 0x38f MSR_CORE_PERF_GLOBAL_CTRL [PMC0_EN] cpus=8 owner=perf",
    ];
    for w in want {
        assert!(
            got.iter()
                .any(|g| g.starts_with(&w[..w.find(" [").unwrap()])),
            "{w} missing from {got:#?}"
        );
    }
    let pci: Vec<&String> = got.iter().filter(|g| g.starts_with("pci")).collect();
    assert_eq!(pci.len(), 3, "{got:#?}");
    assert!(
        pci[0].contains("0000:00:06.0") && pci[0].contains("LnkCtl") && pci[0].contains("ASPM"),
        "{pci:#?}"
    );
    assert!(
        pci[1].contains("0000:00:1f.3")
            && pci[1].contains("PMCSR")
            && pci[1].contains("PowerState"),
        "{pci:#?}"
    );
    assert!(
        pci[2].contains("0000:01:00.0")
            && pci[2].contains("MSI-X Control")
            && pci[2].contains("Enable"),
        "{pci:#?}"
    );
    assert_eq!(divs.len(), 6, "{got:#?}");
    assert!(r["hidden_volatile"].as_u64().unwrap() > 0);
}
