//! End to end: the real binary in a real terminal (tmux), driven with send-keys and read
//! with capture-pane. Needs tmux (`.ci/run` installs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use regdrift::atomic::Output as Out;
use regdrift::snapshot::{Bdf, CpuMsrs, MsrSection, Origin, PciDevice, PciSection, Snapshot};

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        let socket = format!("regdrift-test-{tag}-{}", std::process::id());
        let t = Tmux { socket };
        let v = t.raw(&["-V"]);
        assert!(
            v.status.success(),
            "tmux is needed for this test (.ci/run installs it)"
        );
        t
    }

    fn raw(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .output()
            .expect("tmux runs (install it: .ci/run does)")
    }

    fn run(&self, args: &[&str]) -> String {
        let o = self.raw(args);
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A detached session of `w`×`h` running `cmd` under sh, kept after it exits.
    fn start(&self, w: u16, h: u16, cmd: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            "sh",
            "-c",
            cmd,
        ]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Wait until the screen satisfies `pred`; panic with the screen after 20 s.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alternate_on(&self) -> bool {
        self.run(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn pane_pid(&self) -> i32 {
        self.run(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.raw(&["kill-server"]);
    }
}

/// The children of `pid`, from /proc.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|r| r.1) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn snapshot(kernel: &str, c1e: u64, command: u16, driver: Option<&str>) -> Snapshot {
    let mut s = Snapshot::new(Origin::Capture { root: "/".into() });
    s.meta.kernel_release = Some(kernel.into());
    let mut cpus = BTreeMap::new();
    for cpu in 0..4 {
        let mut c = CpuMsrs::default();
        c.values.insert(0x1a0, 0x850089);
        c.values.insert(0x1fc, c1e);
        c.values.insert(0x10, 12345 + cpu as u64 + c1e);
        cpus.insert(cpu, c);
    }
    s.msr = Some(MsrSection {
        selection: "known".into(),
        cpus,
    });
    let mut config = vec![0u8; 256];
    config[..4].copy_from_slice(&[0x86, 0x80, 0x29, 0x3b]);
    config[4..6].copy_from_slice(&command.to_le_bytes());
    let mut devices = BTreeMap::new();
    devices.insert(
        Bdf {
            domain: 0,
            bus: 0,
            device: 0x1f,
            function: 2,
        },
        PciDevice {
            vendor: 0x8086,
            device: 0x3b29,
            class: 0x010601,
            driver: driver.map(str::to_string),
            config,
            ..PciDevice::default()
        },
    );
    s.pci = Some(PciSection { devices });
    s
}

fn write_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("cold.json");
    let b = dir.join("kexec.json");
    snapshot("6.1.0-cold", 0x2, 0x0407, Some("ahci"))
        .save(&Out::File(a.clone()))
        .unwrap();
    snapshot("6.1.0-kexec", 0x0, 0x0400, None)
        .save(&Out::File(b.clone()))
        .unwrap();
    (a, b)
}

fn explore_cmd(a: &Path, b: &Path) -> String {
    format!(
        "'{}' explore '{}' '{}'; echo \"EXIT=$?\"; stty -a; sleep 60",
        env!("CARGO_BIN_EXE_regdrift"),
        a.display(),
        b.display()
    )
}

/// The shell printed the exit status and `stty -a` after regdrift ended.
fn exited(s: &str) -> bool {
    s.contains("EXIT=") && s.contains("icanon") && s.contains("echo")
}

/// `stty -a` lists `icanon` and `echo` (not `-icanon`, `-echo`): cooked mode is back.
fn assert_cooked(screen: &str) {
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(words.contains(&"icanon"), "icanon not restored:\n{screen}");
    assert!(words.contains(&"echo"), "echo not restored:\n{screen}");
    assert!(!words.contains(&"-icanon") && !words.contains(&"-echo"));
}

#[test]
fn opens_two_snapshots_searches_and_quits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = write_pair(dir.path());
    let t = Tmux::new("search");
    t.start(100, 30, &explore_cmd(&a, &b));
    let s = t.wait("the first divergence", |s| s.contains("divergences"));
    assert!(t.alternate_on(), "runs on the alternate screen");
    assert!(s.contains("MSRs (4 CPUs)"), "{s}");
    assert!(s.contains("kexec.json"), "{s}");

    t.keys(&["/"]);
    t.keys(&["-l", "power"]);
    let s = t.wait("the search to jump", |s| {
        s.contains("/power") && s.contains("→ MSR_IA32_POWER_CTL")
    });
    assert!(s.contains("MSR_IA32_POWER_CTL (0x1fc) · cpu 0"), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait("the owner pane", |s| s.contains("intel_idle"));
    assert!(s.contains("restores: no"), "{s}");
    assert!(s.contains("C1E_PROMOTION"), "{s}");

    // n walks on to the PCI divergences.
    t.keys(&["n"]);
    let s = t.wait("the next divergence", |s| s.contains("2/3 divergences"));
    assert!(s.contains("0000:00:1f.2"), "{s}");

    // Export from the TUI.
    t.keys(&["e"]);
    t.wait("the export prompt", |s| s.contains("export to"));
    for _ in 0..30 {
        t.keys(&["BSpace"]);
    }
    let out = dir.path().join("report.md");
    t.keys(&["-l", out.to_str().unwrap()]);
    t.keys(&["Enter"]);
    t.wait("the export", |s| s.contains("exported to"));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("`0x1fc` MSR\\_IA32\\_POWER\\_CTL"), "{md}");

    t.keys(&["q"]);
    let s = t.wait("the exit", exited);
    assert!(s.contains("EXIT=0"), "{s}");
    assert_cooked(&s);
    assert!(!t.alternate_on(), "alternate screen left");
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = write_pair(dir.path());
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let t = Tmux::new(&format!("sig{sig}"));
        t.start(80, 24, &explore_cmd(&a, &b));
        t.wait("the TUI", |s| s.contains("divergences"));
        assert!(t.alternate_on());
        let kids = children(t.pane_pid());
        assert_eq!(kids.len(), 1, "one regdrift under the shell: {kids:?}");
        // SAFETY: kill(2) on a process this test started.
        assert_eq!(unsafe { libc::kill(kids[0], sig) }, 0);
        let s = t.wait("the exit", exited);
        assert!(s.contains(&format!("EXIT={code}")), "{s}");
        assert_cooked(&s);
        assert!(
            !t.alternate_on(),
            "alternate screen left after signal {sig}"
        );
    }
}

#[test]
fn resizes_to_80x24_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = write_pair(dir.path());
    let t = Tmux::new("resize");
    t.start(200, 60, &explore_cmd(&a, &b));
    let s = t.wait("the TUI", |s| s.contains("divergences"));
    assert!(s.lines().count() >= 59);
    t.run(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    let s = t.wait("the redraw at 80x24", |s| {
        s.lines().all(|l| l.chars().count() <= 80) && s.contains("? help")
    });
    assert!(s.contains("MSR_IA32_POWER_CTL"), "{s}");
    t.keys(&["q"]);
    let s = t.wait("the exit", exited);
    assert!(s.contains("EXIT=0"), "{s}");
}

#[test]
fn live_mode_refreshes_and_learns_what_moves() {
    use regdrift::fixture::FixtureRoot;
    let dir = tempfile::tempdir().unwrap();
    let root = FixtureRoot::new(dir.path().join("root")).unwrap();
    root.cpus_online("0-1").unwrap();
    root.meta("6.1.0-live", "quiet", "feedbeef-boot", "box")
        .unwrap();
    for cpu in 0..2 {
        root.msrs(cpu, &[(0x1fc, 2), (0x1a0, 0x850089)]).unwrap();
    }
    let rec = dir.path().join("live.rec");
    let t = Tmux::new("live");
    t.start(
        120,
        30,
        &format!(
            "'{}' explore --root '{}' --msrs 0x1a0,0x1fc --interval 200ms --record '{}'; \
             echo \"EXIT=$?\"; stty -a; sleep 60",
            env!("CARGO_BIN_EXE_regdrift"),
            root.path().display(),
            rec.display()
        ),
    );
    t.wait("a few refreshes", |s| {
        s.contains("refresh #3") || s.contains("refresh #4") || s.contains("refresh #5")
    });
    // Without --baseline the first capture is the baseline: nothing diverges yet.
    let s = t.screen();
    assert!(s.contains("base first capture"), "{s}");
    assert!(s.contains("no divergence shown"), "{s}");
    // A register changes on the running machine.
    root.msrs(1, &[(0x1a0, 0x850088)]).unwrap();
    let s = t.wait("the change", |s| s.contains("seen moving"));
    assert!(s.contains("1 divergence"), "{s}");
    assert!(s.contains("IA32_MISC_ENABLE"), "{s}");
    assert!(s.contains("rec "), "recording shown: {s}");
    // m marks the last recorded frame.
    t.keys(&["m"]);
    t.wait("the mark prompt", |s| {
        s.contains("mark the last recorded frame")
    });
    t.keys(&["-l", "changed"]);
    t.keys(&["Enter"]);
    t.wait("the mark", |s| s.contains("marked frame"));
    // One key leaves out what was seen moving.
    t.keys(&["M"]);
    t.wait("the filter", |s| {
        s.contains("left out what was seen moving")
    });
    t.keys(&["Escape"]);
    let s = t.wait("the counts", |s| s.contains("moving hidden"));
    assert!(s.contains("no divergence shown"), "{s}");
    t.keys(&["q"]);
    let s = t.wait("the exit", exited);
    assert!(s.contains("EXIT=0"), "{s}");
    assert_cooked(&s);
    // The session is a recording that replays, with the mark.
    let list = Command::new(env!("CARGO_BIN_EXE_regdrift"))
        .arg("replay")
        .arg(&rec)
        .arg("--list")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}");
    assert!(text.contains("changed"), "{text}");
}

#[test]
fn replays_a_recording_steps_and_finds_the_last_change() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = write_pair(dir.path());
    let rec = dir.path().join("lab.rec");
    let st = Command::new(env!("CARGO_BIN_EXE_regdrift"))
        .arg("record")
        .arg("--from")
        .arg(&a)
        .arg(&b)
        .args(["--mark", "cold,after-kexec", "-o"])
        .arg(&rec)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let t = Tmux::new("replay");
    t.start(
        100,
        30,
        &format!(
            "'{}' replay '{}'; echo \"EXIT=$?\"; stty -a; sleep 60",
            env!("CARGO_BIN_EXE_regdrift"),
            rec.display()
        ),
    );
    let s = t.wait("the first frame", |s| s.contains("frame 0/1 [cold]"));
    assert!(s.contains("no divergence"), "{s}");
    // → steps to the kexec frame; the divergences against frame 0 appear.
    t.keys(&["Right"]);
    let s = t.wait("the second frame", |s| {
        s.contains("frame 1/1 [after-kexec]") && s.contains("divergences")
    });
    assert!(s.contains("MSR_IA32_POWER_CTL"), "{s}");
    // L: when did the selected register last change? At the kexec frame.
    t.keys(&["L"]);
    let s = t.wait("the answer", |s| s.contains("last changed at"));
    assert!(s.contains("at frame 1 [after-kexec]"), "{s}");
    // ← back, p plays to the end.
    t.keys(&["Left"]);
    t.wait("frame 0", |s| s.contains("frame 0/1 [cold]"));
    t.keys(&["p"]);
    t.wait("the end", |s| s.contains("end of the recording"));
    t.keys(&["q"]);
    let s = t.wait("the exit", exited);
    assert!(s.contains("EXIT=0"), "{s}");
    assert_cooked(&s);
}
