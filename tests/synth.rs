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
