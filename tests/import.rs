//! `regdrift import` on real public dumps (tests/data/import, sources in its README):
//! byte-exact lspci imports checked against pciutils' own reader, the `-vvv` text lspci
//! printed beside the hex checked against the imported bytes, /proc/mtrr files, coreboot
//! inteltool logs and rdmsr output, and the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::Command as Cmd;
use predicates::prelude::*;
use regdrift::decode;
use regdrift::import::{self, lspci, Kind};
use regdrift::snapshot::{Bdf, Origin, Snapshot};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(data(rel)).unwrap()
}

const LAPTOP: &str = "lspci/acer-gm45-laptop-nnvvvxxxx.txt";
const GPU: &str = "lspci/pciutils-cap-rebar-amd-fiji-gpu.txt";
const NIC: &str = "lspci/pciutils-cap-pcie-2-intel-82576-nic.txt";
const ROOT_PORT: &str = "lspci/pciutils-cap-pcie-1-intel-5520-root-port.txt";
const LSPCI_DUMPS: [&str; 4] = [LAPTOP, GPU, NIC, ROOT_PORT];

/// The hex rows of an lspci dump, per device, read with the simplest rules (a device line
/// starts with a PCI address; a row is `offset: bytes`; rows are contiguous). Independent
/// of the importer, to check it.
fn rows_by_device(text: &str) -> BTreeMap<Bdf, Vec<u8>> {
    let mut out: BTreeMap<Bdf, Vec<u8>> = BTreeMap::new();
    let mut cur: Option<Bdf> = None;
    for line in text.lines() {
        if line.is_empty() || line.starts_with([' ', '\t']) {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('.') {
            if let Ok(bdf) = first.parse::<Bdf>() {
                out.insert(bdf, Vec::new());
                cur = Some(bdf);
                continue;
            }
        }
        let (Some(bdf), Some((off, bytes))) = (cur, line.split_once(": ")) else {
            continue;
        };
        if let Ok(off) = usize::from_str_radix(off, 16) {
            let v = out.get_mut(&bdf).unwrap();
            assert_eq!(v.len(), off, "{bdf}: rows are contiguous");
            v.extend(bytes.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()));
        }
    }
    out
}

/// `lspci` from pciutils; the byte-exact tests need it.
fn lspci_dump(file: &Path) -> String {
    let out = Command::new("lspci")
        .args(["-D", "-xxxx", "-F"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "lspci (pciutils) is needed for the byte-exact import tests: {e}; install pciutils"
            )
        });
    assert!(
        out.status.success(),
        "lspci -F {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn import_lspci(rel: &str) -> import::Imported {
    lspci::parse_lspci(&read(rel), rel).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn lspci_dumps_import_byte_exact_as_pciutils_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut devices = 0;
    for rel in LSPCI_DUMPS {
        let text = read(rel);
        let imported = import_lspci(rel);
        assert!(
            imported.warnings.is_empty(),
            "{rel}: {:?}",
            imported.warnings
        );
        let pci = imported.snapshot.pci.as_ref().unwrap();
        let original = rows_by_device(&text);
        assert_eq!(pci.devices.len(), original.len(), "{rel}");
        for (bdf, bytes) in &original {
            assert_eq!(&pci.devices[bdf].config, bytes, "{rel} {bdf}");
        }
        // Written back in lspci's format, pciutils reads the same bytes.
        let back = dir.path().join(rel.replace('/', "_"));
        std::fs::write(&back, lspci::write_lspci(pci)).unwrap();
        let from_lspci = rows_by_device(&lspci_dump(&back));
        assert_eq!(
            from_lspci, original,
            "{rel}: lspci -F on the written snapshot"
        );
        // Where pciutils can read the original (its device lines fit its 255-byte lines),
        // it agrees too.
        if text.lines().all(|l| l.len() < 250) {
            assert_eq!(
                rows_by_device(&lspci_dump(&data(rel))),
                original,
                "{rel}: lspci -F on the original"
            );
        }
        devices += original.len();
    }
    assert_eq!(devices, 25 + 3);
}

#[test]
fn imported_identity_of_real_devices() {
    let get = |rel: &str, bdf: &str| {
        import_lspci(rel).snapshot.pci.unwrap().devices[&bdf.parse::<Bdf>().unwrap()].clone()
    };
    let gpu = get(GPU, "09:00.0");
    assert_eq!(
        (gpu.vendor, gpu.device, gpu.class, gpu.revision),
        (0x1002, 0x7300, 0x030000, 0xca)
    );
    assert_eq!(
        (gpu.subsystem_vendor, gpu.subsystem_device),
        (Some(0x1002), Some(0x0b36))
    );
    assert_eq!(gpu.config.len(), 4096);
    assert_eq!(gpu.driver, None);

    let nic = get(NIC, "09:00.0");
    assert_eq!(
        (nic.vendor, nic.device, nic.class, nic.revision),
        (0x8086, 0x10c9, 0x020000, 1)
    );
    assert_eq!(nic.driver.as_deref(), Some("igb"));

    let port = get(ROOT_PORT, "00:01.0");
    assert_eq!(
        (port.vendor, port.device, port.class),
        (0x8086, 0x3408, 0x060400)
    );
    assert_eq!(port.driver.as_deref(), Some("pcieport-driver"));
    // A bridge: the subsystem comes from its Subsystem ID capability at 0x40.
    assert_eq!(
        (port.subsystem_vendor, port.subsystem_device),
        (Some(0x8086), Some(0))
    );

    let laptop = import_lspci(LAPTOP).snapshot;
    let pci = laptop.pci.as_ref().unwrap();
    assert_eq!(pci.devices.len(), 25);
    let d = |s: &str| &pci.devices[&s.parse::<Bdf>().unwrap()];
    assert_eq!(d("00:02.0").driver.as_deref(), Some("i915"));
    assert_eq!(d("02:00.0").driver.as_deref(), Some("tg3"));
    assert_eq!(d("03:00.0").driver.as_deref(), Some("ath9k"));
    assert_eq!(d("00:00.0").config.len(), 4096);
    assert_eq!(d("00:1f.3").config.len(), 256);
    assert_eq!(
        d("00:1f.3").config_note.as_deref(),
        Some("lspci -xxx dump: 256 bytes")
    );
    // The Broadcom NIC repeats a word every 0x100 bytes of its extended space: kept as is.
    let bcm = &d("02:00.0").config;
    for base in (0x100..0x1000).step_by(0x100) {
        assert_eq!(bcm[base + 0x97], 3, "{base:#x}");
    }
    // Subsystem of a root port, from its capability at 0x90 ("[90] Subsystem: … [1025:013c]").
    assert_eq!(
        (d("00:1c.0").subsystem_vendor, d("00:1c.0").subsystem_device),
        (Some(0x1025), Some(0x013c))
    );
    // CardBus bridge: subsystem at 0x40.
    assert_eq!(d("0d:06.0").subsystem_vendor, Some(0x1025));
    assert!(matches!(&laptop.meta.origin,
        Origin::Import { importer, file } if importer == "lspci" && file == LAPTOP));
    assert!(laptop.msr.is_none() && laptop.mtrr.is_none());
    assert!(laptop.meta.problems.iter().any(|p| p.source == "msr"));
}

/// One thing `lspci -vvv` printed beside the hex, as bits of config space.
#[derive(Debug, Clone)]
struct Printed {
    bdf: Bdf,
    /// Owner-table key of the register (`msi.control`…).
    key: &'static str,
    /// Offset and width of the register.
    offset: usize,
    width: usize,
    /// The bits, within the register.
    mask: u64,
    value: u64,
    text: String,
}

fn flag(line: &str, name: &str) -> Option<u64> {
    line.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .find_map(|w| match w.strip_prefix(name)? {
            "+" => Some(1),
            "-" => Some(0),
            _ => None,
        })
}

/// Read what `lspci -vvv` printed for the header's Command register, MSI and MSI-X
/// enables, the PCIe link's ASPM control and the power state.
fn printed_state(text: &str) -> Vec<Printed> {
    let mut out = Vec::new();
    let mut bdf: Option<Bdf> = None;
    let mut cap: Option<(usize, &str)> = None;
    for line in text.lines() {
        let t = line.trim();
        let first = line.split_whitespace().next().unwrap_or("");
        if !line.starts_with('\t') {
            bdf = first.parse().ok();
            cap = None;
            continue;
        }
        let Some(b) = bdf else { continue };
        let mut push = |key, offset, width, mask, value, text: &str| {
            out.push(Printed {
                bdf: b,
                key,
                offset,
                width,
                mask,
                value,
                text: text.to_string(),
            })
        };
        if let Some(rest) = t.strip_prefix("Capabilities: [") {
            let (off, what) = rest.split_once("] ").unwrap();
            let off = usize::from_str_radix(off.split(' ').next().unwrap(), 16).unwrap();
            let what = what.trim();
            cap = Some((
                off,
                if what.starts_with("MSI-X") {
                    "msix"
                } else if what.starts_with("MSI") {
                    "msi"
                } else if what.starts_with("Express") {
                    "pcie"
                } else if what.starts_with("Power Management") {
                    "pm"
                } else {
                    "other"
                },
            ));
            if what.starts_with("MSI-X:") {
                push(
                    "msix.control",
                    off + 2,
                    2,
                    1 << 15,
                    flag(what, "Enable").unwrap(),
                    t,
                );
                let masked = flag(what, "Mask").or_else(|| flag(what, "Masked")).unwrap();
                push("msix.control", off + 2, 2, 1 << 14, masked, t);
            } else if what.starts_with("MSI:") {
                push(
                    "msi.control",
                    off + 2,
                    2,
                    1,
                    flag(what, "Enable").unwrap(),
                    t,
                );
            }
            continue;
        }
        if line.starts_with("\tControl:") {
            for (name, bit) in [("I/O", 0), ("Mem", 1), ("BusMaster", 2), ("DisINTx", 10)] {
                push("header.command", 4, 2, 1 << bit, flag(t, name).unwrap(), t);
            }
            continue;
        }
        match cap {
            Some((off, "pcie")) if t.starts_with("LnkCtl:") => {
                let aspm = if t.contains("ASPM Disabled") {
                    0
                } else if t.contains("ASPM L0s L1 Enabled") {
                    3
                } else if t.contains("ASPM L1 Enabled") {
                    2
                } else if t.contains("ASPM L0s Enabled") {
                    1
                } else {
                    panic!("unknown ASPM text {t:?}")
                };
                push("pcie.lnkctl", off + 0x10, 2, 0b11, aspm, t);
                push(
                    "pcie.lnkctl",
                    off + 0x10,
                    2,
                    1 << 6,
                    flag(t, "CommClk").unwrap(),
                    t,
                );
            }
            Some((off, "pm")) if t.starts_with("Status: D") => {
                let state = t.split_whitespace().nth(1).unwrap();
                let d = match state {
                    "D0" => 0,
                    "D1" => 1,
                    "D2" => 2,
                    "D3hot" => 3,
                    other => panic!("unknown power state {other}"),
                };
                push("pm.pmcsr", off + 4, 2, 0b11, d, t);
                push(
                    "pm.pmcsr",
                    off + 4,
                    2,
                    1 << 8,
                    flag(t, "PME-Enable").unwrap(),
                    t,
                );
            }
            _ => {}
        }
    }
    out
}

fn field_of(config: &[u8], p: &Printed) -> u64 {
    let mut v = 0u64;
    for i in (0..p.width).rev() {
        v = (v << 8) | u64::from(config[p.offset + i]);
    }
    (v & p.mask) >> p.mask.trailing_zeros()
}

const VERBOSE_DUMPS: [&str; 3] = [LAPTOP, NIC, ROOT_PORT];

#[test]
fn lspci_vvv_text_agrees_with_imported_bytes() {
    let mut checked = 0;
    let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
    for rel in VERBOSE_DUMPS {
        let text = read(rel);
        let pci = import_lspci(rel).snapshot.pci.unwrap();
        for p in printed_state(&text) {
            let cfg = &pci.devices[&p.bdf].config;
            assert_eq!(field_of(cfg, &p), p.value, "{rel} {} {:?}", p.bdf, p);
            checked += 1;
            *by_key.entry(p.key).or_default() += 1;
        }
    }
    // Every device's Command register, and the capabilities lspci decoded.
    assert!(checked > 150, "{checked}");
    for key in [
        "header.command",
        "msi.control",
        "msix.control",
        "pcie.lnkctl",
        "pm.pmcsr",
    ] {
        assert!(
            by_key.get(key).copied().unwrap_or(0) >= 2,
            "{key}: {by_key:?}"
        );
    }
}

#[test]
fn decoded_fields_agree_with_lspci_vvv() {
    let mut checked = 0;
    for rel in VERBOSE_DUMPS {
        let text = read(rel);
        let pci = import_lspci(rel).snapshot.pci.unwrap();
        for p in printed_state(&text) {
            let cfg = &pci.devices[&p.bdf].config;
            let layout = decode::pci::layout(cfg);
            let reg = layout
                .regs
                .iter()
                .find(|r| r.key == p.key && usize::from(r.offset) == p.offset)
                .unwrap_or_else(|| {
                    panic!("{rel} {}: no register {} at {:#x}", p.bdf, p.key, p.offset)
                });
            let value = decode::pci::reg_value(reg, cfg).unwrap();
            let fields = decode::pci::decode_reg(reg, value);
            let field = fields.iter().find(|f| f.mask == p.mask).unwrap_or_else(|| {
                panic!(
                    "{rel} {}: {} has no field for mask {:#x}: {fields:?}",
                    p.bdf, p.key, p.mask
                )
            });
            assert_eq!(
                field.value, p.value,
                "{rel} {}: {} (lspci printed {:?})",
                p.bdf, field.name, p.text
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked}");
}

// ---------------------------------------------------------------------------------------
// /proc/mtrr

#[test]
fn proc_mtrr_files_import() {
    for (rel, lines) in [
        ("mtrr/twaite-442proj2-proc-mtrr.txt", 8),
        ("mtrr/khandevops1-linux-proc-mtrr.txt", 1),
        ("mtrr/lkml-2003-supermicro-x5dal-proc-mtrr.txt", 4),
    ] {
        let text = read(rel);
        assert_eq!(import::detect(&text), Some(Kind::ProcMtrr), "{rel}");
        let imp = import::mtrr::parse_mtrr(&text, rel).unwrap();
        assert!(imp.warnings.is_empty(), "{rel}: {:?}", imp.warnings);
        let m = imp.snapshot.mtrr.unwrap();
        assert_eq!(m.proc_mtrr.as_deref(), Some(text.as_str()));
        let parsed = decode::mtrr::parse_proc_mtrr(&text).unwrap();
        assert_eq!(parsed.len(), lines, "{rel}");
    }
    // The 2.4-era order, a KB size and a base above 4 GiB.
    let old = decode::mtrr::parse_proc_mtrr(&read("mtrr/lkml-2003-supermicro-x5dal-proc-mtrr.txt"))
        .unwrap();
    assert_eq!(
        (old[2].base, old[2].size, old[2].mem_type()),
        (0x1_0000_0000, 512 << 20, Some(6))
    );
    assert_eq!(
        (old[3].base, old[3].size, old[3].mem_type()),
        (0xdff8_0000, 512 << 10, Some(0))
    );
    let new = decode::mtrr::parse_proc_mtrr(&read("mtrr/twaite-442proj2-proc-mtrr.txt")).unwrap();
    assert_eq!(
        (new[7].base, new[7].size, new[7].type_name.as_str()),
        (0xffc0_0000, 4 << 20, "write-protect")
    );
}

// ---------------------------------------------------------------------------------------
// coreboot inteltool and rdmsr

const ACER_INTELTOOL: &str = "inteltool/acer-core2-gm45-inteltool-a-excerpt.txt";
const H310_INTELTOOL: &str = "inteltool/h310-coffeelake-inteltool-a-excerpt.txt";

#[test]
fn inteltool_core2_log_with_unreadable_msrs() {
    let text = read(ACER_INTELTOOL);
    assert_eq!(import::detect(&text), Some(Kind::Inteltool));
    let imp = import::parse_msr(&text, ACER_INTELTOOL).unwrap();
    let msr = imp.snapshot.msr.as_ref().unwrap();
    assert_eq!(msr.cpus.keys().copied().collect::<Vec<_>>(), [0, 1]);
    for (cpu, apic) in [(0, 0xfee0_0900u64), (1, 0xfee0_0800)] {
        let c = &msr.cpus[&cpu];
        // 25 shared + 42 per-core values, 2 unreadable.
        assert_eq!((c.values.len(), c.unreadable.len()), (67, 2), "CPU {cpu}");
        assert_eq!(c.values[&0x1b], apic);
        assert_eq!(c.values[&0x1a0], 0x43_6485_0489, "shared IA32_MISC_ENABLE");
        assert!(c.unreadable.contains_key(&0x20e) && c.unreadable.contains_key(&0x20f));
        assert!(!c.values.contains_key(&0x20e));
        // The MTRRs decode from the imported MSRs: 5 valid variable ranges, WB default off.
        let st = decode::mtrr::decode(&c.values, Some(36)).unwrap();
        assert_eq!((st.vcnt, st.enabled, st.default_type), (7, true, 0));
        let ranges: Vec<String> = st.variable.iter().map(|v| v.describe()).collect();
        assert_eq!(
            ranges,
            [
                "0x0-0x7fffffff (2GB) WB",
                "0x80000000-0xbfffffff (1GB) WB",
                "0x100000000-0x13fffffff (1GB) WB",
                "0xb8000000-0xbfffffff (128MB) UC",
                "0xb7e00000-0xb7ffffff (2MB) UC",
            ]
        );
        assert!(st.missing.is_empty(), "{:?}", st.missing);
    }
    let w = imp.warnings.join("\n");
    assert!(
        w.contains("shared MSRs on CPU 0 only: their values were given to CPUs 0-1"),
        "{w}"
    );
    assert!(
        w.contains("skipped inteltool sections without MSRs: GPIOS, AMBs, SPI / BIOS CNTL"),
        "{w}"
    );
    assert_eq!(imp.warnings.len(), 2, "{w}");
    assert_eq!(imp.snapshot.meta.cpus_online.as_deref(), Some("0-1"));
}

#[test]
fn inteltool_coffee_lake_log() {
    let text = read(H310_INTELTOOL);
    let imp = import::parse_msr(&text, H310_INTELTOOL).unwrap();
    let msr = imp.snapshot.msr.as_ref().unwrap();
    assert_eq!(msr.cpus.len(), 1);
    let c = &msr.cpus[&0];
    assert_eq!(c.values.len(), 48 + 220);
    assert!(c.unreadable.is_empty());
    assert_eq!(c.values[&0x1a0], 0x850089);
    assert_eq!(c.values[&0x38f], 0x7_0000_000f);
    assert_eq!(c.values[&0x1fc], 0x2c_005d);
    let st = decode::mtrr::decode(&c.values, Some(39)).unwrap();
    assert_eq!(st.vcnt, 10);
    assert_eq!(
        st.variable.iter().map(|v| v.describe()).collect::<Vec<_>>(),
        ["0xc0000000-0xffffffff (1GB) UC"]
    );
    let w = imp.warnings.join("\n");
    assert!(
        w.contains("skipped inteltool sections without MSRs: RCBA, ACPI/PMC"),
        "{w}"
    );
}

#[test]
fn rdmsr_transcript_imports() {
    let rel = "rdmsr/cloudlab-c220g1-rdmsr-a-0x199.txt";
    let text = read(rel);
    assert_eq!(import::detect(&text), Some(Kind::Rdmsr));
    let imp = import::parse_msr(&text, rel).unwrap();
    let msr = imp.snapshot.msr.as_ref().unwrap();
    assert_eq!(msr.cpus.len(), 16);
    assert!(msr.cpus.values().all(|c| c.values[&0x199] == 0x2000));
    assert_eq!(msr.selection, "0x199");
    assert_eq!(imp.warnings.len(), 1, "{:?}", imp.warnings);
    assert!(imp.warnings[0].contains("in the order printed"));
}

// ---------------------------------------------------------------------------------------
// detect and load_any on every real dump

#[test]
fn every_real_dump_loads_through_load_any() {
    let dir = tempfile::tempdir().unwrap();
    for (rel, kind) in [
        (LAPTOP, Kind::Lspci),
        (GPU, Kind::Lspci),
        (NIC, Kind::Lspci),
        (ROOT_PORT, Kind::Lspci),
        ("mtrr/twaite-442proj2-proc-mtrr.txt", Kind::ProcMtrr),
        (ACER_INTELTOOL, Kind::Inteltool),
        (H310_INTELTOOL, Kind::Inteltool),
        ("rdmsr/cloudlab-c220g1-rdmsr-a-0x199.txt", Kind::Rdmsr),
    ] {
        assert_eq!(import::detect(&read(rel)), Some(kind), "{rel}");
        let snap = import::load_any(&data(rel)).unwrap();
        assert!(
            matches!(&snap.meta.origin,
            Origin::Import { importer, .. } if importer == kind.name()),
            "{rel}"
        );
        // The snapshot file round-trips and loads as a snapshot.
        let path = dir.path().join("s.json");
        std::fs::write(&path, snap.to_json()).unwrap();
        assert_eq!(import::load_any(&path).unwrap(), snap, "{rel}");
        assert_eq!(Snapshot::load(&path).unwrap(), snap, "{rel}");
    }
}

// ---------------------------------------------------------------------------------------
// The command

fn regdrift() -> Cmd {
    Cmd::cargo_bin("regdrift").unwrap()
}

#[test]
fn cli_imports_each_kind_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, rel, what) in [
        ("lspci", LAPTOP, "25 PCI devices"),
        (
            "mtrr",
            "mtrr/twaite-442proj2-proc-mtrr.txt",
            "8 /proc/mtrr lines",
        ),
        ("msr", ACER_INTELTOOL, "138 MSR values on 2 CPUs"),
        (
            "msr",
            "rdmsr/cloudlab-c220g1-rdmsr-a-0x199.txt",
            "16 MSR values on 16 CPUs",
        ),
        ("auto", NIC, "1 PCI device"),
    ] {
        let out = dir.path().join(format!("{kind}.json"));
        regdrift()
            .args(["import", kind])
            .arg(data(rel))
            .arg("-o")
            .arg(&out)
            .assert()
            .success()
            .stdout("")
            .stderr(predicate::str::contains(format!(": {what}")));
        let snap = Snapshot::load(&out).unwrap();
        assert!(matches!(snap.meta.origin, Origin::Import { .. }));
    }
}

#[test]
fn cli_writes_to_stdout_and_reads_stdin() {
    let out = regdrift()
        .args(["import", "auto", "-"])
        .write_stdin(read(ROOT_PORT))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let snap = Snapshot::from_json(&String::from_utf8(out).unwrap()).unwrap();
    assert!(matches!(&snap.meta.origin, Origin::Import { file, .. } if file == "<stdin>"));
    assert_eq!(snap.pci.unwrap().devices.len(), 1);
    regdrift()
        .args(["import", "lspci"])
        .arg(data(GPU))
        .args(["-o", "-"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"regdrift-snapshot\""));
}

#[test]
fn cli_errors_name_the_file_and_line() {
    regdrift()
        .args(["import", "mtrr"])
        .arg(data(NIC))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "pciutils-cap-pcie-2-intel-82576-nic.txt: line 1: not a /proc/mtrr line",
        ));
    regdrift()
        .args(["import", "lspci"])
        .arg(data("mtrr/khandevops1-linux-proc-mtrr.txt"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no PCI device found"));
    regdrift()
        .args(["import", "auto", "/nonexistent/dump.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read /nonexistent/dump.txt",
        ));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "nothing to see\n").unwrap();
    regdrift()
        .args(["import", "auto"])
        .arg(&junk)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "neither a regdrift snapshot nor a dump",
        ));
    let binary = dir.path().join("bin");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0xff]).unwrap();
    regdrift()
        .args(["import", "msr"])
        .arg(&binary)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not UTF-8"));
}

#[test]
fn cli_warns_about_partial_imports() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.txt");
    let text = read(NIC);
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let out = dir.path().join("cut.json");
    regdrift()
        .args(["import", "lspci"])
        .arg(&truncated)
        .arg("-o")
        .arg(&out)
        .assert()
        .success()
        .stderr(
            predicate::str::contains("regdrift: warning: ")
                .and(predicate::str::contains("truncated?")),
        );
    let snap = Snapshot::load(&out).unwrap();
    assert!(snap
        .meta
        .problems
        .iter()
        .any(|p| p.reason.contains("truncated?")));
    let d = snap.pci.unwrap().devices.into_values().next().unwrap();
    assert_eq!(&d.config[..4], &[0x86, 0x80, 0xc9, 0x10]);
}
