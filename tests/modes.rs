//! Files regdrift creates are never world-writable, whatever the umask: snapshots
//! (`capture -o`, `import -o`, `replay --export-frame -o`, `show --format json -o`),
//! reports (`diff -o`) and recordings (`record -o`, `record --append`).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command as Std;

use assert_cmd::cargo::CommandCargoExt;

/// Run regdrift under `umask`; it must succeed (or exit 1, `diff`'s "diverges").
fn run_with_umask(umask: &str, args: &[&std::ffi::OsStr]) {
    let bin = Std::cargo_bin("regdrift").unwrap().get_program().to_owned();
    let out = Std::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(bin)
        .args(args)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn outputs_are_never_world_writable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("root");
    common::cold_machine(&root, 0);
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    for (umask, expect) in [("000", 0o644), ("022", 0o644), ("077", 0o600)] {
        let out = d.join(format!("u{umask}"));
        fs::create_dir(&out).unwrap();
        let snap = out.join("snap.json");
        let rec = out.join("s.rec");
        let files = [
            snap.clone(),
            out.join("report.txt"),
            out.join("report.md"),
            out.join("report.json"),
            out.join("imported.json"),
            out.join("frame.json"),
            out.join("shown.json"),
            rec.clone(),
            out.join("appended.rec"),
        ];
        run_with_umask(
            umask,
            &[
                os("capture"),
                os("--root"),
                root.as_os_str(),
                os("-o"),
                snap.as_os_str(),
            ],
        );
        for f in &files[1..4] {
            run_with_umask(
                umask,
                &[
                    os("diff"),
                    snap.as_os_str(),
                    snap.as_os_str(),
                    os("-o"),
                    f.as_os_str(),
                ],
            );
        }
        let dump = d.join("mtrr.txt");
        fs::write(
            &dump,
            "reg00: base=0x000000000 (    0MB), size= 2048MB, count=1: write-back\n",
        )
        .unwrap();
        run_with_umask(
            umask,
            &[
                os("import"),
                os("mtrr"),
                dump.as_os_str(),
                os("-o"),
                files[4].as_os_str(),
            ],
        );
        run_with_umask(
            umask,
            &[
                os("record"),
                os("-o"),
                rec.as_os_str(),
                os("--from"),
                snap.as_os_str(),
                snap.as_os_str(),
            ],
        );
        run_with_umask(
            umask,
            &[
                os("replay"),
                rec.as_os_str(),
                os("--export-frame"),
                os("1"),
                os("-o"),
                files[5].as_os_str(),
            ],
        );
        run_with_umask(
            umask,
            &[
                os("show"),
                os("--format"),
                os("json"),
                snap.as_os_str(),
                os("-o"),
                files[6].as_os_str(),
            ],
        );
        for _ in 0..2 {
            run_with_umask(
                umask,
                &[
                    os("record"),
                    os("--append"),
                    os("-o"),
                    files[8].as_os_str(),
                    snap.as_os_str(),
                ],
            );
        }
        for f in &files {
            let m = mode(f);
            assert_eq!(m & 0o002, 0, "umask {umask}: {} is {m:o}", f.display());
            assert_eq!(m, expect, "umask {umask}: {} is {m:o}", f.display());
        }
        // Replacing a file that was world-writable leaves a file that is not.
        fs::set_permissions(&snap, fs::Permissions::from_mode(0o666)).unwrap();
        run_with_umask(
            umask,
            &[
                os("capture"),
                os("--root"),
                root.as_os_str(),
                os("-o"),
                snap.as_os_str(),
            ],
        );
        assert_eq!(mode(&snap) & 0o002, 0, "umask {umask}: replaced snapshot");
    }
}
