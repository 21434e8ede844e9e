//! The recording the README's first command replays opens with this regdrift, holds the
//! lab's three snapshots, and its first and last frames diff to what the lab planted.

use assert_cmd::Command;
use regdrift::record::Recording;
use regdrift::snapshot::Snapshot;
use std::path::Path;

fn shipped(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(name)
}

#[test]
fn the_shipped_recording_replays_the_lab_snapshots() {
    let rec = Recording::open(&shipped("lab.rec")).unwrap();
    assert!(!rec.truncated());
    assert_eq!(rec.frame_count(), 3);
    for (i, f) in ["lab-cold.json", "lab-planted.json", "lab-kexec.json"]
        .iter()
        .enumerate()
    {
        let want = Snapshot::load(&shipped(f)).unwrap();
        assert_eq!(rec.snapshot(i).unwrap(), want, "frame {i} vs {f}");
    }
}

#[test]
fn first_vs_after_kexec_frame_shows_the_planted_state() {
    let arg = |m: &str| format!("{}@{m}", shipped("lab.rec").display());
    let out = Command::cargo_bin("regdrift")
        .unwrap()
        .arg("diff")
        .arg(arg("cold"))
        .arg(arg("after-kexec"))
        .args(["--format", "json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let got: Vec<String> = r["divergences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["kind"].as_str().unwrap(),
                d["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "msr MSR_IA32_MISC_ENABLE",
            "mtrr variable range 1",
            "pci Cache Line Size",
            "pci Interrupt Line",
            "pci Command",
        ]
    );
}
