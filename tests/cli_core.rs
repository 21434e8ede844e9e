//! capture → diff through the real binary on fixture roots.

mod common;

use assert_cmd::Command;
use serde_json::Value;

fn regdrift() -> Command {
    Command::cargo_bin("regdrift").unwrap()
}

fn capture(root: &std::path::Path, out: &std::path::Path) {
    regdrift()
        .args(["capture", "--root"])
        .arg(root)
        .arg("-o")
        .arg(out)
        .assert()
        .success();
}

#[test]
fn snapshot_against_itself_is_empty_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    let snap = dir.path().join("cold.json");
    capture(&root, &snap);
    let out = regdrift()
        .arg("diff")
        .arg(&snap)
        .arg(&snap)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("regdrift: 0 divergences"), "{text}");
    assert!(text.contains("No divergences."), "{text}");
}

#[test]
fn cold_vs_planted_reports_exactly_the_planted_msrs_and_mtrr() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
    common::cold_machine(&r1, 0);
    // A second boot: counters and KASLR addresses differ, plus the planted state.
    common::planted_machine(&r2, 1);
    let (s1, s2) = (dir.path().join("cold.json"), dir.path().join("kexec.json"));
    capture(&r1, &s1);
    capture(&r2, &s2);
    let out = regdrift()
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
    assert_eq!(r["format"], "regdrift-report");
    let divs = r["divergences"].as_array().unwrap();
    let msr: Vec<&Value> = divs.iter().filter(|d| d["kind"] == "msr").collect();
    let regs: Vec<&str> = msr
        .iter()
        .map(|d| d["register"].as_str().unwrap())
        .collect();
    assert_eq!(regs, ["0x1a0", "0x1fc"], "{divs:#?}");
    // C1E promotion, all CPUs, owner intel_idle.
    let c1e = msr.iter().find(|d| d["register"] == "0x1fc").unwrap();
    assert_eq!(c1e["cpus"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(c1e["changed_bits"], "0x2");
    assert_eq!(c1e["baseline"], "0x2404005f");
    assert_eq!(c1e["current"], "0x2404005d");
    assert!(c1e["owners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["driver"] == "intel_idle"));
    // MISC_ENABLE bit 22 on cpu 2 only: an asymmetry.
    let misc = msr.iter().find(|d| d["register"] == "0x1a0").unwrap();
    assert_eq!(misc["cpus"], serde_json::json!([2]));
    assert_eq!(misc["changed_bits"], "0x400000");
    assert!(
        misc["notes"][0].as_str().unwrap().contains("asymmetric"),
        "{misc:#?}"
    );
    // The /proc/mtrr entry, which the (empty) MTRR MSRs of the fixture cannot explain.
    let mtrr: Vec<&Value> = divs
        .iter()
        .filter(|d| d["kind"] == "mtrr" || d["kind"] == "proc-mtrr")
        .collect();
    assert_eq!(mtrr.len(), 1, "{mtrr:#?}");
    assert_eq!(mtrr[0]["kind"], "proc-mtrr");
    assert_eq!(mtrr[0]["name"], "/proc/mtrr reg00");
    assert_eq!(mtrr[0]["baseline"], "(no line)");
    assert_eq!(
        mtrr[0]["current"],
        "base=0x40000000 size=256MB count=1: write-combining"
    );
    assert!(mtrr[0]["owners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["driver"] == "MTRR"));
    // PCI: decoded registers and fields, with owners and the bound driver.
    let pci: Vec<(&str, &str, &str, &str)> = divs
        .iter()
        .filter(|d| d["kind"] == "pci")
        .map(|d| {
            (
                d["bdf"].as_str().unwrap(),
                d["name"].as_str().unwrap(),
                d["fields"][0]["name"].as_str().unwrap(),
                d["fields"][0]["current_meaning"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        pci,
        [
            ("0000:00:17.0", "PMCSR", "PowerState", "D3hot"),
            ("0000:00:1f.6", "Command", "DisINTx", ""),
            ("0000:00:1f.6", "MSI Control", "Enable", ""),
        ],
        "{divs:#?}"
    );
    for d in divs.iter().filter(|d| d["kind"] == "pci") {
        assert!(!d["owners"].as_array().unwrap().is_empty(), "{d:#?}");
        assert!(d["drivers"]["current"].is_string(), "{d:#?}");
    }
    assert_eq!(divs.len(), 6, "exactly what was planted: {divs:#?}");
    // No volatile noise in the default report.
    for d in divs {
        assert!(d.get("volatile").is_none(), "{d:#?}");
        let reg = d["register"].as_str().unwrap_or("");
        assert!(!["0x10", "0x176", "0xc0000082"].contains(&reg));
    }
    // TSC, SYSENTER_EIP and LSTAR on 4 CPUs, grouped per distinct change.
    assert!(
        r["hidden_volatile"].as_u64().unwrap() >= 3,
        "{}",
        r["hidden_volatile"]
    );
    // The cross-check notices that the MSRs hold no range for the /proc/mtrr line.
    let w = r["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].as_str()
            .unwrap()
            .starts_with("current: /proc/mtrr reg00"),
        "{w:#?}"
    );
}

#[test]
fn text_report_fits_a_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
    common::cold_machine(&r1, 0);
    common::planted_machine(&r2, 1);
    let (s1, s2) = (dir.path().join("a.json"), dir.path().join("b.json"));
    capture(&r1, &s1);
    capture(&r2, &s2);
    for all in [false, true] {
        let mut cmd = regdrift();
        cmd.arg("diff").arg(&s1).arg(&s2);
        if all {
            cmd.arg("--all");
        }
        let out = cmd.assert().code(1).get_output().stdout.clone();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            assert!(line.len() <= 80, "line too long: {line:?}");
            assert!(line.is_ascii(), "not ASCII: {line:?}");
            assert!(!line.contains('\x1b'), "colour in a pipe: {line:?}");
        }
        assert!(text.contains("MSR 0x1fc"), "{text}");
        assert!(text.contains("intel_idle"), "{text}");
    }
}

#[test]
fn errors_name_the_file_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"regdrift-snapshot\", \"version\": 99}").unwrap();
    let out = regdrift()
        .arg("diff")
        .arg(&bad)
        .arg(&bad)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(err.starts_with("regdrift: "), "{err}");
    assert!(err.contains("bad.json"), "{err}");
    assert!(err.contains("version 99 is newer"), "{err}");
    regdrift()
        .arg("diff")
        .arg(dir.path().join("missing.json"))
        .arg(&bad)
        .assert()
        .code(2);
}

#[test]
fn show_lists_decoded_msrs_problems_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::planted_machine(&root, 0);
    let snap = dir.path().join("s.json");
    capture(&root, &snap);
    let out = regdrift()
        .arg("show")
        .arg(&snap)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("MSRs (known), 4 CPUs: 0-3"), "{text}");
    assert!(text.contains("IA32_MISC_ENABLE"), "{text}");
    assert!(
        text.contains("! CPUs differ"),
        "cpu 2's MISC_ENABLE: {text}"
    );
    assert!(text.contains("PCI: 3 devices"), "{text}");
    assert!(text.contains("0000:00:1f.6"), "{text}");
    // The fixture has no MTRR MSR pairs but /proc/mtrr lists one: the cross-check says so.
    assert!(text.contains("/proc/mtrr reg00"), "{text}");
    let json = regdrift()
        .args(["show", "--format", "json"])
        .arg(&snap)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let back = regdrift::snapshot::Snapshot::from_json(std::str::from_utf8(&json).unwrap());
    assert!(back.is_ok());
}

#[test]
fn capture_writes_atomically_and_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    let out = dir.path().join("s.json");
    regdrift()
        .args([
            "capture",
            "--msrs",
            "0x1fc,0x200-0x20f",
            "--only",
            "msr",
            "--cpus",
            "0-1",
            "--root",
        ])
        .arg(&root)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let s = regdrift::snapshot::Snapshot::load(&out).unwrap();
    let msr = s.msr.unwrap();
    assert_eq!(msr.selection, "0x1fc,0x200-0x20f");
    assert_eq!(msr.cpus.keys().copied().collect::<Vec<_>>(), [0, 1]);
    assert!(s.pci.is_none() && s.mtrr.is_none());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary left"
    );
    for bad in [
        ["--msrs", "0x20f-0x200"],
        ["--only", "gpu"],
        ["--cpus", "x"],
    ] {
        let err = regdrift()
            .arg("capture")
            .args(bad)
            .arg("--root")
            .arg(&root)
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("regdrift: "), "{err}");
    }
}
