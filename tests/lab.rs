//! The QEMU kexec lab as a test: a real Debian 12 kernel boots under QEMU with the real
//! `msr` driver, regdrift captures, stale state is planted, the guest kexecs into the same
//! kernel, regdrift captures and diffs again (see lab/README.md).
//!
//! Runs only when `REGDRIFT_LAB=1` (CI sets it); otherwise each test says why it skips and
//! passes. With `REGDRIFT_LAB=1` a missing QEMU is a failure, not a skip.
//!
//! - `REGDRIFT_LAB_BIN`: the regdrift binary put into the guest (default: the one cargo
//!   built for this test run).
//! - `REGDRIFT_LAB_OUT`: where each scenario's results go (default:
//!   `$CARGO_TARGET_TMPDIR/lab/<scenario>`); they stay there after the test.
//! - `REGDRIFT_LAB_CACHE`, `REGDRIFT_LAB_ACCEL`, `REGDRIFT_LAB_KERNEL`: passed through to
//!   `lab/run`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// One QEMU at a time: the machines have two cores and TCG is CPU-bound.
static QEMU: Mutex<()> = Mutex::new(());

/// What a finished `lab/run` left in its out dir.
struct Lab {
    out: PathBuf,
}

impl Lab {
    /// Runs `lab/run --scenario NAME`, or returns `None` (after saying why) when the lab
    /// is not enabled.
    fn run(scenario: &str) -> Option<Lab> {
        if std::env::var("REGDRIFT_LAB").as_deref() != Ok("1") {
            // straight to stderr, past the test harness's capture: a skip must be seen
            let msg = format!(
                "skipping the QEMU kexec lab ({scenario}): set REGDRIFT_LAB=1 to run it \
                 (needs qemu-system-x86, cpio and Debian package downloads; see lab/README.md)\n"
            );
            let _ = std::io::stderr().write_all(msg.as_bytes());
            return None;
        }
        let qemu_found = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|d| d.join("qemu-system-x86_64").is_file())
        });
        assert!(
            qemu_found,
            "REGDRIFT_LAB=1 but qemu-system-x86_64 is not on PATH: \
             apt-get install qemu-system-x86 cpio (or unset REGDRIFT_LAB to skip the lab)"
        );

        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin = std::env::var_os("REGDRIFT_LAB_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_regdrift")));
        let out = std::env::var_os("REGDRIFT_LAB_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab"))
            .join(scenario);

        let _one_at_a_time = QEMU.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(repo.join("lab/run"))
            .args(["--scenario", scenario, "--out"])
            .arg(&out)
            .arg("--regdrift")
            .arg(&bin)
            .status()
            .expect("cannot start bash lab/run");
        let lab = Lab { out };
        assert!(
            status.success(),
            "lab/run --scenario {scenario} failed ({status}) after {:.0?}; results in {}\n{}",
            started.elapsed(),
            lab.out.display(),
            lab.tail_of_logs()
        );
        let msg = format!(
            "lab {scenario}: {:.1?}; metrics: {}\n",
            started.elapsed(),
            lab.text("metrics.json")
        );
        let _ = std::io::stderr().write_all(msg.as_bytes());
        Some(lab)
    }

    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", self.out.join(name).display()))
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_str(&self.text(name))
            .unwrap_or_else(|e| panic!("{}: {e}", self.out.join(name).display()))
    }

    /// Exit status of each guest step (steps.txt: `NAME rc RC MS ms` per line).
    fn steps(&self) -> BTreeMap<String, i32> {
        self.text("steps.txt")
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let name = words.next()?;
                let rc = words.nth(1)?.parse().ok()?;
                Some((name.to_string(), rc))
            })
            .collect()
    }

    fn tail_of_logs(&self) -> String {
        let mut s = String::new();
        for name in ["steps.txt", "marks.txt", "metrics.json", "console.log"] {
            if let Ok(t) = std::fs::read_to_string(self.out.join(name)) {
                let lines: Vec<&str> = t.lines().collect();
                let from = lines.len().saturating_sub(25);
                let _ = writeln!(s, "--- {name}\n{}", lines[from..].join("\n"));
            }
        }
        s
    }
}

/// `"0x1a0"` → 0x1a0.
fn hex(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

fn str_of<'a>(d: &'a Value, key: &str) -> &'a str {
    d.get(key).and_then(Value::as_str).unwrap_or("")
}

fn cpus(d: &Value) -> Vec<u64> {
    d.get("cpus")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn owners(d: &Value) -> Vec<String> {
    d.get("owners")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("driver").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn field<'a>(d: &'a Value, name: &str) -> Option<&'a Value> {
    d.get("fields")?
        .as_array()?
        .iter()
        .find(|f| str_of(f, "name") == name)
}

/// The divergences of a report that count: those not marked volatile.
fn significant(report: &Value) -> Vec<&Value> {
    assert_eq!(report["format"], "regdrift-report", "not a regdrift report");
    report["divergences"]
        .as_array()
        .expect("report without a divergences array")
        .iter()
        .filter(|d| d.get("volatile").is_none_or(Value::is_null))
        .collect()
}

fn pretty(ds: &[&Value]) -> String {
    ds.iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_msr(d: &Value, index: u64) -> bool {
    str_of(d, "kind") == "msr" && d.get("register").and_then(hex) == Some(index)
}

fn is_pci(d: &Value, bdf: &str, offset: u64) -> bool {
    str_of(d, "kind") == "pci"
        && str_of(d, "bdf") == bdf
        && d.get("register").and_then(hex) == Some(offset)
}

/// The planted write-combining range 0x40000000-0x4fffffff, as the decoded MTRR
/// divergence names it (the range's text, or its PHYSBASE/PHYSMASK values).
fn is_planted_mtrr(d: &Value) -> bool {
    if str_of(d, "kind") != "mtrr" {
        return false;
    }
    let text = serde_json::to_string(d)
        .unwrap_or_default()
        .to_ascii_lowercase();
    text.contains("0x40000000")
}

/// The planted changes, each as the report must show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Planted {
    WcRange,
    LimitCpuid,
    IdeCacheLineSize,
    IdeInterruptLine,
    AcpiIntxDisable,
}

const ALL_PLANTED: [Planted; 5] = [
    Planted::WcRange,
    Planted::LimitCpuid,
    Planted::IdeCacheLineSize,
    Planted::IdeInterruptLine,
    Planted::AcpiIntxDisable,
];

fn which_planted(d: &Value) -> Option<Planted> {
    if is_planted_mtrr(d) {
        Some(Planted::WcRange)
    } else if is_msr(d, 0x1a0) {
        Some(Planted::LimitCpuid)
    } else if is_pci(d, "0000:00:01.1", 0x0c) {
        Some(Planted::IdeCacheLineSize)
    } else if is_pci(d, "0000:00:01.1", 0x3c) {
        Some(Planted::IdeInterruptLine)
    } else if is_pci(d, "0000:00:01.3", 0x04) {
        Some(Planted::AcpiIntxDisable)
    } else {
        None
    }
}

/// Checks one planted divergence in detail; returns what is wrong with it.
fn check_planted(p: Planted, d: &Value, ncpus: usize) -> Vec<String> {
    let mut bad = Vec::new();
    let mut want = |ok: bool, what: &str| {
        if !ok {
            bad.push(format!("{p:?}: {what}: {d}"));
        }
    };
    let all_cpus: Vec<u64> = (0..ncpus as u64).collect();
    let b = d.get("baseline").and_then(hex);
    let c = d.get("current").and_then(hex);
    match p {
        Planted::WcRange => {
            let text = serde_json::to_string(d)
                .unwrap_or_default()
                .to_ascii_lowercase();
            want(
                text.contains("write-combining") || text.contains("\"wc\"") || text.contains(" wc"),
                "the range is not named write-combining",
            );
            want(
                text.contains("0x10000000") || text.contains("0x4fffffff") || text.contains("256"),
                "the range's size or end is not given",
            );
            want(
                d.get("baseline")
                    .is_none_or(|b| b.is_null() || b.as_str() == Some("unused")),
                "a new range has no baseline (unused)",
            );
            want(
                owners(d).iter().any(|o| o == "MTRR"),
                "owner MTRR not named",
            );
        }
        Planted::LimitCpuid => {
            want(cpus(d) == all_cpus, "not reported on every CPU");
            want(
                d.get("changed_bits").and_then(hex) == Some(1 << 22),
                "changed bits are not exactly bit 22",
            );
            want(
                b.zip(c)
                    .is_some_and(|(b, c)| b | (1 << 22) == c && b & (1 << 22) == 0),
                "values are not the cold value and the same with bit 22 set",
            );
            let f = field(d, "LIMIT_CPUID");
            want(
                f.is_some_and(|f| {
                    f.get("baseline").and_then(hex) == Some(0)
                        && f.get("current").and_then(hex) == Some(1)
                }),
                "field LIMIT_CPUID 0 -> 1 missing",
            );
            want(!owners(d).is_empty(), "no owner named");
        }
        Planted::IdeCacheLineSize => {
            want(
                str_of(d, "name") == "Cache Line Size",
                "register not named Cache Line Size",
            );
            want(
                b == Some(0) && c == Some(0x10),
                "values are not 0x0 -> 0x10",
            );
            want(!owners(d).is_empty(), "no owner named");
        }
        Planted::IdeInterruptLine => {
            want(
                str_of(d, "name") == "Interrupt Line",
                "register not named Interrupt Line",
            );
            want(b == Some(0) && c == Some(0x0a), "values are not 0x0 -> 0xa");
            want(!owners(d).is_empty(), "no owner named");
        }
        Planted::AcpiIntxDisable => {
            want(str_of(d, "name") == "Command", "register not named Command");
            want(
                d.get("changed_bits").and_then(hex) == Some(0x400),
                "changed bits are not exactly 0x400",
            );
            want(
                b.zip(c)
                    .is_some_and(|(b, c)| b | 0x400 == c && b & 0x400 == 0),
                "values are not the cold value and the same with bit 10 set",
            );
            let f = field(d, "DisINTx");
            want(
                f.is_some_and(|f| {
                    f.get("baseline").and_then(hex) == Some(0)
                        && f.get("current").and_then(hex) == Some(1)
                }),
                "field DisINTx 0 -> 1 missing",
            );
            want(!owners(d).is_empty(), "no owner named");
        }
    }
    bad
}

fn cpu_count(snapshot: &Value) -> usize {
    snapshot["msr"]["cpus"]
        .as_object()
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Both snapshots come from the same kernel, in two different boots.
fn assert_two_boots(cold: &Value, after: &Value) {
    let release = |s: &Value| s["meta"]["kernel_release"].as_str().map(str::to_string);
    let boot_id = |s: &Value| s["meta"]["boot_id"].as_str().map(str::to_string);
    assert!(
        release(cold).is_some(),
        "cold snapshot without kernel_release"
    );
    assert_eq!(release(cold), release(after), "not the same kernel");
    assert!(boot_id(cold).is_some(), "cold snapshot without boot_id");
    assert_ne!(
        boot_id(cold),
        boot_id(after),
        "same boot_id: the kexec did not happen"
    );
    let cmdline = after["meta"]["cmdline"].as_str().unwrap_or("");
    assert!(
        cmdline.contains("stage=2"),
        "after-kexec cmdline is {cmdline:?}"
    );
}

#[test]
fn planted_stale_state_is_found_exactly_after_kexec() {
    let Some(lab) = Lab::run("planted") else {
        return;
    };
    let steps = lab.steps();
    assert_eq!(steps.get("kexec-load"), Some(&0), "kexec load: {steps:?}");
    // diff exits 1 when something diverges
    assert_eq!(
        steps.get("diff-json"),
        Some(&1),
        "diff exit status: {steps:?}"
    );
    assert_eq!(steps.get("diff-cold-planted-json"), Some(&1), "{steps:?}");

    let cold = lab.json("cold.json");
    let after = lab.json("after-kexec.json");
    assert_two_boots(&cold, &after);
    let ncpus = cpu_count(&cold);
    assert_eq!(ncpus, 2, "the guest has 2 CPUs");

    // Before the kexec: every planted change, and the decoys (PAT), are seen.
    let before = lab.json("diff-cold-planted.json");
    let before = significant(&before);
    for p in ALL_PLANTED {
        assert!(
            before.iter().any(|d| which_planted(d) == Some(p)),
            "{p:?} not seen right after planting (the plant did not take?):\n{}",
            pretty(&before)
        );
    }
    assert!(
        before.iter().any(|d| is_msr(d, 0x277)),
        "the PAT decoy is not seen right after planting:\n{}",
        pretty(&before)
    );

    // After the kexec: exactly the planted changes, each once, each explained.
    let report = lab.json("diff.json");
    let found = significant(&report);
    let mut seen: BTreeMap<Planted, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut wrong = Vec::new();
    for d in &found {
        match which_planted(d) {
            Some(p) => {
                *seen.entry(p).or_default() += 1;
                wrong.extend(check_planted(p, d, ncpus));
            }
            None => unexpected.push(*d),
        }
    }
    let missing: Vec<Planted> = ALL_PLANTED
        .into_iter()
        .filter(|p| !seen.contains_key(p))
        .collect();
    let twice: Vec<&Planted> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty() && unexpected.is_empty() && twice.is_empty() && wrong.is_empty(),
        "cold vs after-kexec ({}):\n missing: {missing:?}\n reported more than once: {twice:?}\n \
         wrong: {wrong:#?}\n unexpected (false positives):\n{}",
        lab.out.join("diff.json").display(),
        pretty(&unexpected)
    );

    // The noise is classified, not lost: with --all the KASLR-dependent MSRs are there,
    // marked volatile.
    let all = lab.json("diff-all.json");
    for index in [0x176u64, 0xc000_0082] {
        let d = all["divergences"]
            .as_array()
            .and_then(|a| a.iter().find(|d| is_msr(d, index)));
        assert!(
            d.is_some_and(|d| d.get("volatile").is_some_and(|v| !v.is_null())),
            "MSR {index:#x} (differs per boot through KASLR) is not reported as volatile \
             with --all: {d:?}"
        );
    }
    assert!(
        report["hidden_volatile"].as_u64().unwrap_or(0) > 0,
        "the default report hides no volatile divergence"
    );

    // The text report names them too.
    let text = lab.text("diff.txt");
    for needle in ["LIMIT_CPUID", "0000:00:01.1", "0000:00:01.3"] {
        assert!(
            text.contains(needle),
            "diff.txt does not mention {needle}:\n{text}"
        );
    }

    // The session as a recording: three frames with their marks, and the same report
    // from its first and last frames as from the snapshot files.
    let rec = lab.out.join("session.rec");
    let list = Command::new(env!("CARGO_BIN_EXE_regdrift"))
        .args(["replay", "--list"])
        .arg(&rec)
        .output()
        .expect("cannot run regdrift replay");
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "replay --list {}: {listing}",
        rec.display()
    );
    for mark in ["cold", "planted", "after-kexec"] {
        assert!(listing.contains(mark), "mark {mark} missing:\n{listing}");
    }
    let from_rec = Command::new(env!("CARGO_BIN_EXE_regdrift"))
        .arg("diff")
        .arg(format!("{}@cold", rec.display()))
        .arg(format!("{}@after-kexec", rec.display()))
        .args(["--format", "json"])
        .output()
        .expect("cannot run regdrift diff");
    assert_eq!(
        from_rec.status.code(),
        Some(1),
        "diff of the recording's frames"
    );
    let from_rec: Value = serde_json::from_slice(&from_rec.stdout).expect("diff JSON");
    let key = |ds: Vec<&Value>| -> Vec<String> {
        ds.iter()
            .map(|d| format!("{} {} {}", d["kind"], d["bdf"], d["register"]))
            .collect()
    };
    assert_eq!(
        key(significant(&from_rec)),
        key(found),
        "recording vs snapshot files"
    );
}

#[test]
fn clean_kexec_reports_nothing() {
    let Some(lab) = Lab::run("clean") else {
        return;
    };
    let cold = lab.json("cold.json");
    let after = lab.json("after-kexec.json");
    assert_two_boots(&cold, &after);
    let report = lab.json("diff.json");
    let found = significant(&report);
    assert!(
        found.is_empty(),
        "a kexec with nothing planted left these ({}):\n{}",
        lab.out.join("diff.json").display(),
        pretty(&found)
    );
    assert_eq!(
        lab.steps().get("diff-json"),
        Some(&0),
        "regdrift diff must exit 0 when nothing diverges"
    );

    // Every MSR the CPU answers (--msrs scan), not only the known ones: still nothing
    // but per-boot noise, which is there and classified.
    let scan_cold = lab.json("cold-scan.json");
    assert_eq!(
        scan_cold["msr"]["selection"], "scan",
        "cold-scan.json is not a scan"
    );
    let scan = lab.json("diff-scan.json");
    let found = significant(&scan);
    assert!(
        found.is_empty(),
        "a kexec with nothing planted left these among all readable MSRs ({}):\n{}",
        lab.out.join("diff-scan.json").display(),
        pretty(&found)
    );
    assert!(
        scan["hidden_volatile"].as_u64().unwrap_or(0) > 0,
        "the scan diff hides no per-boot register: were the two boots different?"
    );
    assert_eq!(lab.steps().get("diff-scan"), Some(&0), "{:?}", lab.steps());
}
