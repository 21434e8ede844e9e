//! The TUI without a terminal: whole screens rendered on ratatui's TestBackend with
//! assertions on the buffer, and the app driven through its actions.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

use regdrift::export::Format;
use regdrift::owners::OwnerDb;
use regdrift::regdb::{RegDb, Volatility};
use regdrift::report::{Divergence, Drivers, FieldChange, Kind, ModuleDiff, Report, Side, Value};
use regdrift::snapshot::{Bdf, CpuMsrs, MsrSection, Origin, PciDevice, PciSection, Snapshot};
use regdrift::tui::app::{Action, App, Command, Focus, Session};
use regdrift::tui::model::{Dataset, Knowledge, Node, Source};

const REGDB: &str = r#"
[[msr]]
index = 0x10
name = "IA32_TIME_STAMP_COUNTER"
description = "Time-stamp counter"
volatile = "counter"

[[msr]]
index = 0x1a0
name = "IA32_MISC_ENABLE"
description = "Miscellaneous feature enables"
[[msr.field]]
name = "FAST_STRINGS"
bits = "0"
[[msr.field]]
name = "LIMIT_CPUID"
bits = "22"

[[msr]]
index = 0x1fc
name = "MSR_IA32_POWER_CTL"
description = "Power control"
[[msr.field]]
name = "C1E_PROMOTION"
bits = "1"
description = "C1E promotion enable"
[[msr.field]]
name = "BIT0"
bits = "0"
"#;

const OWNERS: &str = r#"
[[owner]]
driver = "intel_idle"
source = "drivers/idle/intel_idle.c"
function = "c1e_promotion_disable"
restores = "no"
note = "Clears C1E promotion at CPU init; no shutdown or kexec path sets it back."
msr = [0x1fc]
mask = 0x2

[[owner]]
driver = "PCI core"
source = "drivers/pci/pci.c"
function = "pci_enable_device"
restores = "partial"
note = "Sets memory and bus-master enables."
pci = ["header.command"]
mask = 0x6
"#;

fn know() -> Knowledge {
    static K: OnceLock<(RegDb, OwnerDb)> = OnceLock::new();
    let (r, o) = K.get_or_init(|| {
        (
            RegDb::from_toml(REGDB).unwrap(),
            OwnerDb::from_toml(OWNERS).unwrap(),
        )
    });
    Knowledge {
        regdb: r,
        owners: o,
    }
}

const AHCI: Bdf = Bdf {
    domain: 0,
    bus: 0,
    device: 0x1f,
    function: 2,
};

fn snapshot(kernel: &str, c1e: u64, misc3: u64, command: u16, driver: &str) -> Snapshot {
    let mut s = Snapshot::new(Origin::Capture { root: "/".into() });
    s.meta.kernel_release = Some(kernel.into());
    s.meta.boot_id = Some(format!("{kernel}-0000-boot"));
    s.meta.modules = Some(if kernel.ends_with("kexec") {
        vec!["ahci".into(), "intel_idle".into(), "nvme".into()]
    } else {
        vec!["ahci".into(), "intel_idle".into()]
    });
    let mut cpus = BTreeMap::new();
    for cpu in 0..4u32 {
        let mut c = CpuMsrs::default();
        c.values.insert(0x10, 1000 + cpu as u64 + c1e * 7);
        c.values
            .insert(0x1a0, if cpu == 3 { misc3 } else { 0x850089 });
        c.values.insert(0x1fc, c1e);
        if cpu == 2 {
            c.unreadable.insert(0x3a, "EIO".into());
        }
        cpus.insert(cpu, c);
    }
    s.msr = Some(MsrSection {
        selection: "known".into(),
        cpus,
    });
    let mut config = vec![0u8; 256];
    config[..4].copy_from_slice(&[0x86, 0x80, 0x29, 0x3b]);
    config[4..6].copy_from_slice(&command.to_le_bytes());
    config[0x0b] = 0x01;
    config[0x0a] = 0x06;
    let mut devices = BTreeMap::new();
    devices.insert(
        AHCI,
        PciDevice {
            vendor: 0x8086,
            device: 0x3b29,
            class: 0x010601,
            revision: 6,
            driver: if driver.is_empty() {
                None
            } else {
                Some(driver.into())
            },
            config,
            ..PciDevice::default()
        },
    );
    s.pci = Some(PciSection { devices });
    s
}

/// A cold boot and a kexec boot: C1E promotion cleared on every CPU (intel_idle), cpu 3's
/// MISC_ENABLE unlike its siblings, the SATA controller's Command register changed and
/// its driver gone; the TSC moved (volatile).
fn pair() -> (Snapshot, Snapshot, Report) {
    let base = snapshot("6.1.0-cold", 0x2, 0x850089, 0x0407, "ahci");
    let cur = snapshot("6.1.0-kexec", 0x0, 0x850088, 0x0400, "");
    let k = know();
    let mut c1e = Divergence::new(Kind::Msr, "MSR_IA32_POWER_CTL");
    c1e.cpus = vec![0, 1, 2, 3];
    c1e.register = Some("0x1fc".into());
    c1e.width = Some(64);
    c1e.baseline = Some(Value::Num(2));
    c1e.current = Some(Value::Num(0));
    c1e.changed_bits = Some(2);
    c1e.fields = vec![FieldChange {
        name: "C1E_PROMOTION".into(),
        bits: "1".into(),
        baseline: 1,
        current: 0,
        baseline_meaning: None,
        current_meaning: None,
    }];
    c1e.owners = k.owners.for_msr(0x1fc, 2).into_iter().cloned().collect();
    let mut misc = Divergence::new(Kind::Msr, "IA32_MISC_ENABLE");
    misc.cpus = vec![3];
    misc.register = Some("0x1a0".into());
    misc.width = Some(64);
    misc.baseline = Some(Value::Num(0x850089));
    misc.current = Some(Value::Num(0x850088));
    misc.changed_bits = Some(1);
    misc.notes = vec!["cpu 3 now differs from its siblings".into()];
    let mut tsc = Divergence::new(Kind::Msr, "IA32_TIME_STAMP_COUNTER");
    tsc.cpus = vec![0];
    tsc.register = Some("0x10".into());
    tsc.width = Some(64);
    tsc.baseline = Some(Value::Num(1014));
    tsc.current = Some(Value::Num(1000));
    tsc.changed_bits = Some(1014 ^ 1000);
    tsc.volatile = Some(Volatility::Counter);
    let mut cmd = Divergence::new(Kind::Pci, "Command");
    cmd.bdf = Some(AHCI);
    cmd.register = Some("0x4".into());
    cmd.group = Some("Header".into());
    cmd.width = Some(16);
    cmd.baseline = Some(Value::Num(0x0407));
    cmd.current = Some(Value::Num(0x0400));
    cmd.changed_bits = Some(0x7);
    cmd.owners = k
        .owners
        .for_pci("header.command", 7)
        .into_iter()
        .cloned()
        .collect();
    let mut drv = Divergence::new(Kind::PciDevice, "driver");
    drv.bdf = Some(AHCI);
    drv.baseline = Some(Value::Text("ahci".into()));
    drv.current = Some(Value::Text("none".into()));
    drv.drivers = Some(Drivers {
        baseline: Some("ahci".into()),
        current: None,
    });
    let report = Report {
        format: regdrift::report::FORMAT,
        version: regdrift::report::VERSION,
        baseline: Side {
            name: "cold.json".into(),
            ..Side::default()
        },
        current: Side {
            name: "kexec.json".into(),
            ..Side::default()
        },
        compared: vec!["msr".into(), "pci".into()],
        left_out: vec![],
        warnings: vec![],
        modules: ModuleDiff {
            only_baseline: vec![],
            only_current: vec!["nvme".into()],
        },
        divergences: vec![c1e, misc, tsc, cmd, drv],
        hidden_volatile: 0,
    };
    (base, cur, report)
}

fn dataset() -> Arc<Dataset> {
    let (b, c, r) = pair();
    Arc::new(Dataset::build(
        Source {
            name: "cold.json".into(),
            snap: Arc::new(b),
        },
        Source {
            name: "kexec.json".into(),
            snap: Arc::new(c),
        },
        r,
        know(),
    ))
}

fn app(w: u16, h: u16) -> App {
    let mut a = App::with_data(know(), Session::Files, dataset());
    a.update(Action::Resize {
        width: w,
        height: h,
    });
    a
}

fn draw(app: &App) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    t.draw(|f| f.render_widget(app, f.area())).unwrap();
    t.backend().buffer().clone()
}

fn lines(buf: &Buffer) -> Vec<String> {
    let a = buf.area;
    (0..a.height)
        .map(|y| {
            (0..a.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

fn screen(buf: &Buffer) -> String {
    lines(buf)
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Row and column of the first occurrence of `needle` on screen (column in cells).
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    for (y, l) in lines(buf).iter().enumerate() {
        if let Some(byte) = l.find(needle) {
            return Some((y as u16, l[..byte].chars().count() as u16));
        }
    }
    None
}

fn keys(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::Char(c));
    }
}

#[test]
fn starts_on_the_first_divergence_with_paths_open() {
    let a = app(80, 24);
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 0,
            index: 0x1fc
        })
    );
    // Volatile TSC left out by default; four divergences counted.
    assert_eq!(a.tree.total(), 4);
    assert_eq!(a.tree.hidden_volatile, 1);
    let s = screen(&draw(&a));
    assert!(s.contains("MSR_IA32_POWER_CTL"), "{s}");
    assert!(s.contains("1/4 divergences"), "{s}");
    assert!(s.contains("1 volatile hidden"), "{s}");
}

#[test]
fn whole_screen_80x24() {
    let a = app(80, 24);
    insta::assert_snapshot!("screen_80x24_c1e", screen(&draw(&a)));
}

#[test]
fn whole_screen_200x60() {
    let a = app(200, 60);
    insta::assert_snapshot!("screen_200x60_c1e", screen(&draw(&a)));
}

#[test]
fn bit_grid_lights_the_changed_bit() {
    for (w, h) in [(80, 24), (200, 60)] {
        let a = app(w, h);
        let buf = draw(&a);
        let ls = lines(&buf);
        // The grid's last "cur" line holds bit 0 at its end; bit 1 is one cell before.
        let cur_y = ls
            .iter()
            .rposition(|l| l.contains("cur "))
            .map(|y| y as u16)
            .unwrap_or_else(|| panic!("no cur line at {w}x{h}:\n{}", screen(&buf)));
        let base_y = cur_y - 1;
        let marks_y = cur_y + 1;
        let line = &ls[cur_y as usize];
        let end = line.trim_end().chars().count() as u16 - 1; // bit 0's column
        let bit1 = end - 1;
        for y in [base_y, cur_y] {
            let c = &buf[(bit1, y)];
            assert!(
                c.modifier.contains(Modifier::REVERSED),
                "bit 1 not lit at {w}x{h} line {y}"
            );
            assert_eq!(c.fg, Color::Red);
            let c0 = &buf[(end, y)];
            assert!(!c0.modifier.contains(Modifier::REVERSED), "bit 0 lit");
        }
        assert_eq!(buf[(bit1, base_y)].symbol(), "1");
        assert_eq!(buf[(bit1, cur_y)].symbol(), "0");
        // The marker row says it without colour.
        assert_eq!(buf[(bit1, marks_y)].symbol(), "^");
        assert_eq!(buf[(end, marks_y)].symbol(), " ");
        let marks = &ls[marks_y as usize];
        assert_eq!(marks.matches('^').count(), 1, "{marks}");
    }
}

#[test]
fn owner_pane_names_intel_idle_for_c1e() {
    let a = app(200, 60);
    let s = screen(&draw(&a));
    assert!(s.contains("likely owners"), "{s}");
    assert!(s.contains("intel_idle  restores: no"), "{s}");
    assert!(
        s.contains("drivers/idle/intel_idle.c: c1e_promotion_disable"),
        "{s}"
    );
    assert!(s.contains("no shutdown or kexec path sets it back"), "{s}");
    assert!(s.contains("only now: nvme"), "{s}");
    // The changed field comes first, marked.
    let (fy, _) = find(&draw(&a), "* C1E_PROMOTION").expect("changed field marked");
    let (by, _) = find(&draw(&a), "  BIT0").expect("unchanged field");
    assert!(fy < by);
}

#[test]
fn per_cpu_view_marks_the_odd_cpu() {
    let mut a = app(200, 60);
    a.update(Action::NextDivergence);
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 3,
            index: 0x1a0
        })
    );
    let s = screen(&draw(&a));
    assert!(s.contains("0x1a0 on 4 CPUs · 2 values"), "{s}");
    assert!(
        s.contains("*!> 0x0000000000850089 → 0x0000000000850088  cpu 3"),
        "{s}"
    );
    assert!(s.contains("    0x0000000000850089  cpus 0-2"), "{s}");
    assert!(s.contains("cpu 3 now differs from its siblings"), "{s}");
}

#[test]
fn next_and_previous_walk_every_divergence_and_wrap() {
    let mut a = app(80, 24);
    let mut seen = vec![a.selected.unwrap()];
    for _ in 0..3 {
        a.update(Action::NextDivergence);
        seen.push(a.selected.unwrap());
    }
    assert_eq!(
        seen,
        vec![
            Node::Msr {
                cpu: 0,
                index: 0x1fc
            },
            Node::Msr {
                cpu: 3,
                index: 0x1a0
            },
            Node::Device(AHCI),
            Node::PciReg {
                bdf: AHCI,
                offset: 4
            },
        ]
    );
    a.update(Action::NextDivergence);
    assert_eq!(a.selected, Some(seen[0]));
    assert!(a.message.as_ref().unwrap().text.contains("wrapped"));
    a.update(Action::PrevDivergence);
    assert_eq!(a.selected, Some(seen[3]));
    a.update(Action::PrevDivergence);
    assert_eq!(a.selected, Some(seen[2]));
    // From cpu 2's row of the all-CPU divergence, next goes on past it.
    assert!(a.select_node(Node::Msr {
        cpu: 2,
        index: 0x1fc
    }));
    a.update(Action::NextDivergence);
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 3,
            index: 0x1a0
        })
    );
}

#[test]
fn volatile_toggle_counts_and_shows_the_tsc() {
    let mut a = app(80, 24);
    a.update(Action::ToggleVolatile);
    assert_eq!(a.tree.total(), 5);
    assert_eq!(a.tree.hidden_volatile, 0);
    a.update(Action::Top);
    let mut found = false;
    for _ in 0..6 {
        a.update(Action::NextDivergence);
        if a.selected
            == Some(Node::Msr {
                cpu: 0,
                index: 0x10,
            })
        {
            found = true;
        }
    }
    assert!(found, "n reaches the TSC when volatile registers are shown");
    let s = screen(&draw(&a));
    assert!(s.contains("volatile: counts by itself"), "{s}");
}

#[test]
fn only_diverging_toggle_shows_every_register() {
    let mut a = app(80, 40);
    let before = a.tree.rows.len();
    a.update(Action::ToggleOnlyDiverging);
    a.update(Action::ExpandAll);
    assert!(a.tree.rows.len() > before);
    // cpu 2's unreadable MSR is listed and marked `?`; the TSC stays hidden (volatile).
    assert!(a
        .tree
        .position(Node::Msr {
            cpu: 2,
            index: 0x3a
        })
        .is_some());
    assert!(a
        .tree
        .position(Node::Msr {
            cpu: 0,
            index: 0x10
        })
        .is_none());
    assert!(a.select_node(Node::Msr {
        cpu: 2,
        index: 0x3a
    }));
    let buf = draw(&a);
    let (y, _) = find(&buf, "0x3a MSR_0x3a").expect("row shown");
    assert_eq!(buf[(0, y)].symbol(), "?");
    let s = screen(&buf);
    assert!(s.contains("unreadable (EIO)"), "{s}");
    a.update(Action::ToggleOnlyDiverging);
    assert!(a
        .tree
        .position(Node::Msr {
            cpu: 2,
            index: 0x3a
        })
        .is_none());
}

#[test]
fn search_jumps_as_you_type_and_escape_restores() {
    let mut a = app(80, 24);
    let start = a.selected;
    a.update(Action::Search);
    keys(&mut a, "misc");
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 3,
            index: 0x1a0
        })
    );
    let s = screen(&draw(&a));
    assert!(s.contains("/misc"), "{s}");
    assert!(s.contains("→ IA32_MISC_ENABLE"), "{s}");
    a.update(Action::Escape);
    assert_eq!(a.selected, start);
    assert!(a.prompt.is_none());

    // A hit passed over while typing leaves the filters as they were.
    let filters = a.filters;
    a.update(Action::Search);
    keys(&mut a, "TIME_STAMP");
    assert!(a.filters.show_volatile, "relaxed to show the TSC");
    for _ in 0.."TIME_STAMP".len() {
        a.update(Action::Backspace);
    }
    keys(&mut a, "power");
    assert_eq!(a.filters, filters);
    a.update(Action::Escape);
    assert_eq!(a.filters, filters);

    // Numbers, fields, drivers and device ids are searchable too.
    a.update(Action::Search);
    keys(&mut a, "0x1fc");
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 0,
            index: 0x1fc
        })
    );
    a.update(Action::Submit);
    assert!(a.prompt.is_none());
    a.update(Action::Search);
    keys(&mut a, "limit_cpuid");
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 3,
            index: 0x1a0
        })
    );
    a.update(Action::Submit);
    a.update(Action::Search);
    keys(&mut a, "driver ahci");
    assert_eq!(a.selected, Some(Node::Device(AHCI)));
    a.update(Action::Submit);
    a.update(Action::Search);
    keys(&mut a, "3b29");
    assert_eq!(a.selected, Some(Node::Device(AHCI)));
    a.update(Action::Backspace);
    a.update(Action::Submit);
    // A register hidden by the filters is reached by relaxing them.
    a.update(Action::Search);
    keys(&mut a, "TIME_STAMP");
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 0,
            index: 0x10
        })
    );
    assert!(a.filters.show_volatile);
    a.update(Action::Submit);
    assert!(a.message.as_ref().unwrap().text.contains("relaxed"));
}

#[test]
fn export_prompt_hands_the_shown_report_to_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = app(80, 24);
    a.update(Action::ExportPrompt);
    // Replace the suggested name.
    for _ in 0..40 {
        a.update(Action::Backspace);
    }
    let path = dir.path().join("diff.md");
    keys(&mut a, path.to_str().unwrap());
    let cmds = a.update(Action::Submit);
    let [Command::Export {
        path: p,
        format,
        report,
    }] = cmds.as_slice()
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(p, &path);
    assert_eq!(*format, Format::Markdown);
    // The volatile TSC is left out, as on screen, and counted as hidden.
    assert_eq!(report.divergences.len(), 4);
    assert_eq!(report.hidden_volatile, 1);
    assert!(a.prompt.is_none());
    // An empty name exports nothing.
    a.update(Action::ExportPrompt);
    for _ in 0..40 {
        a.update(Action::Backspace);
    }
    assert!(a.update(Action::Submit).is_empty());
    assert!(a.message.as_ref().unwrap().error);
}

#[test]
fn moving_registers_are_marked_and_can_be_left_out() {
    let mut a = app(80, 24);
    let ds = a.data.clone().unwrap();
    let mut moved = regdrift::tui::tree::Moving::default();
    moved.msrs.insert(0x1a0);
    a.update(Action::Loaded(regdrift::tui::app::Loaded {
        data: ds,
        moved,
        why: regdrift::tui::app::LoadReason::Refresh,
        took: None,
        frame: None,
        baseline_frame: None,
    }));
    assert_eq!(a.tree.total(), 4);
    let s = screen(&draw(&a));
    assert!(s.contains("1 seen moving"), "{s}");
    a.update(Action::ToggleHideMoving);
    assert_eq!(a.tree.total(), 3);
    assert_eq!(a.tree.hidden_moving, 1);
    assert!(a
        .tree
        .position(Node::Msr {
            cpu: 3,
            index: 0x1a0
        })
        .is_none());
    let s = screen(&draw(&a));
    assert!(
        s.contains("left out what was seen moving (1 register)"),
        "{s}"
    );
    a.update(Action::Escape);
    let s = screen(&draw(&a));
    assert!(s.contains("1 moving hidden"), "{s}");
    // An export says what the moving filter left out.
    let r = a.shown_report().unwrap();
    assert_eq!(r.divergences.len(), 3);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("1 divergence left out: on registers seen changing")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn pci_register_shows_dump_with_diverging_bytes_lit() {
    let mut a = app(200, 60);
    assert!(a.select_node(Node::PciReg {
        bdf: AHCI,
        offset: 4
    }));
    let buf = draw(&a);
    let s = screen(&buf);
    assert!(s.contains("Command @0x004 · Header · 0000:00:1f.2"), "{s}");
    assert!(s.contains("config space (current, 256 bytes)"), "{s}");
    assert!(s.contains("bound driver: ahci → none"), "{s}");
    assert!(s.contains("PCI core  restores: partial"), "{s}");
    // "00: 86 80 29 3b 00 04 ...": the byte at 0x04 differs (07 → 00) and is lit.
    let (y, x) = find(&buf, "00: 86 80 29 3b 00 04").expect("dump line");
    let b4 = x + 4 + 4 * 3;
    assert_eq!(buf[(b4, y)].symbol(), "0");
    assert!(buf[(b4, y)].modifier.contains(Modifier::REVERSED));
    // 0x05 is the same on both sides: part of the register (underlined) but not lit.
    let b5 = b4 + 3;
    assert!(!buf[(b5, y)].modifier.contains(Modifier::REVERSED));
    assert!(buf[(b5, y)].modifier.contains(Modifier::UNDERLINED));
    a.update(Action::ToggleDumpSide);
    let s = screen(&draw(&a));
    assert!(s.contains("00: 86 80 29 3b 07 04"), "{s}");
}

#[test]
fn no_color_keeps_meaning_in_markers_and_reverse_video() {
    let mut a = app(200, 60);
    a.color = false;
    let buf = draw(&a);
    for c in buf.content() {
        assert_eq!(c.fg, Color::Reset, "colour used under NO_COLOR: {c:?}");
        assert_eq!(c.bg, Color::Reset);
    }
    let s = screen(&buf);
    assert!(s.contains('^'));
    assert!(buf
        .content()
        .iter()
        .any(|c| c.modifier.contains(Modifier::REVERSED) && c.symbol() == "1"));
}

#[test]
fn strings_from_files_are_inert() {
    let (b, mut c, r) = pair();
    c.pci
        .as_mut()
        .unwrap()
        .devices
        .get_mut(&AHCI)
        .unwrap()
        .driver = Some("evil\x1b]0;owned\x07".into());
    c.meta.kernel_release = Some("6.1\x1b[31m".into());
    let ds = Dataset::build(
        Source {
            name: "cold\x1b[2J.json".into(),
            snap: Arc::new(b),
        },
        Source {
            name: "kexec.json".into(),
            snap: Arc::new(c),
        },
        r,
        know(),
    );
    let mut a = App::with_data(know(), Session::Files, Arc::new(ds));
    a.update(Action::Resize {
        width: 200,
        height: 60,
    });
    a.select_node(Node::Device(AHCI));
    let buf = draw(&a);
    for cell in buf.content() {
        assert!(
            !cell.symbol().chars().any(|c| c.is_control()),
            "control character on screen"
        );
    }
    let s = screen(&buf);
    assert!(s.contains("evil\\x1b]0;owned\\x07"), "{s}");
    assert!(s.contains("cold\\x1b[2J.json"), "{s}");
}

#[test]
fn tree_keys_collapse_expand_and_go_to_parent() {
    let mut a = app(80, 24);
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 0,
            index: 0x1fc
        })
    );
    a.update(Action::Collapse); // leaf: go to its CPU
    assert_eq!(a.selected, Some(Node::Cpu(0)));
    a.update(Action::Collapse); // collapse cpu 0
    assert!(!a.expanded.contains(&Node::Cpu(0)));
    assert!(a
        .tree
        .position(Node::Msr {
            cpu: 0,
            index: 0x1fc
        })
        .is_none());
    a.update(Action::Expand);
    a.update(Action::Expand); // expanded: go to the first child
    assert_eq!(
        a.selected,
        Some(Node::Msr {
            cpu: 0,
            index: 0x1fc
        })
    );
    a.update(Action::CollapseAll);
    assert_eq!(a.selected, Some(Node::Cpu(0)));
    a.update(Action::Top);
    assert_eq!(a.selected, Some(Node::MsrSection));
    a.update(Action::ToggleExpand);
    // MSRs (collapsed), PCI, its device (collapsed).
    assert_eq!(a.tree.rows.len(), 3, "{:?}", a.tree.rows);
    let s = screen(&draw(&a));
    assert!(s.contains("▸ MSRs (4 CPUs)"), "{s}");
    let msrs = s.lines().find(|l| l.contains("MSRs (4 CPUs)")).unwrap();
    assert!(msrs.contains("2│"), "collapsed count shown: {s}");
}

#[test]
fn mouse_click_and_scroll_select_rows() {
    let mut a = app(80, 24);
    let areas = a.areas();
    let r = areas.nav_rows;
    // Click on the third row.
    a.update(Action::Click {
        column: r.x + 3,
        row: r.y + 2,
    });
    assert_eq!(a.cursor, 2);
    a.update(Action::ScrollDown {
        column: r.x + 3,
        row: r.y,
    });
    assert_eq!(a.cursor, 5.min(a.tree.rows.len() - 1));
    a.update(Action::ScrollUp {
        column: r.x + 3,
        row: r.y,
    });
    assert_eq!(a.cursor, 2.min(a.tree.rows.len() - 1));
    // Clicking a field focuses the fields pane and picks the field for the owners.
    a.select_node(Node::Msr {
        cpu: 0,
        index: 0x1fc,
    });
    let f = a.areas().field_rows;
    a.update(Action::Click {
        column: f.x + 2,
        row: f.y + 1,
    });
    assert_eq!(a.focus, Focus::Fields);
    assert_eq!(a.field_cursor, 1);
    let s = screen(&draw(&a));
    assert!(s.contains("likely owners of BIT0"), "{s}");
}

#[test]
fn small_terminal_keeps_the_cursor_on_screen() {
    let mut a = app(200, 60);
    a.update(Action::ToggleOnlyDiverging);
    a.update(Action::ExpandAll);
    a.update(Action::Bottom);
    a.update(Action::Resize {
        width: 80,
        height: 24,
    });
    let page = a.page();
    assert!(a.cursor >= a.offset && a.cursor < a.offset + page);
    let s = screen(&draw(&a));
    // The last row is the last PCI register.
    assert!(s.contains("0x004 Command"), "{s}");
    // Tiny terminals do not panic.
    for (w, h) in [(1, 1), (10, 3), (30, 8), (0, 0)] {
        a.update(Action::Resize {
            width: w,
            height: h,
        });
        let _ = draw(&a);
    }
}

#[test]
fn help_lists_the_keymap_and_closes() {
    let mut a = app(80, 24);
    a.update(Action::Help);
    let s = screen(&draw(&a));
    assert!(s.contains("next divergence"), "{s}");
    assert!(s.contains("keys · Esc closes"), "{s}");
    // Scrolls to the end, where the markers are explained.
    for _ in 0..5 {
        a.update(Action::PageDown);
    }
    let s = screen(&draw(&a));
    assert!(s.contains("seen moving between live refreshes"), "{s}");
    // Keys other than closing ones do not act on the tree behind it.
    let sel = a.selected;
    a.update(Action::NextDivergence);
    assert_eq!(a.selected, sel);
    a.update(Action::Escape);
    assert!(!a.help);
}

mod live {
    use super::*;
    use regdrift::capture::CaptureOptions;
    use regdrift::fixture::FixtureRoot;
    use regdrift::tui::app::LoadReason;
    use regdrift::tui::worker::{Control, Feed, Worker};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn next_loaded(rx: &mpsc::Receiver<Action>) -> regdrift::tui::app::Loaded {
        let t0 = Instant::now();
        loop {
            let left = Duration::from_secs(20).saturating_sub(t0.elapsed());
            match rx.recv_timeout(left) {
                Ok(Action::Loaded(l)) => return l,
                Ok(Action::CaptureStarted) | Ok(Action::Recorded(Ok(_))) => {}
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("no dataset from the worker: {e}"),
            }
        }
    }

    #[test]
    fn worker_captures_learns_moving_registers_and_swaps_baselines() {
        let dir = tempfile::tempdir().unwrap();
        let root = FixtureRoot::new(dir.path().join("root")).unwrap();
        root.cpus_online("0-1").unwrap();
        root.meta("6.1.0-live", "quiet", "1234-boot", "box")
            .unwrap();
        for cpu in 0..2 {
            root.msrs(cpu, &[(0x1fc, 2), (0x1a0, 0x850089)]).unwrap();
        }
        let mut cfg = vec![0u8; 256];
        cfg[..4].copy_from_slice(&[0x86, 0x80, 0x29, 0x3b]);
        root.pci_device(AHCI, &cfg, Some("ahci")).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut opts = CaptureOptions::new(root.path());
        opts.msrs = regdrift::capture::msr::MsrSelection::parse("0x1a0,0x1fc").unwrap();
        let w = Worker::start(
            None,
            Feed::Live {
                opts,
                interval: Duration::from_millis(50),
                record: Some(dir.path().join("live.rec")),
            },
            Knowledge::active(),
            tx,
        );
        // The first capture is the baseline: nothing diverges, nothing moved.
        let first = next_loaded(&rx);
        assert_eq!(first.why, LoadReason::Refresh);
        assert_eq!(first.data.baseline.name, "first capture");
        assert!(first.data.current.name.starts_with("live "));
        assert!(first.data.report.divergences.is_empty());
        assert!(first.moved.is_empty());
        let mut app = App::new(
            Knowledge::active(),
            Session::Live(regdrift::tui::app::LiveState {
                root: root.path().display().to_string(),
                interval: Duration::from_millis(50),
                refreshes: 0,
                capturing: true,
                last_took: None,
                error: None,
                record: Some(regdrift::tui::app::RecordState {
                    path: "live.rec".into(),
                    frames: 0,
                    marks: 0,
                    error: None,
                }),
            }),
        );
        app.update(Action::Loaded(first));

        // A register changes under the running capture: it diverges from the first
        // capture and is learned as moving; so is a config byte.
        root.msrs(1, &[(0x1a0, 0x850088)]).unwrap();
        cfg[0x40] = 1;
        root.pci_device(AHCI, &cfg, Some("ahci")).unwrap();
        // The two writes may land in different captures: learned moving accumulates.
        while !(app.moving.msrs.contains(&0x1a0) && app.moving.pci.contains(&(AHCI, 0x40))) {
            let l = next_loaded(&rx);
            assert!(!l.moved.msrs.contains(&0x1fc), "{:?}", l.moved);
            app.update(Action::Loaded(l));
        }
        assert!(app.moving.msrs.contains(&0x1a0));
        let Session::Live(s) = &app.session else {
            unreachable!()
        };
        assert!(s.refreshes >= 2);
        assert!(app.tree.total() >= 1);
        app.update(Action::Resize {
            width: 100,
            height: 30,
        });
        let screen = screen(&draw(&app));
        assert!(screen.contains("seen moving"), "{screen}");
        assert!(screen.contains("refresh #"), "{screen}");

        // Every capture went into the recording; `m` marks the last frame.
        app.update(Action::MarkPrompt);
        keys(&mut app, "planted");
        let cmds = app.update(Action::Submit);
        let [Command::Mark(label)] = cmds.as_slice() else {
            panic!("{cmds:?}")
        };
        w.send(Control::Mark(label.clone()));
        loop {
            match rx.recv_timeout(Duration::from_secs(20)).expect("a reply") {
                a @ Action::Marked(_) => {
                    app.update(a);
                    break;
                }
                a @ Action::Recorded(_) => {
                    app.update(a);
                }
                _ => {}
            }
        }
        let m = app.message.clone().unwrap();
        assert!(!m.error && m.text.contains("\"planted\""), "{m:?}");
        let rec = regdrift::record::Recording::open(&dir.path().join("live.rec")).unwrap();
        assert!(rec.frame_count() >= 2, "{}", rec.frame_count());
        assert_eq!(rec.marks().len(), 1);
        assert_eq!(rec.marks()[0].label, "planted");
        assert!(rec.snapshot(rec.marks()[0].frame).unwrap().msr.is_some());

        // Another baseline, from a file; a bad one is reported, not fatal.
        let (b, _, _) = pair();
        let path = dir.path().join("cold.json");
        b.save(&regdrift::atomic::Output::File(path.clone()))
            .unwrap();
        w.send(Control::SetBaseline(dir.path().join("missing.json")));
        let t0 = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_secs(20)).expect("a reply") {
                Action::Failed(e) => {
                    assert!(e.contains("missing.json"), "{e}");
                    break;
                }
                _ => assert!(t0.elapsed() < Duration::from_secs(20)),
            }
        }
        w.send(Control::SetBaseline(path.clone()));
        let l = loop {
            let l = next_loaded(&rx);
            if l.why == LoadReason::Baseline {
                break l;
            }
        };
        assert_eq!(l.data.baseline.name, path.display().to_string());
        w.stop();
    }

    #[test]
    fn export_command_writes_the_report_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = app(80, 24);
        for (name, needle) in [
            ("r.txt", "MSR 0x1fc MSR_IA32_POWER_CTL"),
            ("r.md", "# regdrift report"),
            ("r.json", "\"format\": \"regdrift-report\""),
        ] {
            a.update(Action::ExportPrompt);
            for _ in 0..40 {
                a.update(Action::Backspace);
            }
            let path = dir.path().join(name);
            keys(&mut a, path.to_str().unwrap());
            let mut cmds = a.update(Action::Submit);
            let done = regdrift::tui::worker::perform(cmds.remove(0)).expect("a result");
            assert_eq!(done, Action::Exported(Ok(path.display().to_string())));
            a.update(done);
            assert!(a.message.as_ref().unwrap().text.starts_with("exported to"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(needle), "{name}: {text}");
            assert!(
                !text.contains("IA32_TIME_STAMP_COUNTER"),
                "volatile left out"
            );
        }
        // A directory that does not exist: the error is shown, nothing panics.
        a.update(Action::ExportPrompt);
        for _ in 0..40 {
            a.update(Action::Backspace);
        }
        keys(&mut a, "/nonexistent/dir/r.txt");
        let mut cmds = a.update(Action::Submit);
        let done = regdrift::tui::worker::perform(cmds.remove(0)).unwrap();
        a.update(done);
        let m = a.message.as_ref().unwrap();
        assert!(
            m.error && m.text.contains("/nonexistent/dir/r.txt"),
            "{m:?}"
        );
    }
}

mod replay {
    use super::*;
    use regdrift::record::{Recording, RecordingWriter};
    use regdrift::tui::app::{FrameInfo, ReplayState};
    use regdrift::tui::worker::{Control, Feed, Worker};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Cold boot (frame 0, "cold"), a quiet second later (1), intel_idle clears C1E
    /// (2, "planted"), another quiet frame (3), the kexec boot with the SATA driver gone
    /// (4, "after-kexec").
    fn recording(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("lab.rec");
        let at = |s: &mut Snapshot, sec: u32| {
            s.meta.captured_at = Some(format!("2024-05-01T10:00:{sec:02}Z"));
        };
        let mut f0 = snapshot("6.1.0-cold", 0x2, 0x850089, 0x0407, "ahci");
        at(&mut f0, 0);
        let mut f1 = f0.clone();
        at(&mut f1, 1);
        let mut f2 = snapshot("6.1.0-cold", 0x0, 0x850089, 0x0407, "ahci");
        at(&mut f2, 2);
        let mut f3 = f2.clone();
        at(&mut f3, 3);
        let mut f4 = snapshot("6.1.0-kexec", 0x0, 0x850088, 0x0400, "");
        at(&mut f4, 9);
        let mut w = RecordingWriter::create(&path, &f0, &["cold".into()]).unwrap();
        w.append(&f1, &[]).unwrap();
        w.append(&f2, &["planted".into()]).unwrap();
        w.append(&f3, &[]).unwrap();
        w.append(&f4, &["after-kexec".into()]).unwrap();
        path
    }

    struct Session {
        app: App,
        worker: Worker,
        rx: mpsc::Receiver<Action>,
    }

    impl Session {
        fn open(path: &std::path::Path) -> Session {
            let rec = Recording::open(path).unwrap();
            let frames = (0..rec.frame_count())
                .map(|i| {
                    let m = rec.frame_meta(i).unwrap();
                    FrameInfo {
                        time_ms: m.time_ms,
                        marks: m.marks.to_vec(),
                    }
                })
                .collect();
            let mut app = App::new(
                know(),
                regdrift::tui::app::Session::Replay(ReplayState::new(
                    path.display().to_string(),
                    frames,
                    None,
                )),
            );
            app.update(Action::Resize {
                width: 120,
                height: 40,
            });
            let (tx, rx) = mpsc::channel();
            let worker = Worker::start(None, Feed::Replay(Box::new(rec)), know(), tx);
            let mut s = Session { app, worker, rx };
            s.settle();
            s
        }

        /// Apply worker messages until the app shows the frame it asked for and nothing
        /// else arrives for a moment.
        fn settle(&mut self) {
            loop {
                match self.rx.recv_timeout(Duration::from_millis(300)) {
                    Ok(a) => {
                        let cmds = self.app.update(a);
                        self.run(cmds);
                    }
                    Err(_) => {
                        let regdrift::tui::app::Session::Replay(r) = &self.app.session else {
                            unreachable!()
                        };
                        if r.shown == Some(r.frame) {
                            return;
                        }
                    }
                }
            }
        }

        fn run(&mut self, cmds: Vec<Command>) {
            for c in cmds {
                match c {
                    Command::Seek(n) => self.worker.send(Control::Seek(n)),
                    Command::BaselineFrame(n) => self.worker.send(Control::BaselineFrame(n)),
                    Command::LastChange { what, frame } => {
                        self.worker.send(Control::LastChange { what, frame })
                    }
                    Command::LoadBaseline(p) => self.worker.send(Control::SetBaseline(p)),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }

        fn act(&mut self, a: Action) {
            let cmds = self.app.update(a);
            self.run(cmds);
            self.settle();
        }

        fn state(&self) -> &ReplayState {
            match &self.app.session {
                regdrift::tui::app::Session::Replay(r) => r,
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn steps_jumps_to_marks_and_moves_the_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::open(&recording(dir.path()));
        // Frame 0 against itself: nothing diverges.
        assert_eq!(s.state().shown, Some(0));
        assert_eq!(s.app.tree.total(), 0);
        s.act(Action::FrameNext);
        assert_eq!(s.state().shown, Some(1));
        assert_eq!(s.app.tree.total(), 0);
        s.act(Action::NextMark);
        assert_eq!(s.state().shown, Some(2));
        let ds = s.app.data.clone().unwrap();
        assert_eq!(ds.current.name, "frame 2 [planted]");
        assert_eq!(ds.baseline.name, "frame 0 [cold]");
        assert_eq!(s.app.tree.total(), 1, "C1E cleared");
        // The new divergence is opened and can be reached with n.
        s.app.update(Action::NextDivergence);
        assert_eq!(
            s.app.selected,
            Some(Node::Msr {
                cpu: 0,
                index: 0x1fc
            })
        );
        s.act(Action::NextMark);
        assert_eq!(s.state().shown, Some(4));
        assert_eq!(s.app.tree.total(), 4);
        s.act(Action::NextMark);
        assert_eq!(s.state().frame, 4, "no mark after the last");
        s.act(Action::PrevMark);
        assert_eq!(s.state().shown, Some(2));
        // Frame 2 becomes the baseline: at the kexec frame only what kexec changed shows.
        s.act(Action::BaselineFromFrame);
        assert_eq!(s.state().baseline_frame, Some(2));
        s.act(Action::LastFrame);
        assert_eq!(s.state().shown, Some(4));
        assert_eq!(s.app.tree.total(), 3, "C1E is no longer a divergence");
        // Back to the first frame as the baseline.
        s.act(Action::FirstFrame);
        s.act(Action::BaselineFromFrame);
        assert_eq!(s.state().baseline_frame, Some(0));
        s.act(Action::FramePrev);
        assert_eq!(s.state().shown, Some(0));
        s.worker.send(Control::Stop);
    }

    #[test]
    fn when_did_this_register_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::open(&recording(dir.path()));
        s.act(Action::LastFrame);
        assert!(s.app.select_node(Node::Msr {
            cpu: 0,
            index: 0x1fc
        }));
        s.act(Action::LastChange);
        // C1E was cleared at frame 2: the replay goes there and says so.
        assert_eq!(s.state().shown, Some(2));
        let m = s.app.message.clone().unwrap();
        assert!(
            m.text
                .contains("MSR 0x1fc on cpu 0 last changed at frame 2 [planted]"),
            "{m:?}"
        );
        // A register that never changed.
        s.app.update(Action::ToggleOnlyDiverging);
        s.app.update(Action::ExpandAll);
        assert!(s.app.select_node(Node::Msr {
            cpu: 1,
            index: 0x10
        }));
        s.act(Action::LastChange);
        let m = s.app.message.clone().unwrap();
        assert!(
            m.text.contains("changed at frame 2"),
            "the TSC moved: {m:?}"
        );
        // The PCI Command register changed in the kexec frame.
        s.act(Action::LastFrame);
        assert!(s.app.select_node(Node::PciReg {
            bdf: AHCI,
            offset: 4
        }));
        s.act(Action::FirstFrame);
        s.act(Action::LastFrame);
        s.act(Action::LastChange);
        assert_eq!(s.state().shown, Some(4));
        let m = s.app.message.clone().unwrap();
        assert!(
            m.text.contains("last changed at frame 4 [after-kexec]"),
            "{m:?}"
        );
        // Not a register: a hint, no query.
        assert!(s.app.select_node(Node::MsrSection));
        let cmds = s.app.update(Action::LastChange);
        assert!(cmds.is_empty());
        assert!(s
            .app
            .message
            .as_ref()
            .unwrap()
            .text
            .contains("select a register"));
        s.worker.send(Control::Stop);
    }

    #[test]
    fn plays_to_the_end_at_the_chosen_speed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::open(&recording(dir.path()));
        let normal = s.app.tick_in();
        assert_eq!(normal, None, "paused: no ticks");
        s.act(Action::PlayPause);
        // One second between frames 0 and 1 at ×1.
        assert_eq!(s.app.tick_in(), Some(Duration::from_secs(1)));
        s.act(Action::Faster);
        assert_eq!(s.app.tick_in(), Some(Duration::from_millis(500)));
        for _ in 0..4 {
            s.act(Action::Slower);
        }
        assert_eq!(
            s.app.tick_in(),
            Some(Duration::from_secs(2)),
            "capped at 2 s"
        );
        for _ in 0..10 {
            s.act(Action::Tick);
        }
        assert_eq!(s.state().shown, Some(4));
        assert!(!s.state().playing);
        assert!(s
            .app
            .message
            .as_ref()
            .unwrap()
            .text
            .contains("end of the recording"));
        // Playing from the end starts over.
        s.act(Action::PlayPause);
        assert_eq!(s.state().shown, Some(0));
        assert!(s.state().playing);
        // A step pauses.
        s.act(Action::FrameNext);
        assert!(!s.state().playing);
        s.worker.send(Control::Stop);
    }

    #[test]
    fn timeline_shows_frame_marks_and_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Session::open(&recording(dir.path()));
        s.act(Action::NextMark);
        s.act(Action::NextMark);
        let buf = draw(&s.app);
        let text = screen(&buf);
        assert!(
            text.contains("‖ ×1 frame 4/4 [after-kexec]  2024-05-01T10:00:09.000Z +9s"),
            "{text}"
        );
        assert!(text.contains("baseline frame 0 [cold]"), "{text}");
        let ls = lines(&buf);
        let bar = ls.iter().find(|l| l.starts_with('B')).expect("the bar");
        assert!(bar.ends_with('●'), "{bar}");
        assert_eq!(bar.matches('|').count(), 1, "the planted mark: {bar}");
        // A click on the bar seeks.
        let a = s.app.areas();
        let x = a.timeline_bar.x + a.timeline_bar.width / 2;
        s.act(Action::Click {
            column: x,
            row: a.timeline_bar.y,
        });
        assert_eq!(s.state().shown, Some(2));
        insta::assert_snapshot!("replay_120x40_planted", screen(&draw(&s.app)));
        for (w, h) in [(80, 24), (20, 5), (5, 3), (1, 1)] {
            s.app.update(Action::Resize {
                width: w,
                height: h,
            });
            let _ = draw(&s.app);
        }
        s.worker.send(Control::Stop);
    }
}

mod cli {
    use assert_cmd::Command;
    use predicates::str::contains;

    #[test]
    fn explore_refuses_what_it_cannot_do() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("old.rec");
        std::fs::write(&existing, b"x").unwrap();
        Command::cargo_bin("regdrift")
            .unwrap()
            .args(["explore", "--record"])
            .arg(&existing)
            .assert()
            .code(2)
            .stderr(contains("old.rec exists"));
        Command::cargo_bin("regdrift")
            .unwrap()
            .args(["explore", "a.json", "b.json", "--record", "new.rec"])
            .assert()
            .code(2)
            .stderr(contains("--record records the live machine"));
        Command::cargo_bin("regdrift")
            .unwrap()
            .args(["explore", "a.json"])
            .assert()
            .code(2)
            .stderr(contains("one snapshot given"));
        // Not on a terminal: said plainly, nothing drawn.
        Command::cargo_bin("regdrift")
            .unwrap()
            .args(["explore", "a.json", "b.json"])
            .assert()
            .code(2)
            .stdout("")
            .stderr(contains("explore needs a terminal"));
        Command::cargo_bin("regdrift")
            .unwrap()
            .args(["replay", "x.rec"])
            .assert()
            .code(2)
            .stderr(contains("replay needs a terminal"));
    }
}
