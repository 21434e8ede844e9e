//! Hostile files: snapshots, dumps and recordings crafted with terminal escape sequences,
//! C1 controls and bidirectional overrides in every string a user sees (driver names,
//! command line, host name, modules, problem reasons, MSR "unreadable" reasons, file
//! names, /proc/mtrr text, marks). Whatever regdrift prints — text, Markdown, JSON, on
//! standard output, standard error or into a file — carries none of them raw.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use regdrift::snapshot::{
    CpuMsrs, Meta, MsrSection, MtrrSection, Origin, PciDevice, PciSection, Problem, Snapshot,
};

fn regdrift() -> Command {
    Command::cargo_bin("regdrift").unwrap()
}

/// Every kind of payload: CSI, OSC (window title, clipboard), C1 CSI, bidi overrides.
const EVIL: [&str; 6] = [
    "\x1b[2J\x1b[H",
    "\x1b]0;owned\x07",
    "\x1b]52;c;cm0gLXJmIH4=\x07",
    "\u{9b}31m",
    "\u{202e}gnp.exe\u{202c}",
    "\u{2066}\u{200f}\x7f\r",
];

fn evil(tag: &str, i: usize) -> String {
    format!("{tag}{}{tag}", EVIL[i % EVIL.len()])
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// No ESC byte, no C1 control, no bidi override, no other control than newline and tab.
fn assert_inert(what: &str, bytes: &[u8]) {
    if let Some(at) = bytes.iter().position(|&b| b == 0x1b) {
        let from = at.saturating_sub(60);
        panic!(
            "{what}: ESC at byte {at}: {:?}",
            String::from_utf8_lossy(&bytes[from..(at + 20).min(bytes.len())])
        );
    }
    let text = String::from_utf8_lossy(bytes);
    for (i, c) in text.char_indices() {
        let bad = (c.is_control() && c != '\n' && c != '\t') || is_bidi(c);
        assert!(
            !bad,
            "{what}: {c:?} at byte {i}: {:?}",
            text.get(i.saturating_sub(60)..(i + 20).min(text.len()))
        );
    }
}

fn run(what: &str, cmd: &mut Command) -> (i32, Vec<u8>) {
    let out = cmd.output().unwrap();
    assert_inert(&format!("{what} (stdout)"), &out.stdout);
    assert_inert(&format!("{what} (stderr)"), &out.stderr);
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn config(command: u8) -> Vec<u8> {
    let mut c = vec![0u8; 64];
    c[0..4].copy_from_slice(&[0x86, 0x80, 0x29, 0x3b]);
    c[4] = command;
    c[8] = 0x06;
    c[9..12].copy_from_slice(&[0x01, 0x06, 0x01]);
    c
}

/// A snapshot with a hostile string in every free-text field; `boot` changes what a diff
/// of two of them finds (MSR values, PCI config, driver, modules, problems).
fn hostile_snapshot(boot: usize) -> Snapshot {
    let mut s = Snapshot::new(Origin::Capture {
        root: evil("/root", boot),
    });
    s.meta = Meta {
        regdrift_version: evil("0.1", boot + 1),
        captured_at: Some(evil("2026-01-01T00:00:00Z", boot + 2)),
        origin: s.meta.origin.clone(),
        hostname: Some(evil("host", boot + 3)),
        kernel_release: Some(evil("6.1", boot + 4)),
        cmdline: Some(evil("quiet", boot + 5)),
        boot_id: Some(evil("b00t", boot)),
        modules: Some(vec![
            evil("msr", boot),
            evil(&format!("mod{boot}"), boot + 1),
        ]),
        cpus_online: Some(evil("0-1", boot + 2)),
        problems: vec![
            Problem {
                source: evil("msr", boot),
                path: Some(evil("/dev/cpu/1/msr", boot + 1)),
                reason: evil("EIO", boot + 2),
            },
            Problem {
                source: "pci".into(),
                path: None,
                reason: evil(&format!("gone {boot}"), boot + 3),
            },
        ],
    };
    let mut cpus = BTreeMap::new();
    for cpu in 0..2u32 {
        let mut c = CpuMsrs::default();
        c.values.insert(0x1fc, 0x2404_005f - 2 * boot as u64);
        c.values.insert(0x38f, boot as u64);
        c.values.insert(0x1a0, 0x85_0089);
        c.unreadable.insert(0xe2, evil("EIO", boot + cpu as usize));
        c.unreadable
            .insert(0x199 + boot as u32, evil("short read", boot + 4));
        c.phys_bits = Some(39);
        cpus.insert(cpu, c);
    }
    s.msr = Some(MsrSection {
        selection: evil("known", boot),
        cpus,
    });
    s.mtrr = Some(MtrrSection {
        phys_bits: Some(39),
        proc_mtrr: Some(format!(
            "reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n\
             reg01: base=0x0c0000000 ( 3072MB), size=  256MB, count={}: {}\n",
            boot + 1,
            evil("uncachable", boot)
        )),
    });
    let mut devices = BTreeMap::new();
    devices.insert(
        "0000:00:1f.2".parse().unwrap(),
        PciDevice {
            vendor: 0x8086,
            device: 0x3b29,
            class: 0x010601,
            revision: 0,
            subsystem_vendor: None,
            subsystem_device: None,
            driver: Some(evil("ahci", boot + 1)),
            config: config(0x06 + boot as u8),
            config_note: Some(evil("not root: 64 bytes", boot + 5)),
            vanished: boot == 1,
        },
    );
    s.pci = Some(PciSection { devices });
    s
}

/// Write the two hostile snapshots under names that are themselves hostile.
fn hostile_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("cold\x1b]0;x\x07.json");
    let b = dir.join("kexec\u{202e}nosj.json");
    fs::write(&a, hostile_snapshot(0).to_json()).unwrap();
    fs::write(&b, hostile_snapshot(1).to_json()).unwrap();
    (a, b)
}

#[test]
fn snapshot_files_carry_no_raw_escape() {
    let text = hostile_snapshot(0).to_json();
    assert_inert("snapshot JSON", text.as_bytes());
    // ... and still mean the same.
    assert_eq!(Snapshot::from_json(&text).unwrap(), hostile_snapshot(0));
}

#[test]
fn show_is_inert_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = hostile_pair(dir.path());
    for f in [&a, &b] {
        for format in ["text", "json"] {
            let (code, out) = run(
                &format!("show --format {format}"),
                regdrift().args(["show", "--format", format]).arg(f),
            );
            assert_eq!(code, 0);
            assert!(!out.is_empty());
        }
    }
    // The text does show the fields, escaped.
    let (_, out) = run("show", regdrift().arg("show").arg(&a));
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("cmdline: quiet\\u{2066}\\u{200f}\\x7f\\x0dquiet"),
        "{text}"
    );
    assert!(text.contains("Kernel driver in use: ahci"), "{text}");
}

#[test]
fn diff_is_inert_in_every_format_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = hostile_pair(dir.path());
    for format in ["text", "markdown", "json"] {
        for all in [false, true] {
            let mut cmd = regdrift();
            cmd.args(["diff", "--format", format]).arg(&a).arg(&b);
            if all {
                cmd.arg("--all");
            }
            let (code, out) = run(&format!("diff --format {format} (all: {all})"), &mut cmd);
            assert_eq!(code, 1, "the pair diverges");
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("ahci"), "{format}: {text}");
        }
        let o = dir.path().join(format!("report\x1b[31m.{format}"));
        let (code, _) = run(
            &format!("diff -o ({format})"),
            regdrift()
                .args(["diff", "--format", format])
                .arg(&a)
                .arg(&b)
                .arg("-o")
                .arg(&o),
        );
        assert_eq!(code, 1);
        assert_inert(&format!("diff -o {format}"), &fs::read(&o).unwrap());
    }
    // The JSON report keeps the strings, escaped the JSON way.
    let out = regdrift()
        .args(["diff", "--format", "json"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.to_string().contains("ahci\\u001b]52;c;"), "{v}");
}

#[test]
fn hostile_dumps_import_and_show_inert() {
    let dir = tempfile::tempdir().unwrap();
    let lspci = dir.path().join("lspci\x1b[2J.txt");
    fs::write(
        &lspci,
        "00:1f.2 SATA controller\x1b]0;owned\x07 [0106]: Intel \u{202e}evil [8086:3b29]\n\
         \tKernel driver in use: ahci\x1b[31m\u{9b}1m\n\
         \tKernel modules: ahci\u{202e}\n\
         00: 86 80 29 3b 06 00 10 00 00 01 06 01 00 00 00 00\n\
         10: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
         20: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
         30: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n",
    )
    .unwrap();
    let rdmsr = dir.path().join("rdmsr\u{202e}.txt");
    fs::write(
        &rdmsr,
        "$ rdmsr -a 0x1fc\n\
         CPU 0: 2404005f\n\
         CPU 1: 2404005f\n\
         cpu2 0xe2 EIO\x1b]0;t\x07\n\
         cpu3 0x1fc \u{9b}2J\n",
    )
    .unwrap();
    let mtrr = dir.path().join("mtrr\u{9b}.txt");
    fs::write(
        &mtrr,
        "reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n\
         reg01: base=0x080000000 ( 2048MB), size=  512MB, count=1: write-back\x1b[31m\n",
    )
    .unwrap();
    let snap = dir.path().join("snap.json");
    fs::write(&snap, hostile_snapshot(0).to_json()).unwrap();
    for (kind, f) in [
        ("lspci", &lspci),
        ("msr", &rdmsr),
        ("mtrr", &mtrr),
        ("auto", &lspci),
        ("auto", &rdmsr),
        ("auto", &mtrr),
    ] {
        // Imported, or refused: either way nothing raw is printed.
        let (code, _) = run(
            &format!("import {kind} {}", f.display()),
            regdrift().args(["import", kind]).arg(f),
        );
        assert!(code == 0 || code == 2, "{kind}: {code}");
        let (code, _) = run(
            &format!("show {}", f.display()),
            regdrift().arg("show").arg(f),
        );
        assert!(code == 0 || code == 2, "{kind}: {code}");
        for format in ["text", "markdown", "json"] {
            let (code, _) = run(
                &format!("diff {format} {}", f.display()),
                regdrift()
                    .args(["diff", "--format", format])
                    .arg(&snap)
                    .arg(f),
            );
            assert!(code == 0 || code == 1 || code == 2, "{kind}: {code}");
        }
    }
    // The lspci dump did import, with its driver name kept and shown escaped.
    let (code, out) = run("show lspci", regdrift().arg("show").arg(&lspci));
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("ahci\\x1b[31m\\x9b1m"), "{text}");
}

#[test]
fn recordings_list_and_export_inert() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = hostile_pair(dir.path());
    let rec = dir.path().join("s\x1b[1m.rec");
    let (code, _) = run(
        "record --from",
        regdrift()
            .arg("record")
            .arg("-o")
            .arg(&rec)
            .arg("--mark")
            .arg("cold\x1b]0;mark\x07,kexec\u{202e}")
            .arg("--from")
            .arg(&a)
            .arg(&b),
    );
    assert_eq!(code, 0);
    let (code, out) = run(
        "replay --list",
        regdrift().arg("replay").arg(&rec).arg("--list"),
    );
    assert_eq!(code, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("cold\\x1b]0;mark\\x07"), "{text}");
    let (code, out) = run(
        "replay --export-frame",
        regdrift()
            .arg("replay")
            .arg(&rec)
            .args(["--export-frame", "1"]),
    );
    assert_eq!(code, 0);
    let back = Snapshot::from_json(std::str::from_utf8(&out).unwrap()).unwrap();
    assert_eq!(back, hostile_snapshot(1));
    for frame in ["0", "1"] {
        let arg = format!("{}@{frame}", rec.display());
        let (code, _) = run("show FILE.rec@N", regdrift().arg("show").arg(&arg));
        assert_eq!(code, 0);
    }
}

#[test]
fn errors_about_hostile_files_are_inert_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = hostile_snapshot(0).to_json();
    let cases = [
        (
            "bad value",
            base.replace("\"0x1fc\": \"0x", "\"0x1fc\": \"\\u001b[2J\\u009b0x"),
        ),
        (
            "bad key",
            base.replacen("\"0x1fc\"", "\"\\u001b]0;k\\u0007\"", 1),
        ),
        (
            "other format",
            base.replace("regdrift-snapshot", "evil\\u001b[31m\\u202e"),
        ),
        (
            "unknown field",
            base.replacen("\"meta\"", "\"\\u001b]0;f\\u0007\": 1, \"meta\"", 1),
        ),
        ("raw escapes", "\x1b[2J\u{9b}\u{202e} not json".to_string()),
    ];
    for (what, text) in cases {
        let p = dir.path().join(format!("{what}\x1b[31m.json"));
        fs::write(&p, &text).unwrap();
        for args in [vec!["show"], vec!["diff"]] {
            let mut cmd = regdrift();
            cmd.args(&args).arg(&p);
            if args[0] == "diff" {
                cmd.arg(&p);
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{what}");
            assert_inert(what, &out.stderr);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("{what}\\x1b[31m.json")),
                "{what}: {err}"
            );
        }
    }
}
