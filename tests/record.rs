//! Recordings: round trips, crash safety (a cut at every byte), damage, versions, marks,
//! "when did this change" queries, live recording with an injected frame source, and the
//! `record` / `replay` commands.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use regdrift::record::command::{record_live, LivePlan, Sink};
use regdrift::record::synth::{Machine, Spec};
use regdrift::record::{
    load_frame_arg, DamageKind, FrameRef, Recording, RecordingWriter, WriterOptions,
};
use regdrift::snapshot::{Bdf, Snapshot};

fn quick() -> WriterOptions {
    WriterOptions {
        sync: false,
        ..WriterOptions::default()
    }
}

/// `n` frames of a small machine whose real registers change often.
fn session(n: usize, spec: Spec) -> Vec<Snapshot> {
    let mut m = Machine::new(spec);
    let mut v = vec![m.snapshot().clone()];
    for _ in 1..n {
        v.push(m.step().clone());
    }
    v
}

fn small_spec() -> Spec {
    Spec {
        cpus: 2,
        msrs_per_cpu: 12,
        devices: 2,
        msr_change_every: 3,
        pci_change_every: 5,
        ..Spec::default()
    }
}

fn write(path: &Path, snaps: &[Snapshot], opts: WriterOptions) -> RecordingWriter {
    let mut w = RecordingWriter::create_with(path, &snaps[0], &[], opts).unwrap();
    for s in &snaps[1..] {
        w.append(s, &[]).unwrap();
    }
    w
}

/// Record boundaries, read independently of the library: (kind, end offset).
fn records(bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 9 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let end = pos + 9 + len;
        if end > bytes.len() {
            break;
        }
        out.push((bytes[pos + 4], end));
        pos = end;
    }
    out
}

#[test]
fn frames_equal_the_snapshots_appended() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = session(
        700,
        Spec {
            cpus: 4,
            msrs_per_cpu: 60,
            devices: 6,
            msr_change_every: 7,
            pci_change_every: 11,
            ..Spec::default()
        },
    );
    for every in [256, 5] {
        let p = dir.path().join(format!("s{every}.rec"));
        let opts = WriterOptions {
            checkpoint_every: every,
            ..quick()
        };
        write(&p, &snaps, opts);
        let rec = Recording::open(&p).unwrap();
        assert_eq!(rec.frame_count(), snaps.len());
        assert!(!rec.truncated());
        assert!(rec.warning().is_none());
        for (i, s) in snaps.iter().enumerate() {
            assert_eq!(
                &rec.snapshot(i).unwrap(),
                s,
                "frame {i}, checkpoint every {every}"
            );
        }
        // Stepping forward from a frame in hand.
        let mut s = rec.snapshot(3).unwrap();
        rec.advance(&mut s, 3, 300).unwrap();
        assert_eq!(s, snaps[300]);
        rec.advance(&mut s, 300, 300).unwrap();
        assert!(rec.advance(&mut s, 300, 299).is_err());
        // Frame times come from captured_at.
        let m = rec.frame_meta(3).unwrap();
        assert_eq!(m.rfc3339(), "2024-05-01T10:00:03.000Z");
        assert!(rec.snapshot(snaps.len()).is_err());
    }
}

#[test]
fn checkpoints_keep_an_hour_small() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hour.rec");
    let snaps = session(
        600,
        Spec {
            cpus: 8,
            msrs_per_cpu: 100,
            devices: 4,
            ..Spec::default()
        },
    );
    write(&p, &snaps, quick());
    let rec_bytes = fs::metadata(&p).unwrap().len();
    let snap_bytes = snaps[0].to_json().len() as u64;
    // 8 CPUs × 3 counters × ~8 bytes per frame, plus one snapshot.
    assert!(
        rec_bytes < snap_bytes + 600 * 8 * 3 * 10,
        "{rec_bytes} bytes for a {snap_bytes}-byte snapshot"
    );
}

#[test]
fn a_cut_at_every_byte_loads_the_complete_frames() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.rec");
    let snaps = session(14, small_spec());
    let opts = WriterOptions {
        checkpoint_every: 4,
        ..quick()
    };
    let mut w =
        RecordingWriter::create_with(&full, &snaps[0], &["cold".into()], opts.clone()).unwrap();
    for (i, s) in snaps[1..].iter().enumerate() {
        w.append(s, &[]).unwrap();
        if i % 5 == 0 {
            w.mark(&format!("m{i}")).unwrap();
        }
    }
    drop(w);
    let bytes = fs::read(&full).unwrap();
    let recs = records(&bytes);
    assert_eq!(recs.last().unwrap().1, bytes.len());
    assert!(recs.iter().any(|r| r.0 == 2), "has checkpoints");
    assert!(recs.iter().any(|r| r.0 == 3), "has mark records");
    let cut = dir.path().join("cut.rec");
    for c in 0..=bytes.len() {
        fs::write(&cut, &bytes[..c]).unwrap();
        let frames = recs.iter().filter(|r| r.0 == 1 && r.1 <= c).count();
        let boundary = c == 24 || recs.iter().any(|r| r.1 == c);
        match Recording::open(&cut) {
            Ok(rec) => {
                assert_eq!(rec.frame_count(), frames, "cut at {c}");
                assert_eq!(rec.truncated(), !boundary, "cut at {c}");
                if !boundary {
                    let w = rec.warning().unwrap();
                    assert!(w.contains("cut.rec: cut off at byte"), "{w}");
                    assert_eq!(rec.damage().unwrap().kind, DamageKind::Truncated);
                }
                assert_eq!(
                    rec.snapshot(frames - 1).unwrap(),
                    snaps[frames - 1],
                    "cut at {c}"
                );
                let marks = recs.iter().filter(|r| r.0 == 3 && r.1 <= c).count() + 1;
                assert_eq!(rec.marks().len(), marks, "cut at {c}");
            }
            Err(e) => {
                assert_eq!(frames, 0, "cut at {c}: {e}");
                assert!(e.to_string().contains("cut.rec"), "{e}");
            }
        }
        // Appending after the crash cuts the torn record off and carries on.
        let mut w = RecordingWriter::open_append_with(&cut, opts.clone()).unwrap();
        assert_eq!(w.frame_count(), frames, "cut at {c}");
        assert_eq!(w.repaired().is_some(), !boundary, "cut at {c}");
        let next = &snaps[frames.min(snaps.len() - 1)];
        w.append(next, &["resumed".into()]).unwrap();
        drop(w);
        let rec = Recording::open(&cut).unwrap();
        assert!(!rec.truncated(), "cut at {c}");
        assert_eq!(rec.frame_count(), frames + 1);
        assert_eq!(&rec.snapshot(frames).unwrap(), next, "cut at {c}");
        assert_eq!(rec.frames_marked("resumed"), vec![frames]);
    }
}

#[test]
fn a_bad_checksum_in_the_middle_loads_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.rec");
    let snaps = session(10, small_spec());
    write(&p, &snaps, quick());
    let mut bytes = fs::read(&p).unwrap();
    let recs = records(&bytes);
    // Damage the payload of frame 6 (the 7th frame record).
    let frame_ends: Vec<usize> = recs.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
    let at = frame_ends[5] + 12;
    bytes[at] ^= 0x40;
    fs::write(&p, &bytes).unwrap();
    let rec = Recording::open(&p).unwrap();
    assert_eq!(rec.frame_count(), 6);
    assert!(rec.truncated());
    let d = rec.damage().unwrap();
    assert_eq!(d.kind, DamageKind::Corrupt);
    assert_eq!(d.offset, frame_ends[5] as u64);
    let w = rec.warning().unwrap();
    assert!(w.contains("bad.rec"), "{w}");
    assert!(
        w.contains(&format!("record at byte {}", frame_ends[5])),
        "{w}"
    );
    assert!(w.contains("bad checksum"), "{w}");
    assert!(w.contains("loaded the 6 frames"), "{w}");
    assert_eq!(rec.snapshot(5).unwrap(), snaps[5]);
    // Appending would hide new frames behind the damage: refused.
    let e = RecordingWriter::open_append(&p).unwrap_err().to_string();
    assert!(e.contains("refused"), "{e}");

    // The same damage in the last record is a torn write: appending repairs it.
    let p2 = dir.path().join("tail.rec");
    write(&p2, &snaps, quick());
    let mut bytes = fs::read(&p2).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    fs::write(&p2, &bytes).unwrap();
    assert_eq!(Recording::open(&p2).unwrap().frame_count(), 9);
    let mut w = RecordingWriter::open_append_with(&p2, quick()).unwrap();
    assert!(w.repaired().unwrap().contains("bad checksum"));
    w.append(&snaps[9], &[]).unwrap();
    drop(w);
    let rec = Recording::open(&p2).unwrap();
    assert_eq!(rec.frame_count(), 10);
    assert!(!rec.truncated());
}

#[test]
fn absurd_lengths_are_refused_with_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.rec");
    let snaps = session(3, small_spec());
    write(&p, &snaps, quick());
    let good = fs::read(&p).unwrap();
    let mut bytes = good.clone();
    let end = bytes.len();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[1, 0, 0, 0, 0, 9, 9, 9]);
    fs::write(&p, &bytes).unwrap();
    let rec = Recording::open(&p).unwrap();
    assert_eq!(rec.frame_count(), 3);
    let w = rec.warning().unwrap();
    assert!(
        w.contains(&format!("record at byte {end} claims 4294967295 bytes")),
        "{w}"
    );
    assert!(w.contains("huge.rec"), "{w}");
    // As the first record: nothing to load, an error naming the file and the offset.
    let mut first = good[..24].to_vec();
    first.extend_from_slice(&u32::MAX.to_le_bytes());
    first.extend_from_slice(&[1, 0, 0, 0, 0]);
    fs::write(&p, &first).unwrap();
    let e = Recording::open(&p).unwrap_err().to_string();
    assert!(
        e.contains("huge.rec") && e.contains("record at byte 24 claims 4294967295"),
        "{e}"
    );
}

#[test]
fn other_versions_and_formats_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.rec");
    let snaps = session(2, small_spec());
    write(&p, &snaps, quick());
    let mut bytes = fs::read(&p).unwrap();
    bytes[20] = 2;
    fs::write(&p, &bytes).unwrap();
    let e = Recording::open(&p).unwrap_err().to_string();
    assert!(e.contains("regdrift-recording version 2 is newer"), "{e}");
    assert!(RecordingWriter::open_append(&p).is_err());
    let j = dir.path().join("snap.json");
    fs::write(&j, snaps[0].to_json()).unwrap();
    let e = Recording::open(&j).unwrap_err().to_string();
    assert!(
        e.contains("snap.json") && e.contains("a JSON file (a snapshot?)"),
        "{e}"
    );
    fs::write(&j, b"garbage that is long enough to be a header").unwrap();
    let e = Recording::open(&j).unwrap_err().to_string();
    assert!(e.contains("not a regdrift recording"), "{e}");
}

#[test]
fn marks_name_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.rec");
    let snaps = session(5, small_spec());
    let mut w = RecordingWriter::create_with(&p, &snaps[0], &["cold".into()], quick()).unwrap();
    w.append(&snaps[1], &["planted".into(), "driver loaded".into()])
        .unwrap();
    w.append(&snaps[2], &[]).unwrap();
    w.mark("note: fan spun up").unwrap();
    w.append(&snaps[3], &["boot".into()]).unwrap();
    w.append(&snaps[4], &["boot".into()]).unwrap();
    assert!(w.mark("").is_err());
    drop(w);
    let rec = Recording::open(&p).unwrap();
    let labels: Vec<(usize, &str)> = rec
        .marks()
        .iter()
        .map(|m| (m.frame, m.label.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            (0, "cold"),
            (1, "planted"),
            (1, "driver loaded"),
            (2, "note: fan spun up"),
            (3, "boot"),
            (4, "boot")
        ]
    );
    assert_eq!(
        rec.frame_meta(1).unwrap().marks,
        ["planted", "driver loaded"]
    );
    assert_eq!(rec.frame_meta(2).unwrap().marks, ["note: fan spun up"]);
    assert_eq!(rec.resolve(&FrameRef::parse("planted")).unwrap(), 1);
    assert_eq!(rec.resolve(&FrameRef::parse("-1")).unwrap(), 4);
    assert_eq!(rec.resolve(&FrameRef::parse("2")).unwrap(), 2);
    let e = rec
        .resolve(&FrameRef::parse("boot"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 frames are marked \"boot\" (3, 4)"), "{e}");
    let e = rec
        .resolve(&FrameRef::parse("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no frame is marked \"nope\"") && e.contains("cold@0"),
        "{e}"
    );
    assert!(rec.resolve(&FrameRef::parse("9")).is_err());
    assert!(rec.resolve(&FrameRef::parse("-6")).is_err());

    // FILE.rec@N and FILE.rec@MARK, for diff.
    let arg = format!("{}@planted", p.display());
    assert_eq!(load_frame_arg(&arg).unwrap().unwrap(), snaps[1]);
    let arg = format!("{}@-1", p.display());
    assert_eq!(load_frame_arg(&arg).unwrap().unwrap(), snaps[4]);
    assert!(load_frame_arg(&format!("{}@7", p.display()))
        .unwrap()
        .is_err());
    assert!(load_frame_arg(&p.display().to_string()).is_none());
    assert!(load_frame_arg("cold.json").is_none());
    assert!(load_frame_arg("user@host.json").is_none());
    // A recording not named .rec is recognised by its header.
    let other = dir.path().join("session.bin");
    fs::copy(&p, &other).unwrap();
    assert!(load_frame_arg(&format!("{}@0", other.display())).is_some());
}

#[test]
fn last_change_queries_agree_with_rebuilt_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lc.rec");
    let snaps = session(60, small_spec());
    write(
        &p,
        &snaps,
        WriterOptions {
            checkpoint_every: 8,
            ..quick()
        },
    );
    let rec = Recording::open(&p).unwrap();
    let msr = |s: &Snapshot, cpu: u32, i: u32| {
        let c = s
            .msr
            .as_ref()
            .unwrap()
            .cpus
            .get(&cpu)
            .cloned()
            .unwrap_or_default();
        (c.values.get(&i).copied(), c.unreadable.get(&i).cloned())
    };
    let indices: Vec<u32> = snaps[0].msr.as_ref().unwrap().cpus[&0]
        .values
        .keys()
        .copied()
        .chain([0x1fc, 0x9999])
        .collect();
    let mut found_some = 0;
    for frame in [0, 1, 17, 33, 59] {
        for cpu in 0..2 {
            for &i in &indices {
                let want = (1..=frame)
                    .rev()
                    .find(|&j| msr(&snaps[j], cpu, i) != msr(&snaps[j - 1], cpu, i));
                let got = rec.last_change_msr(cpu, i, frame).unwrap();
                assert_eq!(got, want, "cpu {cpu} msr {i:#x} frame {frame}");
                found_some += usize::from(got.is_some() && ![0x10, 0xe7, 0xe8].contains(&i));
            }
        }
    }
    assert!(found_some > 0, "some real register changed");
    let bdfs: Vec<Bdf> = snaps[0]
        .pci
        .as_ref()
        .unwrap()
        .devices
        .keys()
        .copied()
        .collect();
    let byte = |s: &Snapshot, b: Bdf, o: usize| {
        s.pci
            .as_ref()
            .unwrap()
            .devices
            .get(&b)
            .map(|d| d.config.get(o).copied())
    };
    for frame in [0, 10, 59] {
        for &b in &bdfs {
            for o in [0usize, 4, 5, 0x44, 0x100] {
                let want = (1..=frame)
                    .rev()
                    .find(|&j| byte(&snaps[j], b, o) != byte(&snaps[j - 1], b, o));
                assert_eq!(
                    rec.last_change_pci(b, o as u16, frame).unwrap(),
                    want,
                    "{b} {o:#x} frame {frame}"
                );
            }
        }
    }
    assert!(rec.last_change_msr(0, 0x10, 60).is_err());
}

#[test]
fn files_are_not_world_writable_and_one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("perm.rec");
    let snaps = session(2, small_spec());
    let _w = write(&p, &snaps, quick());
    let mode = fs::metadata(&p).unwrap().permissions().mode();
    assert_eq!(mode & 0o022, 0, "{mode:o}");
    let e = RecordingWriter::open_append(&p).unwrap_err().to_string();
    assert!(e.contains("being written by another"), "{e}");
    // No temporary file is left beside it.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn live_recording_takes_frames_from_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("live.rec");
    let mut m = Machine::new(small_spec());
    let mut taken = Vec::new();
    let mut sink = Sink::new(&p, false, vec!["start".into()]);
    let plan = LivePlan {
        interval: Duration::from_millis(5),
        count: Some(4),
        duration: None,
    };
    let stop = AtomicBool::new(false);
    let mut calls = 0;
    let n = record_live(
        &mut sink,
        &plan,
        &stop,
        || {
            calls += 1;
            let s = m.step().clone();
            taken.push(s.clone());
            Ok(s)
        },
        |_, _| {},
    )
    .unwrap();
    assert_eq!((n, calls), (4, 4));
    let rec = Recording::open(&p).unwrap();
    assert_eq!(rec.frame_count(), 4);
    assert_eq!(rec.frames_marked("start"), vec![0]);
    for (i, s) in taken.iter().enumerate() {
        assert_eq!(&rec.snapshot(i).unwrap(), s);
    }

    drop(sink);
    // A duration stops it; appending continues the same file.
    let mut sink = Sink::new(&p, true, vec![]);
    let plan = LivePlan {
        interval: Duration::from_millis(20),
        count: None,
        duration: Some(Duration::from_millis(70)),
    };
    let t = std::time::Instant::now();
    let n = record_live(&mut sink, &plan, &stop, || Ok(m.step().clone()), |_, _| {}).unwrap();
    // Frames are due at 0, 20, 40 and 60 ms; a slot missed on a busy machine is skipped.
    assert!((1..=4).contains(&n), "{n} frames");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(Recording::open(&p).unwrap().frame_count(), 4 + n);
    drop(sink);

    // A failing source ends the recording with the error; what was written stays.
    let mut sink = Sink::new(&p, true, vec![]);
    let plan = LivePlan {
        interval: Duration::from_millis(1),
        count: Some(10),
        duration: None,
    };
    let mut k = 0;
    let e = record_live(
        &mut sink,
        &plan,
        &stop,
        || {
            k += 1;
            if k == 3 {
                anyhow::bail!("EIO on cpu 3")
            }
            Ok(m.step().clone())
        },
        |_, _| {},
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("capturing frame 2: EIO on cpu 3"),
        "{e:#}"
    );
    assert_eq!(Recording::open(&p).unwrap().frame_count(), 10);
    drop(sink);

    // The stop flag (set by SIGINT) ends it before the next frame.
    let stop = AtomicBool::new(true);
    let mut sink = Sink::new(&p, true, vec![]);
    assert_eq!(
        record_live(&mut sink, &plan, &stop, || Ok(m.step().clone()), |_, _| {}).unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------
// Commands

fn regdrift() -> Command {
    Command::cargo_bin("regdrift").unwrap()
}

fn snapshot_files(dir: &Path, n: usize) -> (Vec<Snapshot>, Vec<String>) {
    let snaps = session(n, small_spec());
    let names = snaps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = dir.join(format!("s{i}.json"));
            fs::write(&p, s.to_json()).unwrap();
            p.display().to_string()
        })
        .collect();
    (snaps, names)
}

#[test]
fn record_from_snapshot_files_and_export_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (snaps, names) = snapshot_files(dir.path(), 3);
    let rec = dir.path().join("lab.rec");
    regdrift()
        .args(["record", "--from"])
        .args(&names)
        .args(["--mark", "cold,planted,after-kexec", "-o"])
        .arg(&rec)
        .assert()
        .success()
        .stderr(predicate::str::contains("3 frames written"));
    let r = Recording::open(&rec).unwrap();
    assert_eq!(r.frame_count(), 3);
    assert_eq!(r.frames_marked("after-kexec"), vec![2]);

    // Not replaced by accident.
    regdrift()
        .args(["record", "--from", &names[0], "-o"])
        .arg(&rec)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("exists: use --append"));

    let out = dir.path().join("frame.json");
    regdrift()
        .arg("replay")
        .arg(&rec)
        .args(["--export-frame", "planted", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(Snapshot::load(&out).unwrap(), snaps[1]);
    let mode = fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o002, 0);
    regdrift()
        .arg("replay")
        .arg(&rec)
        .args(["--export-frame", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"format\": \"regdrift-snapshot\"",
        ));
    regdrift()
        .arg("replay")
        .arg(&rec)
        .args(["--export-frame", "5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no frame 5: the recording has 3 frames",
        ));

    regdrift()
        .arg("replay")
        .arg(&rec)
        .arg("--list")
        .assert()
        .success()
        .stdout(predicate::str::contains("3 frames"))
        .stdout(predicate::str::contains("2024-05-01T10:00:01.000Z"))
        .stdout(predicate::str::contains("after-kexec"))
        .stdout(predicate::str::contains("6 MSR values on 2 CPUs"));

    // Too many labels.
    regdrift()
        .args([
            "record", "--force", "--from", &names[0], "--mark", "a,b", "-o",
        ])
        .arg(&rec)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "2 labels given with --mark for 1 frame",
        ));
}

#[test]
fn record_append_creates_then_adds_a_frame_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let (snaps, names) = snapshot_files(dir.path(), 3);
    let rec = dir.path().join("boots.rec");
    for (i, (name, label)) in names.iter().zip(["cold", "", "after-kexec"]).enumerate() {
        let mut cmd = regdrift();
        cmd.args(["record", "--append", "-o"]).arg(&rec);
        if !label.is_empty() {
            cmd.args(["--mark", label]);
        }
        cmd.arg(name).assert().success();
        assert_eq!(Recording::open(&rec).unwrap().frame_count(), i + 1);
    }
    let r = Recording::open(&rec).unwrap();
    assert_eq!(r.frames_marked("cold"), vec![0]);
    assert_eq!(r.frames_marked("after-kexec"), vec![2]);
    for (i, s) in snaps.iter().enumerate() {
        assert_eq!(&r.snapshot(i).unwrap(), s);
    }
    // A torn record at the end (the boot before crashed mid-write) is cut off with a
    // warning, and the new frame is appended.
    let len = fs::metadata(&rec).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&rec).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    regdrift()
        .args(["record", "--append", "-o"])
        .arg(&rec)
        .arg(&names[2])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").and(predicate::str::contains("cut off")));
    let r = Recording::open(&rec).unwrap();
    assert_eq!(r.frame_count(), 3);
    assert!(!r.truncated());

    // A truncated recording replays with a warning.
    let len = fs::metadata(&rec).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&rec)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    regdrift()
        .arg("replay")
        .arg(&rec)
        .arg("--list")
        .assert()
        .success()
        .stderr(
            predicate::str::contains("warning").and(predicate::str::contains("cut off at byte")),
        )
        .stdout(predicate::str::contains("2 frames"));
}

#[test]
fn replay_refuses_what_is_not_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (_, names) = snapshot_files(dir.path(), 1);
    regdrift()
        .args(["replay", &names[0], "--list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a regdrift recording"));
    regdrift()
        .args(["record", "--from", "/nonexistent/x.json", "-o"])
        .arg(dir.path().join("x.rec"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/x.json"));
    assert!(!dir.path().join("x.rec").exists());
}

// ---------------------------------------------------------------------------------------
// Live recording of fixture machines, and diff between frames

#[test]
fn record_live_from_a_fixture_root_and_diff_two_frames() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    let rec = dir.path().join("live.rec");
    regdrift()
        .args(["record", "-o"])
        .arg(&rec)
        .arg("--root")
        .arg(&root)
        .args(["--count", "3", "--interval", "10ms", "--mark", "cold"])
        .assert()
        .success()
        .stderr(predicate::str::contains("3 frames written"));
    let r = Recording::open(&rec).unwrap();
    assert_eq!(r.frame_count(), 3);
    assert_eq!(r.frames_marked("cold"), vec![0]);
    let s0 = r.snapshot(0).unwrap();
    assert_eq!(s0.msr.as_ref().unwrap().cpus.len(), common::CPUS as usize);
    assert!(s0.pci.as_ref().unwrap().devices.len() >= 3);

    // The next boot, with state planted by a buggy driver, appended as a boot script
    // would, for one frame, with its mark.
    common::planted_machine(&root, 0);
    regdrift()
        .args(["record", "--append", "-o"])
        .arg(&rec)
        .arg("--root")
        .arg(&root)
        .args(["--count", "1", "--mark", "after-kexec"])
        .assert()
        .success();
    let r = Recording::open(&rec).unwrap();
    assert_eq!(r.frame_count(), 4);
    assert_eq!(r.frames_marked("after-kexec"), vec![3]);
    assert!(r.changes(3).unwrap().msr_values >= common::CPUS as usize);

    let at = |sel: &str| format!("{}@{sel}", rec.display());
    regdrift()
        .args(["diff", &at("cold"), &at("after-kexec")])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("0x1fc").or(predicate::str::contains("POWER_CTL")));
    regdrift()
        .args(["diff", &at("0"), &at("cold")])
        .assert()
        .code(0);
    regdrift()
        .args(["diff", &at("cold"), &at("nope")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no frame is marked \"nope\""));

    // Frames of a recording can seed another recording.
    let copy = dir.path().join("copy.rec");
    regdrift()
        .args(["record", "--from", &at("cold"), &at("-1"), "-o"])
        .arg(&copy)
        .assert()
        .success();
    let c = Recording::open(&copy).unwrap();
    assert_eq!(c.snapshot(1).unwrap(), r.snapshot(3).unwrap());
}

#[test]
fn sigint_ends_a_live_recording_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    let rec = dir.path().join("int.rec");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("regdrift"))
        .args(["record", "-o"])
        .arg(&rec)
        .arg("--root")
        .arg(&root)
        .args(["--interval", "20ms"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while Recording::open(&rec).map_or(0, |r| r.frame_count()) < 3 {
        assert!(std::time::Instant::now() < deadline, "no frames recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("frames written"));
    let r = Recording::open(&rec).unwrap();
    assert!(!r.truncated());
    assert!(r.frame_count() >= 3);
}

#[test]
fn sigkill_at_any_moment_leaves_a_loadable_recording() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::cold_machine(&root, 0);
    for (k, delay_ms) in [35u64, 60, 85, 110, 140].into_iter().enumerate() {
        let rec = dir.path().join(format!("kill{k}.rec"));
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("regdrift"))
            .args(["record", "-o"])
            .arg(&rec)
            .arg("--root")
            .arg(&root)
            .args(["--interval", "1ms"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !rec.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no recording appeared"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let r = Recording::open(&rec).unwrap();
        let n = r.frame_count();
        assert!(n >= 1);
        assert!(r.snapshot(n - 1).is_ok());
        // The next boot appends after whatever the kill left.
        let mut w = RecordingWriter::open_append(&rec).unwrap();
        let last = r.snapshot(n - 1).unwrap();
        w.append(&last, &["after".into()]).unwrap();
        drop(w);
        let r = Recording::open(&rec).unwrap();
        assert_eq!(r.frame_count(), n + 1);
        assert!(!r.truncated());
    }
}

/// Damage that the checksum cannot catch (a writer with a bug, a hostile file with valid
/// checksums): every byte of every record changed in turn, its checksum recomputed. Opening
/// and rebuilding every frame must fail cleanly or succeed, never panic.
#[test]
fn records_with_valid_checksums_but_bad_contents_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.rec");
    let snaps = session(6, small_spec());
    let mut w = RecordingWriter::create_with(
        &p,
        &snaps[0],
        &["a".into()],
        WriterOptions {
            checkpoint_every: 2,
            ..quick()
        },
    )
    .unwrap();
    for s in &snaps[1..] {
        w.append(s, &[]).unwrap();
    }
    w.mark("m").unwrap();
    drop(w);
    let good = fs::read(&p).unwrap();
    let recs = records(&good);
    let bad = dir.path().join("bad.rec");
    let mut x = 0x9e37_79b9u32;
    let mut start = 24;
    for &(_, end) in &recs {
        for at in start + 9..end {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut b = good.clone();
            b[at] = b[at].wrapping_add(1 + (x % 255) as u8);
            let mut h = crc32fast::Hasher::new();
            h.update(&b[start..start + 5]);
            h.update(&b[start + 9..end]);
            b[start + 5..start + 9].copy_from_slice(&h.finalize().to_le_bytes());
            fs::write(&bad, &b).unwrap();
            if let Ok(rec) = Recording::open(&bad) {
                for i in 0..rec.frame_count() {
                    let _ = rec.snapshot(i);
                    let _ = rec.changes(i);
                }
                let n = rec.frame_count() - 1;
                let _ = rec.last_change_msr(1, 0x10, n);
                let _ = rec.last_change_pci(Bdf::default(), 4, n);
                let _ = regdrift::record::command::list(&rec);
            }
        }
        start = end;
    }
}
