//! regdrift's PCI decode against `lspci -vvv` on the same bytes.
//!
//! The test builds a machine root with the reference laptop's PCI functions (sysfs layout,
//! symlinks, `config`, `irq`, `resource`), runs
//! `lspci -A linux-sysfs -O sysfs.path=ROOT/sys/bus/pci -vvv -D -nn` on it, parses lspci's
//! text per device and per capability, and checks that regdrift's layout and decoded fields
//! say the same thing: the capability list, the registers lspci shows for each device/port
//! type, every `Name+`/`Name-` flag of the registers that matter for kexec, and the values
//! lspci prints as words (`MaxPayload 256 bytes`, `ASPM L1 Enabled`, `Count=1/32`, …).
//! It does so for the laptop as shipped, for a second state with many control bits flipped
//! (ASPM, MSI/MSI-X enables, D3hot, INTx, AER masks, SR-IOV, ACS, L1 substates…), and for a
//! seeded variant of the machine.
//!
//! lspci comes from pciutils; the test fails (it does not skip) when lspci is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

use regdrift::decode::pci::{self, Layout, PciReg};
use regdrift::decode::Field;
use regdrift::fixture::pci_configs::{self, get_le, set_bits, set_le};
use regdrift::fixture::FixtureRoot;
use regdrift::snapshot::Bdf;

// ---------------------------------------------------------------------------------------
// Running lspci

fn lspci_on(root: &std::path::Path) -> String {
    let sysfs = root.join("sys/bus/pci");
    let out = match Command::new("lspci")
        .arg("-A")
        .arg("linux-sysfs")
        .arg("-O")
        .arg(format!("sysfs.path={}", sysfs.display()))
        .args(["-vvv", "-D", "-nn"])
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "lspci was not found: this test compares regdrift's PCI decode with lspci's. \
             Install pciutils (`apt-get install pciutils`); CI installs it."
        ),
        Err(e) => panic!("could not run lspci: {e}"),
    };
    assert!(
        out.status.success(),
        "lspci failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("lspci prints UTF-8")
}

// ---------------------------------------------------------------------------------------
// Parsing lspci -vvv

/// One labelled part of lspci's output (`DevCtl: …` with its continuation lines).
#[derive(Debug, Clone, Default)]
struct Section {
    label: String,
    /// The whole text, continuation lines joined with a space.
    text: String,
}

#[derive(Debug, Clone)]
struct LCap {
    offset: u16,
    extended: bool,
    version: Option<u8>,
    title: String,
    sections: Vec<Section>,
}

#[derive(Debug, Clone, Default)]
struct LDev {
    head: String,
    top: Vec<Section>,
    caps: Vec<LCap>,
}

fn section(content: &str) -> Section {
    let label = match content.find(':') {
        Some(i) => content[..i].trim().to_string(),
        None => content.trim().to_string(),
    };
    Section {
        label,
        text: content.replace('\t', " ").trim().to_string(),
    }
}

fn append(s: &mut Section, content: &str) {
    s.text.push(' ');
    s.text.push_str(content.replace('\t', " ").trim());
}

/// `[40]` or `[100 v2]` at the start of a capability line.
fn cap_header(content: &str) -> (u16, bool, Option<u8>, String) {
    let rest = content
        .strip_prefix("Capabilities: [")
        .expect("a capability line");
    let close = rest.find(']').expect("capability offset closes");
    let inside = &rest[..close];
    let title = rest[close + 1..].trim().to_string();
    let mut parts = inside.split(' ');
    let off = u16::from_str_radix(parts.next().unwrap(), 16).expect("hex offset");
    let version = parts
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse().ok());
    (off, off >= 0x100, version, title)
}

fn parse_lspci(out: &str) -> BTreeMap<String, LDev> {
    let mut devs: BTreeMap<String, LDev> = BTreeMap::new();
    let mut cur: Option<String> = None;
    let mut in_cap = false;
    for line in out.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let tabs = line.chars().take_while(|&c| c == '\t').count();
        let content = &line[tabs..];
        if tabs == 0 {
            let bdf = content.split(' ').next().unwrap().to_string();
            devs.insert(
                bdf.clone(),
                LDev {
                    head: content.to_string(),
                    ..LDev::default()
                },
            );
            cur = Some(bdf);
            in_cap = false;
            continue;
        }
        let dev = devs
            .get_mut(cur.as_deref().expect("a device line comes first"))
            .unwrap();
        match tabs {
            1 if content.starts_with("Capabilities: [") => {
                let (offset, extended, version, title) = cap_header(content);
                dev.caps.push(LCap {
                    offset,
                    extended,
                    version,
                    title,
                    sections: Vec::new(),
                });
                in_cap = true;
            }
            1 => {
                dev.top.push(section(content));
                in_cap = false;
            }
            2 if in_cap => dev.caps.last_mut().unwrap().sections.push(section(content)),
            _ => {
                let target = if in_cap {
                    dev.caps.last_mut().unwrap().sections.last_mut()
                } else {
                    dev.top.last_mut()
                };
                if let Some(s) = target {
                    append(s, content);
                }
            }
        }
    }
    devs
}

/// `Name+` / `Name-` tokens; `PME(D0+,D1-)` gives `PME(D0)` and `PME(D1)`. A name seen
/// with both values is ambiguous and left out.
fn flags_of(text: &str) -> HashMap<String, bool> {
    let mut out: HashMap<String, bool> = HashMap::new();
    let mut ambiguous: BTreeSet<String> = BTreeSet::new();
    let mut group: Option<String> = None;
    for raw in text.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        let mut tok = raw;
        let mut prefix = group.clone();
        if let Some(i) = tok.find('(') {
            let before = &tok[..i];
            tok = &tok[i + 1..];
            if before.is_empty() {
                prefix = None;
            } else {
                prefix = Some(before.to_string());
                group = prefix.clone();
            }
        }
        let closes = tok.ends_with(')');
        let tok = tok.trim_end_matches(')');
        if tok.len() > 1 && (tok.ends_with('+') || tok.ends_with('-')) {
            let name = &tok[..tok.len() - 1];
            if !name.contains('=') {
                let name = match &prefix {
                    Some(p) => format!("{p}({name})"),
                    None => name.to_string(),
                };
                let v = tok.ends_with('+');
                if let Some(old) = out.insert(name.clone(), v) {
                    if old != v {
                        ambiguous.insert(name);
                    }
                }
            }
        }
        if closes {
            group = None;
        }
    }
    for a in ambiguous {
        out.remove(&a);
    }
    out
}

/// `Name=value` tokens.
fn kvs_of(text: &str) -> HashMap<String, String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `prefix` + `value` occurs in `text` as a whole: followed by the end, `,`, `;`, ` (`, or
/// the next flag (`Name+`) or label (`Name:`).
fn has_phrase(text: &str, prefix: &str, value: &str) -> bool {
    let p = format!("{prefix}{value}");
    text.match_indices(&p).any(|(i, _)| {
        let rest = &text[i + p.len()..];
        if rest.is_empty()
            || rest.starts_with(',')
            || rest.starts_with(';')
            || rest.starts_with(" (")
            || (prefix.ends_with('=') && rest.starts_with(' '))
        {
            return true;
        }
        match rest.strip_prefix(' ') {
            Some(r) => r
                .split_whitespace()
                .next()
                .is_some_and(|w| w.ends_with('+') || w.ends_with('-') || w.ends_with(':')),
            None => false,
        }
    })
}

// ---------------------------------------------------------------------------------------
// What to compare

/// Where lspci prints a register.
#[derive(Clone, Copy)]
enum At {
    /// A top-level line of the device (`Control:`, `BridgeCtl:`).
    Top(&'static str),
    /// A line inside the register's capability (`DevCtl:`).
    Cap(&'static str),
    /// The capability's title line (`MSI: Enable+ Count=1/1 …`).
    Title,
}

/// Register key → where lspci shows it.
const WHERE: &[(&str, At)] = &[
    ("header.command", At::Top("Control")),
    ("header.status", At::Top("Status")),
    ("header.secondary_status", At::Top("Secondary status")),
    ("header.bridge_control", At::Top("BridgeCtl")),
    ("header.bus_numbers", At::Top("Bus")),
    ("header.latency_timer", At::Top("Latency")),
    ("header.cache_line_size", At::Top("Latency")),
    ("header.interrupt_pin", At::Top("Interrupt")),
    ("pm.pmc", At::Cap("Flags")),
    ("pm.pmcsr", At::Cap("Status")),
    ("msi.control", At::Title),
    ("msi.mask", At::Cap("Masking")),
    ("msi.pending", At::Cap("Masking")),
    ("msix.control", At::Title),
    ("msix.table", At::Cap("Vector table")),
    ("msix.pba", At::Cap("PBA")),
    ("pcie.devcap", At::Cap("DevCap")),
    ("pcie.devctl", At::Cap("DevCtl")),
    ("pcie.devsta", At::Cap("DevSta")),
    ("pcie.lnkcap", At::Cap("LnkCap")),
    ("pcie.lnkctl", At::Cap("LnkCtl")),
    ("pcie.lnksta", At::Cap("LnkSta")),
    ("pcie.sltcap", At::Cap("SltCap")),
    ("pcie.sltctl", At::Cap("SltCtl")),
    ("pcie.sltsta", At::Cap("SltSta")),
    ("pcie.rootctl", At::Cap("RootCtl")),
    ("pcie.rootcap", At::Cap("RootCap")),
    ("pcie.rootsta", At::Cap("RootSta")),
    ("pcie.devcap2", At::Cap("DevCap2")),
    ("pcie.devctl2", At::Cap("DevCtl2")),
    ("pcie.lnkcap2", At::Cap("LnkCap2")),
    ("pcie.lnkctl2", At::Cap("LnkCtl2")),
    ("pcie.lnksta2", At::Cap("LnkSta2")),
    ("aer.uncor_status", At::Cap("UESta")),
    ("aer.uncor_mask", At::Cap("UEMsk")),
    ("aer.uncor_severity", At::Cap("UESvrt")),
    ("aer.cor_status", At::Cap("CESta")),
    ("aer.cor_mask", At::Cap("CEMsk")),
    ("aer.cap_control", At::Cap("AERCap")),
    ("aer.root_command", At::Cap("RootCmd")),
    ("aer.root_status", At::Cap("RootSta")),
    ("sriov.cap", At::Cap("IOVCap")),
    ("sriov.ctrl", At::Cap("IOVCtl")),
    ("sriov.status", At::Cap("IOVSta")),
    ("sriov.initial_vfs", At::Cap("Initial VFs")),
    ("sriov.total_vfs", At::Cap("Initial VFs")),
    ("sriov.num_vfs", At::Cap("Initial VFs")),
    ("sriov.fdl", At::Cap("Initial VFs")),
    ("sriov.vf_offset", At::Cap("VF offset")),
    ("sriov.vf_stride", At::Cap("VF offset")),
    ("sriov.vf_device", At::Cap("VF offset")),
    ("sriov.supported_page_sizes", At::Cap("Supported Page Size")),
    ("sriov.page_size", At::Cap("Supported Page Size")),
    ("acs.cap", At::Cap("ACSCap")),
    ("acs.ctrl", At::Cap("ACSCtl")),
    ("ari.cap", At::Cap("ARICap")),
    ("ari.ctrl", At::Cap("ARICtl")),
    ("ltr.max_snoop", At::Cap("Max snoop latency")),
    ("ltr.max_nosnoop", At::Cap("Max no snoop latency")),
    ("l1ss.cap", At::Cap("L1SubCap")),
    ("l1ss.ctl1", At::Cap("L1SubCtl1")),
    ("l1ss.ctl2", At::Cap("L1SubCtl2")),
];

/// regdrift field name → lspci's token, where they differ.
const ALIASES: &[(&str, &str, &[&str])] = &[
    (
        "pcie.devctl",
        "BrConfRtry/FLReset",
        &["BrConfRtry", "FLReset"],
    ),
    ("pcie.lnkctl", "Disabled", &["Disabled", "LnkDisable"]),
    ("pcie.devctl2", "AtomicOpReqEn", &["ReqEn"]),
    ("pcie.devctl2", "AtomicOpEgressBlck", &["EgressBlck"]),
    ("pcie.devcap2", "AtomicOpRouting", &["Routing"]),
    ("pcie.devcap2", "32bitAtomicComp", &["32bit"]),
    ("pcie.devcap2", "64bitAtomicComp", &["64bit"]),
    ("pcie.devcap2", "128bitCASComp", &["128bitCAS"]),
    ("sriov.ctrl", "VFEnable", &["Enable"]),
    ("sriov.ctrl", "VFMigration", &["Migration"]),
    ("sriov.ctrl", "VFMigrationInt", &["Interrupt"]),
    ("sriov.ctrl", "VFMSE", &["MSE"]),
    ("sriov.ctrl", "VF10BitTagReq", &["10BitTagReq"]),
    ("sriov.cap", "VFMigrationCap", &["Migration"]),
    ("sriov.cap", "VF10BitTagReqSup", &["10BitTagReq"]),
    ("sriov.status", "VFMigrationStatus", &["Migration"]),
    ("msix.control", "TabSize", &["Count"]),
];

/// How to print a field's value for a phrase.
#[derive(Clone, Copy)]
enum Show {
    /// The field's meaning, as regdrift decodes it.
    Meaning,
    Dec,
    Hex2,
    Hex4,
    Hex8,
}

/// lspci prints `prefix` + the value (then `,`, `;`, ` (` or the end of the section).
/// Compared only when lspci prints the prefix in that section (lspci hides some parts
/// depending on the port type).
const PHRASES: &[(&str, &str, &str, Show)] = &[
    ("header.status", "DEVSEL", "DEVSEL=", Show::Meaning),
    (
        "header.secondary_status",
        "DEVSEL",
        "DEVSEL=",
        Show::Meaning,
    ),
    ("header.bus_numbers", "Primary", "primary=", Show::Hex2),
    ("header.bus_numbers", "Secondary", "secondary=", Show::Hex2),
    (
        "header.bus_numbers",
        "Subordinate",
        "subordinate=",
        Show::Hex2,
    ),
    (
        "header.bus_numbers",
        "SecLatency",
        "sec-latency=",
        Show::Dec,
    ),
    (
        "header.latency_timer",
        "LatencyTimer",
        "Latency: ",
        Show::Dec,
    ),
    (
        "header.cache_line_size",
        "CacheLineSize",
        "Cache Line Size: ",
        Show::Meaning,
    ),
    ("pm.pmc", "AuxCurrent", "AuxCurrent=", Show::Meaning),
    ("pm.pmcsr", "PowerState", "Status: D", Show::Dec),
    ("msix.control", "TabSize", "Count=", Show::Meaning),
    ("msix.table", "BAR", "BAR=", Show::Dec),
    ("msix.pba", "BAR", "BAR=", Show::Dec),
    ("pcie.devcap", "MaxPayload", "MaxPayload ", Show::Meaning),
    ("pcie.devcap", "PhantFunc", "PhantFunc ", Show::Meaning),
    ("pcie.devcap", "L0sLatency", "Latency L0s ", Show::Meaning),
    ("pcie.devcap", "L1Latency", ", L1 ", Show::Meaning),
    (
        "pcie.devcap",
        "SlotPowerLimit",
        "SlotPowerLimit ",
        Show::Meaning,
    ),
    ("pcie.devctl", "MaxPayload", "MaxPayload ", Show::Meaning),
    ("pcie.devctl", "MaxReadReq", "MaxReadReq ", Show::Meaning),
    ("pcie.lnkcap", "Port", "Port #", Show::Dec),
    ("pcie.lnkcap", "Speed", "Speed ", Show::Meaning),
    ("pcie.lnkcap", "Width", "Width ", Show::Meaning),
    ("pcie.lnkcap", "ASPM", "ASPM ", Show::Meaning),
    ("pcie.lnkctl", "RCB", "RCB ", Show::Meaning),
    ("pcie.lnksta", "Speed", "Speed ", Show::Meaning),
    ("pcie.lnksta", "Width", "Width ", Show::Meaning),
    ("pcie.sltcap", "PowerLimit", "PowerLimit ", Show::Meaning),
    ("pcie.sltcap", "Slot", "Slot #", Show::Dec),
    ("pcie.sltctl", "AttnInd", "AttnInd ", Show::Meaning),
    ("pcie.sltctl", "PwrInd", "PwrInd ", Show::Meaning),
    ("pcie.rootsta", "PMEReqID", "PME ReqID ", Show::Hex4),
    (
        "pcie.devcap2",
        "CmpltTimeoutRanges",
        "Completion Timeout: ",
        Show::Meaning,
    ),
    ("pcie.devcap2", "OBFF", "OBFF ", Show::Meaning),
    (
        "pcie.devctl2",
        "CmpltTimeout",
        "Completion Timeout: ",
        Show::Meaning,
    ),
    ("pcie.devctl2", "OBFF", "OBFF ", Show::Meaning),
    (
        "pcie.lnkcap2",
        "SupportedSpeeds",
        "Supported Link Speeds: ",
        Show::Meaning,
    ),
    (
        "pcie.lnkctl2",
        "TargetLinkSpeed",
        "Target Link Speed: ",
        Show::Meaning,
    ),
    (
        "pcie.lnkctl2",
        "SelectableDeemphasis",
        "Selectable De-emphasis: ",
        Show::Meaning,
    ),
    (
        "pcie.lnkctl2",
        "TransmitMargin",
        "Transmit Margin: ",
        Show::Meaning,
    ),
    (
        "pcie.lnkctl2",
        "ComplianceDeemphasis",
        "Compliance Preset/De-emphasis: ",
        Show::Meaning,
    ),
    (
        "pcie.lnksta2",
        "CurrentDeemphasis",
        "Current De-emphasis Level: ",
        Show::Meaning,
    ),
    (
        "pcie.lnksta2",
        "CrosslinkRes",
        "CrosslinkRes: ",
        Show::Meaning,
    ),
    (
        "aer.cap_control",
        "FirstErrorPointer",
        "First Error Pointer: ",
        Show::Hex2,
    ),
    ("ari.cap", "NextFunction", "Next Function: ", Show::Dec),
    ("ari.ctrl", "FuncGroup", "Function Group: ", Show::Dec),
    (
        "sriov.initial_vfs",
        "InitialVFs",
        "Initial VFs: ",
        Show::Dec,
    ),
    ("sriov.total_vfs", "TotalVFs", "Total VFs: ", Show::Dec),
    ("sriov.num_vfs", "NumVFs", "Number of VFs: ", Show::Dec),
    (
        "sriov.fdl",
        "FunctionDependencyLink",
        "Function Dependency Link: ",
        Show::Hex2,
    ),
    ("sriov.vf_offset", "VFOffset", "VF offset: ", Show::Dec),
    ("sriov.vf_stride", "VFStride", "stride: ", Show::Dec),
    ("sriov.vf_device", "VFDeviceID", "Device ID: ", Show::Hex4),
    (
        "sriov.supported_page_sizes",
        "PageSizes",
        "Supported Page Size: ",
        Show::Hex8,
    ),
    (
        "sriov.page_size",
        "PageSizes",
        "System Page Size: ",
        Show::Hex8,
    ),
    (
        "ltr.max_snoop",
        "Latency",
        "Max snoop latency: ",
        Show::Meaning,
    ),
    (
        "ltr.max_nosnoop",
        "Latency",
        "Max no snoop latency: ",
        Show::Meaning,
    ),
    (
        "l1ss.cap",
        "PortCommonModeRestoreTime",
        "PortCommonModeRestoreTime=",
        Show::Meaning,
    ),
    (
        "l1ss.cap",
        "PortTPowerOnTime",
        "PortTPowerOnTime=",
        Show::Meaning,
    ),
    ("l1ss.ctl1", "T_CommonMode", "T_CommonMode=", Show::Meaning),
    (
        "l1ss.ctl1",
        "LTR1.2_Threshold",
        "LTR1.2_Threshold=",
        Show::Meaning,
    ),
    ("l1ss.ctl2", "T_PwrOn", "T_PwrOn=", Show::Meaning),
];

/// Fields that must have been compared with lspci at least once over the machine: proof
/// that the parsing above found what it looks for.
const REQUIRED: &[(&str, &[&str])] = &[
    (
        "header.command",
        &[
            "I/O",
            "Mem",
            "BusMaster",
            "SpecCycle",
            "MemWINV",
            "VGASnoop",
            "ParErr",
            "SERR",
            "FastB2B",
            "DisINTx",
        ],
    ),
    (
        "header.status",
        &["Cap", "66MHz", "FastB2B", "DEVSEL", "<MAbort", "INTx"],
    ),
    (
        "header.bridge_control",
        &["Parity", "SERR", "VGA16", "MAbort"],
    ),
    (
        "header.bus_numbers",
        &["Primary", "Secondary", "Subordinate"],
    ),
    (
        "pm.pmc",
        &["PMEClk", "DSI", "D1", "D2", "AuxCurrent", "PME(D3hot)"],
    ),
    (
        "pm.pmcsr",
        &[
            "PowerState",
            "NoSoftRst",
            "PME-Enable",
            "DSel",
            "DScale",
            "PME",
        ],
    ),
    (
        "msi.control",
        &["Enable", "Count", "CountRequested", "64bit", "Maskable"],
    ),
    ("msi.address", &["Address"]),
    ("msi.data", &["Data"]),
    ("msix.control", &["Enable", "Masked", "TabSize"]),
    (
        "pcie.devctl",
        &[
            "CorrErr",
            "NonFatalErr",
            "FatalErr",
            "UnsupReq",
            "RlxdOrd",
            "ExtTag",
            "PhantFunc",
            "AuxPwr",
            "NoSnoop",
            "BrConfRtry/FLReset",
            "MaxPayload",
            "MaxReadReq",
        ],
    ),
    (
        "pcie.lnkctl",
        &[
            "ASPM",
            "RCB",
            "Disabled",
            "CommClk",
            "ExtSynch",
            "ClockPM",
            "AutWidDis",
            "BWInt",
            "AutBWInt",
        ],
    ),
    (
        "pcie.sltctl",
        &[
            "AttnBtn",
            "PwrFlt",
            "MRL",
            "PresDet",
            "CmdCplt",
            "HPIrq",
            "LinkChg",
            "AttnInd",
            "PwrInd",
            "Power",
            "Interlock",
        ],
    ),
    (
        "pcie.rootctl",
        &[
            "ErrCorrectable",
            "ErrNon-Fatal",
            "ErrFatal",
            "PMEIntEna",
            "CRSVisible",
        ],
    ),
    (
        "pcie.devctl2",
        &[
            "CmpltTimeout",
            "TimeoutDis",
            "ARIFwd",
            "AtomicOpReqEn",
            "AtomicOpEgressBlck",
            "LTR",
            "10BitTagReq",
            "OBFF",
        ],
    ),
    (
        "pcie.lnkctl2",
        &[
            "TargetLinkSpeed",
            "EnterCompliance",
            "SpeedDis",
            "TransmitMargin",
            "EnterModifiedCompliance",
            "ComplianceSOS",
            "ComplianceDeemphasis",
        ],
    ),
    (
        "pcie.lnkcap",
        &["Speed", "Width", "ASPM", "ClockPM", "Port"],
    ),
    ("pcie.lnksta", &["Speed", "Width", "DLActive"]),
    (
        "aer.uncor_mask",
        &[
            "DLP",
            "SDES",
            "TLP",
            "FCP",
            "CmpltTO",
            "CmpltAbrt",
            "UnxCmplt",
            "RxOF",
            "MalfTLP",
            "ECRC",
            "UnsupReq",
            "ACSViol",
        ],
    ),
    (
        "aer.uncor_severity",
        &["DLP", "SDES", "TLP", "FCP", "RxOF", "MalfTLP", "UnsupReq"],
    ),
    (
        "aer.cor_mask",
        &[
            "RxErr",
            "BadTLP",
            "BadDLLP",
            "Rollover",
            "Timeout",
            "AdvNonFatalErr",
        ],
    ),
    (
        "aer.cap_control",
        &["ECRCGenCap", "ECRCGenEn", "ECRCChkCap", "ECRCChkEn"],
    ),
    ("aer.root_command", &["CERptEn", "NFERptEn", "FERptEn"]),
    (
        "sriov.ctrl",
        &[
            "VFEnable",
            "VFMigration",
            "VFMigrationInt",
            "VFMSE",
            "ARIHierarchy",
        ],
    ),
    ("sriov.num_vfs", &["NumVFs"]),
    ("sriov.total_vfs", &["TotalVFs"]),
    ("sriov.vf_offset", &["VFOffset"]),
    (
        "acs.ctrl",
        &[
            "SrcValid",
            "TransBlk",
            "ReqRedir",
            "CmpltRedir",
            "UpstreamFwd",
            "EgressCtrl",
            "DirectTrans",
        ],
    ),
    ("ari.ctrl", &["MFVC", "ACS", "FuncGroup"]),
    ("ltr.max_snoop", &["Latency"]),
    ("ltr.max_nosnoop", &["Latency"]),
    (
        "l1ss.cap",
        &[
            "PCI-PM_L1.2",
            "PCI-PM_L1.1",
            "ASPM_L1.2",
            "ASPM_L1.1",
            "L1_PM_Substates",
        ],
    ),
    (
        "l1ss.ctl1",
        &[
            "PCI-PM_L1.2",
            "PCI-PM_L1.1",
            "ASPM_L1.2",
            "ASPM_L1.1",
            "T_CommonMode",
            "LTR1.2_Threshold",
        ],
    ),
    ("l1ss.ctl2", &["T_PwrOn"]),
];

// ---------------------------------------------------------------------------------------
// The comparison

#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    compared: BTreeSet<(String, String)>,
    count: usize,
}

impl Tally {
    fn fail(&mut self, s: String) {
        self.failures.push(s);
    }

    fn ok(&mut self, key: &str, field: &str) {
        self.compared.insert((key.to_string(), field.to_string()));
        self.count += 1;
    }
}

fn where_of(key: &str) -> Option<At> {
    WHERE.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
}

fn aliases(key: &str, field: &str) -> Vec<String> {
    match ALIASES.iter().find(|(k, f, _)| *k == key && *f == field) {
        Some((_, _, names)) => names.iter().map(|s| s.to_string()).collect(),
        None => vec![field.to_string()],
    }
}

fn decode(reg: &PciReg, config: &[u8]) -> Vec<Field> {
    let v = pci::reg_value(reg, config).expect("register inside config");
    pci::decode_reg(reg, v)
}

/// The lspci capability that holds `reg`.
fn lcap_of<'a>(ldev: &'a LDev, layout: &Layout, reg: &PciReg) -> Option<&'a LCap> {
    let cap = layout.cap_at(reg.offset)?;
    ldev.caps
        .iter()
        .find(|c| c.offset == cap.offset && c.extended == cap.extended)
}

/// The lspci text for `reg`, if lspci prints it.
fn text_for(ldev: &LDev, layout: &Layout, reg: &PciReg, at: At) -> Option<String> {
    match at {
        At::Top(label) => ldev
            .top
            .iter()
            .find(|s| s.label == label)
            .map(|s| s.text.clone()),
        At::Cap(label) => lcap_of(ldev, layout, reg)?
            .sections
            .iter()
            .find(|s| s.label == label)
            .map(|s| s.text.clone()),
        At::Title => lcap_of(ldev, layout, reg).map(|c| c.title.clone()),
    }
}

fn express_type(layout: &Layout, config: &[u8]) -> Option<u8> {
    pci::express_type(layout, config)
}

/// Registers regdrift has that lspci may leave out, by lspci's display rules.
fn lspci_may_hide(key: &str, bdf: Bdf, reg: &PciReg, layout: &Layout, config: &[u8]) -> bool {
    let ty = express_type(layout, config);
    let endpoint = matches!(ty, Some(pci::EXP_TYPE_ENDPOINT | pci::EXP_TYPE_LEG_END));
    match key {
        // Link Capabilities/Control 2 were reserved before PCIe r3.0 for functions other
        // than 0 of an endpoint; lspci skips them there, and LnkCap2 when it reads 0.
        "pcie.lnkctl2" => endpoint && (bdf.device != 0 || bdf.function != 0),
        "pcie.lnkcap2" => {
            (endpoint && (bdf.device != 0 || bdf.function != 0))
                || pci::reg_value(reg, config) == Some(0)
        }
        // lspci prints the latency timer and cache line size only for bus masters.
        "header.latency_timer" | "header.cache_line_size" => {
            get_le(config, 0x04, 2).is_some_and(|c| c & 0x4 == 0)
        }
        // lspci prints no Interrupt line for a function without an interrupt pin.
        "header.interrupt_pin" => pci::reg_value(reg, config) == Some(0),
        _ => false,
    }
}

fn show(f: &Field, how: Show) -> String {
    match how {
        Show::Meaning => f.meaning.clone().unwrap_or_default(),
        Show::Dec => f.value.to_string(),
        Show::Hex2 => format!("{:02x}", f.value),
        Show::Hex4 => format!("{:04x}", f.value),
        Show::Hex8 => format!("{:08x}", f.value),
    }
}

fn check_device(bdf: Bdf, config: &[u8], ldev: &LDev, t: &mut Tally) {
    let layout = pci::layout(config);
    let here = format!("{bdf}");
    if !layout.problems.is_empty() {
        t.fail(format!(
            "{here}: regdrift reports problems {:?}",
            layout.problems
        ));
    }

    // Identity: ids, class, vendor name.
    let ids = regdrift::fixture::PciIds::from_config(config);
    let want_ids = format!("[{:04x}:{:04x}]", ids.vendor, ids.device);
    if !ldev.head.contains(&want_ids) {
        t.fail(format!(
            "{here}: lspci head {:?} lacks {want_ids}",
            ldev.head
        ));
    }
    let want_class = format!("[{:04x}]", ids.class >> 8);
    if !ldev.head.contains(&want_class) {
        t.fail(format!(
            "{here}: lspci head {:?} lacks class {want_class}",
            ldev.head
        ));
    }
    if let Some(v) = regdrift::pciids::vendor_name(ids.vendor) {
        if !ldev.head.contains(v) {
            t.fail(format!(
                "{here}: lspci names the vendor differently: {:?} vs {v:?}",
                ldev.head
            ));
        }
    }
    if let Some(c) = regdrift::pciids::class_name(ids.class) {
        if !ldev.head.contains(c) {
            t.fail(format!(
                "{here}: lspci names the class differently: {:?} vs {c:?}",
                ldev.head
            ));
        }
    }

    // The capability list: same offsets, same order, same kind, same version.
    let mine: Vec<(u16, bool)> = layout.caps.iter().map(|c| (c.offset, c.extended)).collect();
    let theirs: Vec<(u16, bool)> = ldev.caps.iter().map(|c| (c.offset, c.extended)).collect();
    if mine != theirs {
        t.fail(format!(
            "{here}: capabilities {mine:x?} vs lspci {theirs:x?}"
        ));
    }
    for (m, l) in layout.caps.iter().zip(&ldev.caps) {
        if !l.title.starts_with(&m.name) {
            t.fail(format!(
                "{here}: capability at {:#x} is {:?} for regdrift, lspci says {:?}",
                m.offset, m.name, l.title
            ));
        }
        if m.extended {
            let v = config.get(m.offset as usize + 2).map(|b| b & 0xf);
            if v != l.version {
                t.fail(format!(
                    "{here}: version of [{:x}]: {v:?} vs {:?}",
                    m.offset, l.version
                ));
            }
        }
        if m.id == pci::CAP_EXP && !m.extended {
            let ty = express_type(&layout, config).unwrap();
            let want = format!(
                "Express (v{}) {}",
                config[m.offset as usize + 2] & 0xf,
                pci::exp_type_name(ty)
            );
            if !l.title.starts_with(&want) {
                t.fail(format!("{here}: {:?} vs lspci {:?}", want, l.title));
            }
        }
        if m.id == pci::CAP_PM && !m.extended {
            let r = layout.reg("pm.pmc").unwrap();
            let f = decode(r, config);
            let v = f.iter().find(|f| f.name == "Version").unwrap().value;
            if l.title != format!("Power Management version {v}") {
                t.fail(format!("{here}: PM version {v} vs {:?}", l.title));
            } else {
                t.ok("pm.pmc", "Version");
            }
        }
    }

    // Every register lspci shows, field by field.
    let mut seen_keys: BTreeSet<&str> = BTreeSet::new();
    for reg in &layout.regs {
        let Some(at) = where_of(reg.key) else {
            continue;
        };
        seen_keys.insert(reg.key);
        let Some(text) = text_for(ldev, &layout, reg, at) else {
            if !lspci_may_hide(reg.key, bdf, reg, &layout, config) {
                t.fail(format!(
                    "{here}: regdrift has {} ({}) at {:#x}, lspci does not show it",
                    reg.name, reg.key, reg.offset
                ));
            }
            continue;
        };
        let fields = decode(reg, config);
        compare_register(&here, reg, &fields, &text, config, &layout, t);
    }

    // Registers lspci shows that regdrift did not find (by lspci's labels, per capability).
    for (key, at) in WHERE {
        if seen_keys.contains(key) {
            continue;
        }
        let label = match at {
            At::Cap(l) => *l,
            _ => continue,
        };
        // Which capability would hold it: the one whose registers use this key family.
        let family = key.split('.').next().unwrap();
        let cap_id = match family {
            "pcie" => (pci::CAP_EXP, false),
            "aer" => (pci::ECAP_AER, true),
            "sriov" => (pci::ECAP_SRIOV, true),
            "acs" => (pci::ECAP_ACS, true),
            "ari" => (pci::ECAP_ARI, true),
            "ltr" => (pci::ECAP_LTR, true),
            "l1ss" => (pci::ECAP_L1SS, true),
            _ => continue,
        };
        let Some(cap) = layout.cap(cap_id.0, cap_id.1) else {
            continue;
        };
        let Some(lcap) = ldev
            .caps
            .iter()
            .find(|c| c.offset == cap.offset && c.extended == cap.extended)
        else {
            continue;
        };
        // AER's RootSta label is also PCIe's; only flag what belongs to this capability.
        if lcap.sections.iter().any(|s| s.label == label) {
            t.fail(format!(
                "{here}: lspci shows {label} in [{:x}], regdrift has no {key}",
                cap.offset
            ));
        }
    }

    // MSI address and data as lspci prints them.
    if let (Some(addr), Some(data)) = (layout.reg("msi.address"), layout.reg("msi.data")) {
        let lcap = lcap_of(ldev, &layout, addr);
        let text = lcap.and_then(|c| c.sections.iter().find(|s| s.label == "Address"));
        match text {
            None => t.fail(format!("{here}: lspci shows no MSI Address line")),
            Some(s) => {
                let lo = pci::reg_value(addr, config).unwrap();
                let hi = layout
                    .regs
                    .iter()
                    .find(|r| r.key == "msi.address" && r.name == "MSI Upper Address")
                    .and_then(|r| pci::reg_value(r, config));
                let want_addr = match hi {
                    Some(h) => format!("Address: {h:08x}{lo:08x}"),
                    None => format!("Address: {lo:08x}"),
                };
                let want_data = format!("Data: {:04x}", pci::reg_value(data, config).unwrap());
                if s.text.contains(&want_addr) {
                    t.ok("msi.address", "Address");
                } else {
                    t.fail(format!("{here}: {want_addr:?} vs lspci {:?}", s.text));
                }
                if s.text.contains(&want_data) {
                    t.ok("msi.data", "Data");
                } else {
                    t.fail(format!("{here}: {want_data:?} vs lspci {:?}", s.text));
                }
            }
        }
    }
}

fn compare_register(
    here: &str,
    reg: &PciReg,
    fields: &[Field],
    text: &str,
    config: &[u8],
    layout: &Layout,
    t: &mut Tally,
) {
    let key = reg.key;
    // SltSta prints MRL and PresDet twice: as state, then under "Changed:".
    let (text_main, text_changed) = match text.split_once("Changed:") {
        Some((a, b)) if key == "pcie.sltsta" => (a.to_string(), b.to_string()),
        _ => (text.to_string(), String::new()),
    };
    let flags = flags_of(&text_main);
    let changed = flags_of(&text_changed);
    let kvs = kvs_of(text);
    for f in fields {
        let single_bit = f.mask.count_ones() == 1 && f.meaning.is_none();
        if single_bit {
            let (map, names) = match (key, f.name.as_str()) {
                ("pcie.sltsta", "MRLChanged") => (&changed, vec!["MRL".to_string()]),
                ("pcie.sltsta", "PresDetChanged") => (&changed, vec!["PresDet".to_string()]),
                ("pcie.sltsta", "LinkStateChanged") => (&changed, vec!["LinkState".to_string()]),
                _ => (&flags, aliases(key, &f.name)),
            };
            if let Some(v) = names.iter().find_map(|n| map.get(n)) {
                if *v == (f.value != 0) {
                    t.ok(key, &f.name);
                } else {
                    t.fail(format!(
                        "{here}: {} {}={} but lspci prints {}{} in {text:?}",
                        reg.name,
                        f.name,
                        f.value,
                        names[0],
                        if *v { '+' } else { '-' }
                    ));
                }
            }
        }
    }
    // `Name=value` pairs: regdrift's meaning, or the number for plain numeric fields.
    if key != "msi.control" {
        for f in fields {
            if f.meaning.is_none() && f.mask.count_ones() == 1 {
                continue;
            }
            let want = f.meaning.clone().unwrap_or_else(|| f.value.to_string());
            for n in aliases(key, &f.name) {
                let Some(v) = kvs.get(&n) else { continue };
                if *v == want {
                    t.ok(key, &f.name);
                } else if !PHRASES
                    .iter()
                    .any(|(k, fname, _, _)| *k == key && *fname == f.name)
                {
                    t.fail(format!(
                        "{here}: {} {}={want:?}, lspci {n}={v:?}",
                        reg.name, f.name
                    ));
                }
            }
        }
    }
    // Phrases.
    for (k, fname, prefix, how) in PHRASES {
        if *k != key || !text.contains(prefix) {
            continue;
        }
        let Some(f) = fields.iter().find(|f| f.name == *fname) else {
            t.fail(format!("{here}: {key} has no field {fname}"));
            continue;
        };
        let mut want = show(f, *how);
        // lspci prints a power state as its number, D3hot as D3.
        if key == "pm.pmcsr" && *fname == "PowerState" {
            want = f.value.to_string();
        }
        if has_phrase(text, prefix, &want) {
            t.ok(key, fname);
        } else {
            t.fail(format!(
                "{here}: {} {fname}: regdrift {:?}, lspci {text:?}",
                reg.name,
                format!("{prefix}{want}")
            ));
        }
    }
    // Register-specific forms.
    match key {
        "msi.control" => {
            let count = fields.iter().find(|f| f.name == "Count").unwrap();
            let req = fields.iter().find(|f| f.name == "CountRequested").unwrap();
            let want = format!(
                "{}/{}",
                count.meaning.as_deref().unwrap(),
                req.meaning.as_deref().unwrap()
            );
            match kvs.get("Count") {
                Some(v) if *v == want => {
                    t.ok(key, "Count");
                    t.ok(key, "CountRequested");
                }
                other => t.fail(format!("{here}: MSI Count={want} vs lspci {other:?}")),
            }
        }
        "pcie.lnkctl" => {
            let aspm = fields.iter().find(|f| f.name == "ASPM").unwrap();
            let m = aspm.meaning.as_deref().unwrap();
            let want = if m == "Disabled" {
                "ASPM Disabled;".to_string()
            } else {
                format!("ASPM {m} Enabled;")
            };
            if text.contains(&want) {
                t.ok(key, "ASPM");
            } else {
                t.fail(format!("{here}: LnkCtl {want:?} vs lspci {text:?}"));
            }
        }
        "msix.table" | "msix.pba" => {
            let off = fields.iter().find(|f| f.name == "Offset").unwrap();
            let want = off.meaning.as_deref().unwrap().trim_start_matches("0x");
            match kvs.get("offset") {
                Some(v) if v == want => t.ok(key, "Offset"),
                other => t.fail(format!(
                    "{here}: {} offset {want} vs lspci {other:?}",
                    reg.name
                )),
            }
        }
        "pm.bse" => {}
        _ => {}
    }
    let _ = (config, layout);
}

/// Flip many control bits, the way a kernel and its drivers leave them: a second state of
/// the machine to compare again.
fn plant(config: &mut [u8]) {
    let layout = pci::layout(config);
    for reg in &layout.regs {
        let off = reg.offset as usize;
        let w = reg.width as usize;
        let Some(v) = get_le(config, off, w) else {
            continue;
        };
        let new = match reg.key {
            "header.command" => v ^ 0x0405,
            "header.bridge_control" => v ^ 0x0045,
            "pm.pmcsr" => (v | 0x3) ^ 0x0100,
            "msi.control" => (v ^ 0x1) & !0x70 | 0x20,
            "msix.control" => v ^ 0xc000,
            "pcie.devctl" => (v ^ 0x081f) & !0x70e0 | 0x0020 | 0x5000,
            "pcie.lnkctl" => v ^ 0x05c3,
            "pcie.sltctl" => v ^ 0x1729,
            "pcie.rootctl" => v ^ 0x1f,
            "pcie.devctl2" => ((v ^ 0x34d0) & !0xf) | 0x6,
            "pcie.lnkctl2" => ((v ^ 0x1c30) & !0xf) | 0x1 | 0x80,
            "aer.uncor_mask" => v ^ 0x0050_4030,
            "aer.uncor_severity" => v ^ 0x0000_1010,
            "aer.cor_mask" => v ^ 0x0000_20c1,
            "aer.cap_control" => v ^ 0x140,
            "aer.root_command" => v ^ 0x5,
            "sriov.ctrl" => v ^ 0x19,
            "sriov.num_vfs" => 4,
            "acs.ctrl" => v ^ 0x5f,
            "ari.ctrl" => v ^ 0x21,
            "ltr.max_snoop" => 0x0c0a,
            "ltr.max_nosnoop" => 0x080f,
            "l1ss.ctl1" => (v ^ 0xf) & !0xff00 | 0x1400,
            "l1ss.ctl2" => 0x0000_0052,
            _ => continue,
        };
        set_le(config, off, w, new);
    }
    // INTx disable and bus mastering are in the Command flips; power state in PMCSR.
    set_bits(config, 0x0d, 1, 0xff, 0x40);
}

/// Control registers and the bits of each that can take any value without changing the
/// structure lspci and regdrift walk (scales that would be reserved are left alone).
const FLIPPABLE: &[(&str, u64)] = &[
    ("header.command", 0x07ff),
    ("header.bridge_control", 0x0fff),
    ("pm.pmcsr", 0xff0b),
    ("msi.control", 0x00f1),
    ("msix.control", 0xc7ff),
    ("pcie.devctl", 0xffff),
    ("pcie.lnkctl", 0x0fff),
    ("pcie.sltctl", 0x1fff),
    ("pcie.rootctl", 0x001f),
    ("pcie.devctl2", 0xfff0),
    ("pcie.lnkctl2", 0xfff0),
    ("aer.uncor_mask", 0xffff_fff0),
    ("aer.uncor_severity", 0xffff_fff0),
    ("aer.cor_mask", 0x0000_ffff),
    ("aer.cap_control", 0x0000_1fe0),
    ("aer.root_command", 0x7),
    ("sriov.ctrl", 0x003f),
    ("sriov.num_vfs", 0x00ff),
    ("acs.ctrl", 0x007f),
    ("ari.ctrl", 0x0073),
    ("ltr.max_snoop", 0x03ff),
    ("ltr.max_nosnoop", 0x03ff),
    ("l1ss.ctl1", 0x03ff_ff0f),
    ("l1ss.ctl2", 0x0000_00f8),
];

/// XOR `pattern` into the flippable bits of every control register.
fn flip(config: &mut [u8], pattern: u64) {
    let layout = pci::layout(config);
    for reg in &layout.regs {
        let Some((_, mask)) = FLIPPABLE.iter().find(|(k, _)| *k == reg.key) else {
            continue;
        };
        let (off, w) = (reg.offset as usize, reg.width as usize);
        if let Some(v) = get_le(config, off, w) {
            set_le(config, off, w, v ^ (pattern & mask));
        }
    }
}

fn run(devices: &[(Bdf, Vec<u8>, Option<&'static str>)], t: &mut Tally) {
    let dir = tempfile::tempdir().unwrap();
    let root = FixtureRoot::new(dir.path()).unwrap();
    for (bdf, config, driver) in devices {
        root.pci_device(*bdf, config, *driver).unwrap();
    }
    let out = lspci_on(root.path());
    let parsed = parse_lspci(&out);
    assert_eq!(
        parsed.len(),
        devices.len(),
        "lspci lists {} devices, the root holds {}:\n{out}",
        parsed.len(),
        devices.len()
    );
    for (bdf, config, driver) in devices {
        let name = bdf.to_string();
        let ldev = parsed
            .get(&name)
            .unwrap_or_else(|| panic!("lspci does not list {name}:\n{out}"));
        check_device(*bdf, config, ldev, t);
        if let Some(d) = driver {
            let want = format!("Kernel driver in use: {d}");
            if !ldev.top.iter().any(|s| s.text == want) {
                t.fail(format!("{name}: lspci does not show {want:?}"));
            }
        }
    }
}

fn finish(t: Tally, what: &str) {
    assert!(
        t.failures.is_empty(),
        "{what}: {} disagreements with lspci:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
    let mut missing = Vec::new();
    for (key, fields) in REQUIRED {
        for f in *fields {
            if !t.compared.contains(&(key.to_string(), f.to_string())) {
                missing.push(format!("{key}.{f}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{what}: never compared with lspci (parsing or fixtures miss them): {missing:?}"
    );
    assert!(t.count > 1000, "{what}: only {} comparisons", t.count);
}

#[test]
fn laptop_decode_agrees_with_lspci() {
    let mut t = Tally::default();
    run(&pci_configs::laptop(), &mut t);
    finish(t, "laptop");
}

#[test]
fn planted_state_agrees_with_lspci() {
    let mut devices = pci_configs::laptop();
    for (_, config, _) in devices.iter_mut() {
        plant(config);
    }
    // The planted state really differs where it matters.
    let nvme = &devices.iter().find(|(b, _, _)| b.bus == 1).unwrap().1;
    let l = pci::layout(nvme);
    let pmcsr = pci::decode_reg(
        l.reg("pm.pmcsr").unwrap(),
        pci::reg_value(l.reg("pm.pmcsr").unwrap(), nvme).unwrap(),
    );
    assert_eq!(pmcsr[0].meaning.as_deref(), Some("D3hot"));
    let mut t = Tally::default();
    run(&devices, &mut t);
    // Both states together must cover every required field with both values of the
    // flags that the planting flips; the planted state alone must still cover them all.
    finish(t, "planted state");
}

#[test]
fn every_control_bit_agrees_with_lspci_both_ways() {
    // 0101… then 1010…: each flippable bit differs from its neighbours in one of the two
    // states, so a field decoded from the wrong bit cannot agree by chance.
    for pattern in [0x5555_5555u64, 0xaaaa_aaaa] {
        let mut devices = pci_configs::laptop();
        for (_, config, _) in devices.iter_mut() {
            flip(config, pattern);
        }
        let mut t = Tally::default();
        run(&devices, &mut t);
        finish(t, &format!("bits flipped with {pattern:#x}"));
    }
}

#[test]
fn seeded_machine_agrees_with_lspci() {
    let mut t = Tally::default();
    run(&pci_configs::laptop_with_seed(0x5eed), &mut t);
    finish(t, "seeded laptop");
}

#[test]
fn parser_reads_lspci_forms() {
    let f = flags_of("Flags: PMEClk- DSI+ D1- D2+ AuxCurrent=0mA PME(D0+,D1-,D2-,D3hot+,D3cold+)");
    assert_eq!(f.get("DSI"), Some(&true));
    assert_eq!(f.get("D1"), Some(&false));
    assert_eq!(f.get("D2"), Some(&true));
    assert_eq!(f.get("PME(D0)"), Some(&true));
    assert_eq!(f.get("PME(D1)"), Some(&false));
    assert_eq!(f.get("PME(D3cold)"), Some(&true));
    let f = flags_of("LnkCtl: ASPM Disabled; RCB 64 bytes, Disabled- CommClk+ ExtSynch-");
    assert_eq!(f.get("Disabled"), Some(&false));
    assert_eq!(f.get("CommClk"), Some(&true));
    let k = kvs_of("MSI: Enable+ Count=1/32 Maskable- 64bit+");
    assert_eq!(k.get("Count").map(String::as_str), Some("1/32"));
    assert!(has_phrase(
        "MaxPayload 256 bytes, MaxReadReq 512 bytes",
        "MaxReadReq ",
        "512 bytes"
    ));
    assert!(!has_phrase("ASPM L0s L1, Exit", "ASPM ", "L0s"));
    assert!(has_phrase("ASPM L0s L1, Exit", "ASPM ", "L0s L1"));
    let parsed = parse_lspci(
        "0000:00:1c.0 PCI bridge [0604]: Intel\n\tControl: I/O+ Mem+\n\tBridgeCtl: Parity- SERR+\n\t\tPriDiscTmr-\n\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00\n\t\tDevCtl:\tCorrErr+\n\t\t\tMaxPayload 256 bytes\n\tCapabilities: [100 v1] Advanced Error Reporting\n\tKernel driver in use: pcieport\n",
    );
    let d = &parsed["0000:00:1c.0"];
    assert_eq!(d.caps.len(), 2);
    assert_eq!(d.caps[1].version, Some(1));
    assert!(d.caps[1].extended);
    assert_eq!(
        d.caps[0].sections[0].text,
        "DevCtl: CorrErr+ MaxPayload 256 bytes"
    );
    assert!(d
        .top
        .iter()
        .any(|s| s.label == "BridgeCtl" && s.text.ends_with("PriDiscTmr-")));
    assert!(d
        .top
        .iter()
        .any(|s| s.text == "Kernel driver in use: pcieport"));
}
