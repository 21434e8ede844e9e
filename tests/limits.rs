//! Absurd sizes: files that claim (or hold) a million devices or CPUs, gigabytes of config
//! space, a 4 GiB record, or nest JSON a hundred thousand deep are refused with an error
//! naming the file, exit status 2, and bounded memory (peak RSS measured with
//! /usr/bin/time when it is installed).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command as Std;

use assert_cmd::cargo::CommandCargoExt;
use regdrift::snapshot::{Snapshot, CONFIG_BYTES_PER_JSON_BYTE, MAX_CPUS, MAX_PCI_DEVICES};

const HEAD: &str = r#"{"format": "regdrift-snapshot", "version": 1,
 "meta": {"regdrift_version": "0.1.0", "origin": {"kind": "capture", "root": "/"}}"#;

/// `n` devices of `len` bytes of config space, of which the first `nonzero` are written.
fn devices(n: usize, len: usize, nonzero: usize) -> String {
    let hex = "86".repeat(nonzero);
    let mut s = String::with_capacity(n * 110 + 200);
    s.push_str(HEAD);
    s.push_str(",\n \"pci\": {\"devices\": {");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\"{:04x}:{:02x}:{:02x}.{:x}\":{{\"vendor\":\"8086\",\"device\":\"0001\",\
             \"class\":\"000000\",\"revision\":\"00\",\"config\":{{\"len\":{len},\"hex\":\"{hex}\"}}}}",
            i >> 16,
            (i >> 8) & 0xff,
            (i >> 3) & 0x1f,
            i & 7
        );
    }
    s.push_str("}}}\n");
    s
}

fn cpus(n: usize) -> String {
    let mut s = String::with_capacity(n * 24 + 200);
    s.push_str(HEAD);
    s.push_str(",\n \"msr\": {\"selection\": \"known\", \"cpus\": {");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"{i}\":{{\"values\":{{\"0x10\":\"0x1\"}}}}");
    }
    s.push_str("}}}\n");
    s
}

/// Run `regdrift ARGS`: exit status, stderr, and peak RSS in KiB when /usr/bin/time is
/// there to measure it.
fn run_measured(args: &[&OsStr]) -> (Option<i32>, String, Option<u64>) {
    let bin = Std::cargo_bin("regdrift").unwrap().get_program().to_owned();
    let timed = Path::new("/usr/bin/time").exists();
    let out = if timed {
        Std::new("/usr/bin/time")
            .arg("-v")
            .arg(&bin)
            .args(args)
            .output()
            .unwrap()
    } else {
        Std::new(&bin).args(args).output().unwrap()
    };
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok());
    if !timed {
        eprintln!("/usr/bin/time is not installed: peak RSS not measured");
    }
    (out.status.code(), err, rss)
}

/// The refusal of `text` (written to `name`) by `show`: exit 2, an error naming the file
/// and containing `what`, and a peak RSS within `budget_mib` MiB beyond the file itself.
fn refused(dir: &Path, name: &str, text: &str, what: &str, per_file_byte: u64, budget_mib: u64) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    let (code, err, rss) = run_measured(&[OsStr::new("show"), p.as_os_str()]);
    assert_eq!(code, Some(2), "{name}: {err}");
    assert!(
        err.contains(&format!("regdrift: {}", p.display())) && err.contains(what),
        "{name}: {err}"
    );
    if let Some(kib) = rss {
        let file_mib = text.len() as u64 >> 20;
        eprintln!(
            "{name}: {} MiB file refused with a peak RSS of {} MiB",
            file_mib,
            kib >> 10
        );
        assert!(
            kib >> 10 <= file_mib * per_file_byte + budget_mib,
            "{name}: peak RSS {} MiB for a {file_mib} MiB file",
            kib >> 10
        );
    }
}

#[test]
fn a_million_devices_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let text = devices(1_000_000, 0, 0);
    refused(
        dir.path(),
        "devices.json",
        &text,
        &format!("more than {MAX_PCI_DEVICES} PCI devices: refused"),
        2,
        64,
    );
}

#[test]
fn a_million_cpus_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let text = cpus(1_000_000);
    refused(
        dir.path(),
        "cpus.json",
        &text,
        &format!("more than {MAX_CPUS} CPUs: refused"),
        2,
        64,
    );
    // The limit is the limit: MAX_CPUS parse.
    let s = Snapshot::from_json(&cpus(MAX_CPUS)).unwrap();
    assert_eq!(s.msr.unwrap().cpus.len(), MAX_CPUS);
}

#[test]
fn config_space_cannot_outgrow_the_file() {
    // 65000 devices that each claim 4 KiB with no bytes: 7 MiB of JSON standing for 254 MiB.
    let dir = tempfile::tempdir().unwrap();
    let text = devices(65_000, 4096, 0);
    refused(
        dir.path(),
        "claims.json",
        &text,
        &format!("config spaces claim more than {CONFIG_BYTES_PER_JSON_BYTE} bytes"),
        // The budget itself, the text, and the parse.
        CONFIG_BYTES_PER_JSON_BYTE as u64 + 2,
        64,
    );
    // Real snapshots stay inside the budget: 2000 devices of 4 KiB of which only the
    // 64-byte header is not zero (the sparsest a real device gets) parse.
    let s = Snapshot::from_json(&devices(2000, 4096, 64)).unwrap();
    assert_eq!(s.pci.unwrap().devices.len(), 2000);
}

#[test]
fn a_4_gib_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.json");
    let f = fs::File::create(&p).unwrap();
    f.set_len(4 << 30).unwrap(); // sparse: no disk used
    drop(f);
    let (code, err, rss) = run_measured(&[OsStr::new("show"), p.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "regdrift: {}: larger than 128 MiB: refused",
            p.display()
        )),
        "{err}"
    );
    if let Some(kib) = rss {
        eprintln!(
            "4 GiB sparse file refused with a peak RSS of {} MiB",
            kib >> 10
        );
        assert!(kib < 64 << 10, "{kib} KiB");
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep =
        |open: &str, close: &str| format!("{}{}", open.repeat(100_000), close.repeat(100_000));
    for (what, expect, text) in [
        ("arrays", Some("recursion limit exceeded"), deep("[", "]")),
        // Skipped by the header check without recursion: refused for what is missing.
        (
            "objects",
            Some("not a snapshot"),
            deep("{\"a\":", "}").replacen("}", "1}", 1),
        ),
        (
            "in meta",
            // An unknown field of `meta` is skipped, without recursion: accepted.
            None,
            HEAD.replacen(
                "\"meta\": {",
                &format!("\"meta\": {{\"x\": {},", deep("[", "]")),
                1,
            ) + "}",
        ),
        (
            "in format",
            Some("recursion limit exceeded"),
            format!("{{\"format\": {}, \"version\": 1}}", deep("[", "]")),
        ),
        (
            "in a problem",
            // Typed fields stop at the first bracket they do not expect.
            Some("invalid type: sequence"),
            HEAD.replacen(
                "\"meta\": {",
                &format!("\"meta\": {{\"problems\": [{}],", deep("[", "]")),
                1,
            ) + "}",
        ),
    ] {
        match (Snapshot::from_json(&text), expect) {
            (Err(e), Some(expect)) => assert!(e.contains(expect), "{what}: {e}"),
            (Ok(_), None) => {}
            (r, _) => panic!("{what}: {:?}", r.map(|_| "parsed")),
        }
    }
    // Through the CLI, with the file named.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("deep.json");
    fs::write(
        &p,
        format!("{{\"format\": {}, \"version\": 1}}", deep("[", "]")),
    )
    .unwrap();
    let (code, err, _) = run_measured(&[OsStr::new("diff"), p.as_os_str(), p.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&p.display().to_string()) && err.contains("recursion limit"),
        "{err}"
    );
}

#[test]
fn a_recording_claiming_a_4_gib_record_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.rec");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"regdrift-recording\0\0");
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[1, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(&p, &bytes).unwrap();
    let frame = format!("{}@0", p.display());
    for args in [
        vec![OsStr::new("replay"), p.as_os_str(), OsStr::new("--list")],
        vec![OsStr::new("show"), OsStr::new(&frame)],
    ] {
        let (code, err, rss) = run_measured(&args);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&p.display().to_string())
                && err.contains("record at byte 24 claims 4294967295 bytes"),
            "{err}"
        );
        if let Some(kib) = rss {
            eprintln!("4 GiB record refused with a peak RSS of {} MiB", kib >> 10);
            assert!(kib < 64 << 10, "{kib} KiB");
        }
    }
}
