//! Faults through the library and the CLI: a PCI device that disappears between listing
//! and reading, permission denied on MSR devices (as an unprivileged user), a live
//! machine without the msr module, and exit status 2 with the file named for every
//! command given unreadable or garbage input.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use regdrift::capture::{capture, CaptureOptions, Sources};
use regdrift::fixture::FixtureRoot;
use regdrift::regdb::RegDb;
use regdrift::snapshot::Bdf;

fn regdrift() -> Command {
    Command::cargo_bin("regdrift").unwrap()
}

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn device_dir(root: &Path, b: Bdf) -> PathBuf {
    root.join(format!("sys/devices/pci{:04x}:{:02x}/{b}", b.domain, b.bus))
}

fn pci_root(root: &Path) -> FixtureRoot {
    let f = FixtureRoot::new(root).unwrap();
    for (i, name) in ["0000:00:02.0", "0000:00:14.0", "0000:00:1f.2"]
        .iter()
        .enumerate()
    {
        f.pci_device(
            bdf(name),
            &common::simple_device(0x8086, 0x1000 + i as u16, 0x0c0330),
            Some("xhci_hcd"),
        )
        .unwrap();
    }
    f
}

#[test]
fn a_device_whose_config_vanished_is_reported_and_the_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _f = pci_root(root);
    // The config file is gone (a dangling link stands for sysfs removing it between the
    // listing and the open).
    let gone = device_dir(root, bdf("0000:00:14.0")).join("config");
    fs::remove_file(&gone).unwrap();
    symlink("config.removed", &gone).unwrap();
    // A whole device directory is gone while its bus link is still listed.
    fs::remove_dir_all(device_dir(root, bdf("0000:00:02.0"))).unwrap();

    let mut o = CaptureOptions::new(root);
    o.sources = Sources::parse("pci").unwrap();
    let s = capture(&o, RegDb::embedded()).unwrap();
    let devs = &s.pci.as_ref().unwrap().devices;
    assert_eq!(
        devs.keys().map(|b| b.to_string()).collect::<Vec<_>>(),
        vec!["0000:00:1f.2"]
    );
    let vanished: Vec<_> = s
        .meta
        .problems
        .iter()
        .filter(|p| p.source == "pci" && p.reason == "device vanished during capture")
        .filter_map(|p| p.path.clone())
        .collect();
    assert_eq!(vanished.len(), 2, "{:#?}", s.meta.problems);
    assert!(vanished.iter().any(|p| p.ends_with("0000:00:14.0/config")));
    assert!(vanished.iter().any(|p| p.ends_with("devices/0000:00:02.0")));

    // Through the CLI: the capture succeeds and says what vanished.
    let out = regdrift()
        .args(["capture", "--only", "pci", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0000:00:14.0/config: device vanished during capture"),
        "{err}"
    );
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["pci"]["devices"].as_object().unwrap().len(), 1);
}

#[test]
fn a_live_machine_without_the_msr_module_is_told_to_load_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = FixtureRoot::new(dir.path()).unwrap();
    f.cpus_online("0-1").unwrap();
    // No dev/cpu/N/msr at all: the module is not loaded.
    let mut o = CaptureOptions::new(dir.path());
    o.sources = Sources::parse("msr").unwrap();
    o.live = Some(true);
    let s = capture(&o, RegDb::embedded()).unwrap();
    let msr_problems = |s: &regdrift::snapshot::Snapshot| -> Vec<String> {
        s.meta
            .problems
            .iter()
            .filter(|p| p.source == "msr")
            .map(|p| p.reason.clone())
            .collect()
    };
    let reasons = msr_problems(&s);
    assert_eq!(
        reasons,
        vec!["no MSR device: load the msr module (modprobe msr)".to_string(); 2],
        "{:#?}",
        s.meta.problems
    );
    assert!(s.msr.unwrap().cpus.is_empty());
    // The same tree given as a fixture is not a live machine: no advice to modprobe.
    o.live = None;
    let s = capture(&o, RegDb::embedded()).unwrap();
    assert!(
        s.meta
            .problems
            .iter()
            .all(|p| !p.reason.contains("modprobe")),
        "{:#?}",
        s.meta.problems
    );
    // No CPU at all on a live machine: the same advice, once.
    fs::remove_file(dir.path().join("sys/devices/system/cpu/online")).unwrap();
    o.live = Some(true);
    let s = capture(&o, RegDb::embedded()).unwrap();
    assert_eq!(
        msr_problems(&s),
        vec!["no CPUs found: load the msr module (modprobe msr)".to_string()]
    );
}

/// Make `path` and everything under it readable (and directories searchable) by anyone,
/// except the MSR devices, which stay 0600 as on a real machine.
fn open_up(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = if meta.is_dir() {
        0o755
    } else if path.file_name().is_some_and(|n| n == "msr") {
        0o600
    } else {
        0o644
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    if meta.is_dir() {
        for e in fs::read_dir(path).unwrap() {
            open_up(&e.unwrap().path());
        }
    }
}

#[test]
fn permission_denied_on_msr_devices_is_reported_not_fatal() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the capture as an unprivileged user");
        return;
    }
    if Std::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    // The binary, where user nobody can run it.
    let bin = dir.path().join("regdrift");
    fs::copy(Std::cargo_bin("regdrift").unwrap().get_program(), &bin).unwrap();
    open_up(dir.path());
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Std::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["capture", "--only", "msr", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for cpu in 0..common::CPUS {
        assert!(
            err.contains(&format!(
                "dev/cpu/{cpu}/msr: permission denied: reading MSRs needs root (CAP_SYS_RAWIO)"
            )),
            "{err}"
        );
    }
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        snap["msr"]["cpus"].as_object().unwrap().is_empty(),
        "{snap}"
    );
    // As root, the same tree reads.
    let out = regdrift()
        .args(["capture", "--only", "msr", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        snap["msr"]["cpus"].as_object().unwrap().len(),
        common::CPUS as usize
    );
}

/// Run regdrift with `args`: it must exit 2 with one `regdrift: ` line naming `names`.
fn fails_naming(args: &[&std::ffi::OsStr], names: &[&Path]) {
    let out = regdrift().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("regdrift: "), "{args:?}: {err}");
    for n in names {
        assert!(
            err.contains(&n.display().to_string()),
            "{args:?}: {} not named in {err}",
            n.display()
        );
    }
}

#[test]
fn every_command_exits_2_naming_the_file_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("good.json");
    regdrift()
        .args(["capture", "--only", "pci", "--root"])
        .arg({
            let r = d.join("root");
            pci_root(&r);
            r
        })
        .arg("-o")
        .arg(&good)
        .assert()
        .success();
    let missing = d.join("missing.json");
    let a_dir = d.join("a-directory");
    fs::create_dir(&a_dir).unwrap();
    let binary = d.join("binary.bin");
    fs::write(&binary, [0xffu8, 0xfe, 0, 1, 2, 0x80, 0x1b]).unwrap();
    let garbage = d.join("garbage.txt");
    fs::write(&garbage, "hello, this is not a dump of anything\n").unwrap();
    let broken = d.join("broken.json");
    fs::write(
        &broken,
        fs::read_to_string(&good)
            .unwrap()
            .replace("\"vendor\"", "\"vendr\""),
    )
    .unwrap();
    let no_dir_out = d.join("no/such/dir/out.json");
    let bad: [&Path; 5] = [&missing, &a_dir, &binary, &garbage, &broken];

    let os = |s: &'static str| std::ffi::OsStr::new(s);
    for b in bad {
        let b = b.as_os_str();
        let name = [Path::new(b)];
        fails_naming(&[os("show"), b], &name);
        fails_naming(&[os("show"), os("--format"), os("json"), b], &name);
        fails_naming(&[os("diff"), b, good.as_os_str()], &name);
        fails_naming(&[os("diff"), good.as_os_str(), b], &name);
        fails_naming(&[os("replay"), b, os("--list")], &name);
        fails_naming(&[os("replay"), b, os("--export-frame"), os("0")], &name);
        fails_naming(
            &[
                os("record"),
                os("-o"),
                d.join("r.rec").as_os_str(),
                os("--from"),
                b,
            ],
            &name,
        );
        fails_naming(&[os("--regdb"), b, os("show"), good.as_os_str()], &name);
        fails_naming(&[os("--owners"), b, os("show"), good.as_os_str()], &name);
        for kind in ["lspci", "mtrr", "msr", "auto"] {
            if b == broken.as_os_str() && kind == "auto" {
                continue; // a JSON snapshot with a bad field: `show` covers it
            }
            fails_naming(&[os("import"), os(kind), b], &name);
        }
    }
    // Appending to something that is not a recording.
    for b in [&binary, &garbage, &good] {
        fails_naming(
            &[
                os("record"),
                os("--append"),
                os("-o"),
                b.as_os_str(),
                good.as_os_str(),
            ],
            &[b],
        );
    }
    // Outputs that cannot be written.
    let out = no_dir_out.as_os_str();
    fails_naming(
        &[os("show"), good.as_os_str(), os("-o"), out],
        &[&no_dir_out],
    );
    fails_naming(
        &[
            os("diff"),
            good.as_os_str(),
            good.as_os_str(),
            os("-o"),
            out,
        ],
        &[&no_dir_out],
    );
    fails_naming(
        &[
            os("capture"),
            os("--only"),
            os("pci"),
            os("--root"),
            d.join("root").as_os_str(),
            os("-o"),
            out,
        ],
        &[&no_dir_out],
    );
    fails_naming(
        &[os("record"), os("-o"), out, os("--from"), good.as_os_str()],
        &[&no_dir_out],
    );
    // A root that is not there.
    fails_naming(
        &[os("capture"), os("--root"), missing.as_os_str()],
        &[&missing],
    );
}
