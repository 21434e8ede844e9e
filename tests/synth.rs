//! Synthetic machines written as machine trees, captured back and diffed: capture reads
//! exactly what was generated, and the diff of the two captures reports exactly the
//! planted changes (recall and precision 100%).

use regdrift::capture::msr::MsrSelection;
use regdrift::capture::{capture, CaptureOptions, Sources};
use regdrift::diff::{diff, DiffOptions};
use regdrift::fixture::synth::{self, Spec};
use regdrift::regdb::RegDb;

fn options(root: &std::path::Path, indices: &[u32]) -> CaptureOptions {
    let mut o = CaptureOptions::new(root);
    o.msrs = MsrSelection::List(indices.iter().map(|&i| (i, i)).collect());
    o.sources = Sources {
        msr: true,
        mtrr: false,
        pci: true,
    };
    o
}

#[test]
fn captured_trees_diff_to_exactly_the_planted_changes() {
    let pair = synth::generate(&Spec::laptop(4).regular_file());
    let dir = tempfile::tempdir().unwrap();
    let (rb, rc) = (dir.path().join("cold"), dir.path().join("kexec"));
    synth::write_root(&pair.baseline, &rb).unwrap();
    synth::write_root(&pair.current, &rc).unwrap();

    let db = RegDb::active();
    let b = capture(&options(&rb, &pair.msr_indices), db).unwrap();
    let c = capture(&options(&rc, &pair.msr_indices), db).unwrap();
    assert!(b.meta.problems.is_empty(), "{:#?}", b.meta.problems);
    // Capture reads back exactly what was generated (compared without printing
    // megabytes on a failure).
    assert!(b.msr == pair.baseline.msr, "baseline MSRs differ");
    assert!(c.msr == pair.current.msr, "current MSRs differ");
    for (got, want) in [(&b.pci, &pair.baseline.pci), (&c.pci, &pair.current.pci)] {
        let (got, want) = (got.as_ref().unwrap(), want.as_ref().unwrap());
        assert_eq!(got.devices.len(), want.devices.len());
        for (bdf, d) in &want.devices {
            assert!(got.devices.get(bdf) == Some(d), "{bdf} differs");
        }
    }
    assert_eq!(b.meta.boot_id, pair.baseline.meta.boot_id);

    let report = diff(&b, &c, &DiffOptions::default());
    let s = synth::score_snapshots(&report, &b, &c, &pair.planted_changes());
    assert!(
        s.missed.is_empty() && s.spurious.is_empty(),
        "missed {:#?}\nspurious {:#?}",
        s.missed,
        s.spurious
    );
    assert!(s.planted >= 20, "{}", s.planted);
    assert!(report.hidden_volatile > 0);
}

#[test]
fn dense_layouts_cannot_be_written_as_trees() {
    let pair = synth::generate(&Spec::laptop(2));
    let dir = tempfile::tempdir().unwrap();
    let e = synth::write_root(&pair.baseline, dir.path()).unwrap_err();
    assert!(e.to_string().contains("unreadable MSRs"), "{e}");
}

#[test]
fn text_dumps_hold_a_line_per_register() {
    let pair = synth::generate(&Spec::laptop(2));
    let text = synth::text_dump(&pair.baseline);
    let msr_lines = text.lines().filter(|l| l.starts_with("cpu")).count();
    assert_eq!(msr_lines, pair.msr_pairs());
    // lspci -xxxx rows: 256 per 4 KiB device, 16 per conventional one.
    let devices = &pair.baseline.pci.as_ref().unwrap().devices;
    let extended = devices.values().filter(|d| d.config.len() == 4096).count();
    assert!(extended > 10);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ff0:")).count(),
        extended
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("0f0:")).count(), 20);
}

#[test]
fn many_devices_are_read_in_parallel_as_in_order() {
    // Enough devices for several reader threads, and entries that are problems among them.
    let spec = Spec {
        name: "wide".into(),
        cpus: 2,
        msrs: Some(40),
        devices: 300,
        seed: 5,
        layout: synth::MsrLayout::RegularFile,
    };
    let pair = synth::generate(&spec);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    synth::write_root(&pair.baseline, &root).unwrap();
    let bus = root.join("sys/bus/pci/devices");
    std::fs::create_dir_all(dir.path().join("elsewhere/0000:7f:00.0")).unwrap();
    for (name, target) in [
        (
            "junk",
            "../../../devices/pci0000:00/0000:00:00.0".to_string(),
        ),
        (
            "0000:7f:00.0",
            dir.path()
                .join("elsewhere/0000:7f:00.0")
                .display()
                .to_string(),
        ),
        ("0000:7f:01.0", "../../../devices/nowhere".to_string()),
    ] {
        std::os::unix::fs::symlink(target, bus.join(name)).unwrap();
    }
    let mut o = CaptureOptions::new(&root);
    o.sources = Sources {
        msr: false,
        mtrr: false,
        pci: true,
    };
    let snap = capture(&o, RegDb::active()).unwrap();
    let got = &snap.pci.as_ref().unwrap().devices;
    let want = &pair.baseline.pci.as_ref().unwrap().devices;
    assert_eq!(got.len(), 300);
    for (bdf, d) in want {
        assert!(got.get(bdf) == Some(d), "{bdf} differs");
    }
    // The problems come in the order the directory lists the entries.
    let listed: Vec<String> = std::fs::read_dir(&bus)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| ["junk", "0000:7f:00.0", "0000:7f:01.0"].contains(&n.as_str()))
        .collect();
    let reported: Vec<String> = snap
        .meta
        .problems
        .iter()
        .filter(|p| p.source == "pci")
        .filter_map(|p| p.path.as_deref())
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(reported, listed, "{:#?}", snap.meta.problems);
}

#[test]
fn show_of_many_devices_keeps_their_order() {
    let spec = Spec {
        name: "wide".into(),
        cpus: 1,
        msrs: Some(10),
        devices: 300,
        seed: 9,
        layout: synth::MsrLayout::Dense,
    };
    let pair = synth::generate(&spec);
    let text = regdrift::export::show::render(&pair.baseline, "wide.json");
    let pci = pair.baseline.pci.as_ref().unwrap();
    let blocks: String = pci
        .devices
        .iter()
        .map(|(b, d)| format!("\n{}", regdrift::export::pci_show::render_device(*b, d)))
        .collect();
    assert!(text.ends_with(&blocks));
    assert!(text.contains("\nPCI: 300 devices\n"));
}
