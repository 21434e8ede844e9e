//! PCI config space decoding: the type 0/1 header, the capability list and the extended
//! capability list, walked safely, into named registers and fields. Layouts follow the
//! PCI specifications (pciutils' lib/header.h is the map); values agree with `lspci -vvv`.
//!
//! The walk never trusts the bytes: every read is bounds-checked, capability pointers have
//! their two low bits ignored (as the specification says), a pointer into the header or
//! past the end stops the walk, loops are detected, and the standard list is cut at 48
//! entries (as the kernel does). Whatever made the walk stop is reported in
//! [`Layout::problems`]; nothing panics.
//!
//! Which PCI Express registers exist follows lspci's rules (pciutils ls-caps.c): the link
//! registers are absent on root complex integrated endpoints and event collectors, the slot
//! registers exist on root and downstream ports that implement a slot, the root registers on
//! root ports and event collectors, and the `*2` registers only from capability version 2.

use crate::decode::{extract, Field};
use crate::regdb::Volatility;

/// One named register of config space, found by walking the header and capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciReg {
    /// Byte offset in config space.
    pub offset: u16,
    /// Width in bytes: 1, 2 or 4.
    pub width: u8,
    /// Owner-table key, stable: `header.command`, `pm.pmcsr`, `msi.control`,
    /// `msix.control`, `pcie.devctl`, `pcie.lnkctl`, `aer.uncor_mask`, `sriov.ctrl`, …
    pub key: &'static str,
    /// Display name: `Command`, `LnkCtl`, `PMCSR`.
    pub name: String,
    /// Where it sits: `Header`, `Power Management @0x40`, `MSI-X @0x70`, `AER @0x100`.
    pub group: String,
    /// Status and readout registers that hardware changes by itself.
    pub volatile: Option<Volatility>,
}

/// A capability found in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub id: u16,
    pub offset: u16,
    pub extended: bool,
    pub name: String,
}

/// The result of walking a config space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Named registers, sorted by offset.
    pub regs: Vec<PciReg>,
    pub caps: Vec<Capability>,
    /// What the walk had to stop at: loops, pointers out of bounds, misaligned pointers.
    pub problems: Vec<String>,
}

impl Layout {
    /// The register that contains byte `offset`, if any.
    pub fn reg_at(&self, offset: u16) -> Option<&PciReg> {
        let i = self
            .regs
            .partition_point(|r| r.offset + r.width as u16 <= offset);
        self.regs
            .get(i)
            .filter(|r| r.offset <= offset && offset < r.offset + r.width as u16)
    }

    /// The capability whose structure holds byte `offset` (the nearest one at or before it).
    pub fn cap_at(&self, offset: u16) -> Option<&Capability> {
        self.caps
            .iter()
            .filter(|c| c.offset <= offset && (c.extended == (offset >= 0x100)))
            .max_by_key(|c| c.offset)
    }

    /// The first register with this owner key.
    pub fn reg(&self, key: &str) -> Option<&PciReg> {
        self.regs.iter().find(|r| r.key == key)
    }

    /// The first capability with this id in the standard (`extended == false`) or the
    /// extended list.
    pub fn cap(&self, id: u16, extended: bool) -> Option<&Capability> {
        self.caps
            .iter()
            .find(|c| c.id == id && c.extended == extended)
    }
}

// ---------------------------------------------------------------------------------------
// Identifiers (pciutils lib/header.h)

/// Standard capability ids.
pub const CAP_PM: u16 = 0x01;
pub const CAP_AGP: u16 = 0x02;
pub const CAP_VPD: u16 = 0x03;
pub const CAP_MSI: u16 = 0x05;
pub const CAP_PCIX: u16 = 0x07;
pub const CAP_VNDR: u16 = 0x09;
pub const CAP_SSVID: u16 = 0x0d;
pub const CAP_EXP: u16 = 0x10;
pub const CAP_MSIX: u16 = 0x11;

/// Extended capability ids.
pub const ECAP_AER: u16 = 0x01;
pub const ECAP_VC: u16 = 0x02;
pub const ECAP_DSN: u16 = 0x03;
pub const ECAP_VNDR: u16 = 0x0b;
pub const ECAP_ACS: u16 = 0x0d;
pub const ECAP_ARI: u16 = 0x0e;
pub const ECAP_ATS: u16 = 0x0f;
pub const ECAP_SRIOV: u16 = 0x10;
pub const ECAP_PRI: u16 = 0x13;
pub const ECAP_TPH: u16 = 0x17;
pub const ECAP_LTR: u16 = 0x18;
pub const ECAP_SECPCI: u16 = 0x19;
pub const ECAP_PASID: u16 = 0x1b;
pub const ECAP_DPC: u16 = 0x1d;
pub const ECAP_L1SS: u16 = 0x1e;
pub const ECAP_PTM: u16 = 0x1f;

/// PCI Express device/port types (PCIe capabilities register bits 7:4).
pub const EXP_TYPE_ENDPOINT: u8 = 0x0;
pub const EXP_TYPE_LEG_END: u8 = 0x1;
pub const EXP_TYPE_ROOT_PORT: u8 = 0x4;
pub const EXP_TYPE_UPSTREAM: u8 = 0x5;
pub const EXP_TYPE_DOWNSTREAM: u8 = 0x6;
pub const EXP_TYPE_PCI_BRIDGE: u8 = 0x7;
pub const EXP_TYPE_PCIE_BRIDGE: u8 = 0x8;
pub const EXP_TYPE_ROOT_INT_EP: u8 = 0x9;
pub const EXP_TYPE_ROOT_EC: u8 = 0xa;

/// At most this many entries in the standard capability list (the kernel's limit).
pub const MAX_CAPS: usize = 48;
/// At most this many entries in the extended list: (4096 - 256) / 8, as the kernel.
pub const MAX_EXT_CAPS: usize = 480;

/// The name lspci gives a standard capability.
pub fn cap_name(id: u16) -> &'static str {
    match id {
        0x00 => "Null",
        0x01 => "Power Management",
        0x02 => "AGP",
        0x03 => "Vital Product Data",
        0x04 => "Slot ID",
        0x05 => "MSI",
        0x06 => "CompactPCI hot-swap",
        0x07 => "PCI-X",
        0x08 => "HyperTransport",
        0x09 => "Vendor Specific Information",
        0x0a => "Debug port",
        0x0b => "CompactPCI central resource control",
        0x0c => "Hot-plug capable",
        0x0d => "Subsystem",
        0x0e => "AGP3",
        0x0f => "Secure device",
        0x10 => "Express",
        0x11 => "MSI-X",
        0x12 => "SATA HBA",
        0x13 => "PCI Advanced Features",
        0x14 => "Enhanced Allocation (EA)",
        _ => "Capability",
    }
}

/// The name lspci gives an extended capability.
pub fn ext_cap_name(id: u16) -> &'static str {
    match id {
        0x00 => "Null",
        0x01 => "Advanced Error Reporting",
        0x02 | 0x09 => "Virtual Channel",
        0x03 => "Device Serial Number",
        0x04 => "Power Budgeting",
        0x05 => "Root Complex Link",
        0x06 => "Root Complex Internal Link",
        0x07 => "Root Complex Event Collector Endpoint Association",
        0x08 => "Multi-Function Virtual Channel",
        0x0a => "Root Complex Register Block",
        0x0b => "Vendor Specific Information",
        0x0d => "Access Control Services",
        0x0e => "Alternative Routing-ID Interpretation (ARI)",
        0x0f => "Address Translation Service (ATS)",
        0x10 => "Single Root I/O Virtualization (SR-IOV)",
        0x11 => "Multi-Root I/O Virtualization",
        0x12 => "Multicast",
        0x13 => "Page Request Interface (PRI)",
        0x15 => "Physical Resizable BAR",
        0x16 => "Dynamic Power Allocation",
        0x17 => "Transaction Processing Hints",
        0x18 => "Latency Tolerance Reporting",
        0x19 => "Secondary PCI Express",
        0x1a => "Protocol Multiplexing",
        0x1b => "Process Address Space ID (PASID)",
        0x1c => "LN Requester",
        0x1d => "Downstream Port Containment",
        0x1e => "L1 PM Substates",
        0x1f => "Precision Time Measurement",
        0x20 => "PCI Express over M_PHY",
        0x21 => "FRS Queueing",
        0x22 => "Readiness Time Reporting",
        0x23 => "Designated Vendor-Specific",
        0x24 => "VF Resizable BAR",
        0x25 => "Data Link Feature",
        0x26 => "Physical Layer 16.0 GT/s",
        0x27 => "Lane Margining at the Receiver",
        0x28 => "Hierarchy ID",
        0x29 => "Native PCIe Enclosure Management",
        0x2a => "Physical Layer 32.0 GT/s",
        0x2e => "Data Object Exchange",
        0x30 => "Integrity & Data Encryption",
        _ => "Extended Capability",
    }
}

/// The name lspci gives a PCI Express device/port type.
pub fn exp_type_name(t: u8) -> &'static str {
    match t {
        EXP_TYPE_ENDPOINT => "Endpoint",
        EXP_TYPE_LEG_END => "Legacy Endpoint",
        EXP_TYPE_ROOT_PORT => "Root Port",
        EXP_TYPE_UPSTREAM => "Upstream Port",
        EXP_TYPE_DOWNSTREAM => "Downstream Port",
        EXP_TYPE_PCI_BRIDGE => "PCI-Express to PCI/PCI-X Bridge",
        EXP_TYPE_PCIE_BRIDGE => "PCI/PCI-X to PCI-Express Bridge",
        EXP_TYPE_ROOT_INT_EP => "Root Complex Integrated Endpoint",
        EXP_TYPE_ROOT_EC => "Root Complex Event Collector",
        _ => "Unknown type",
    }
}

/// The short group label of an extended capability (`AER @0x100`).
fn ext_group_label(id: u16) -> &'static str {
    match id {
        ECAP_AER => "AER",
        ECAP_DSN => "DSN",
        ECAP_ACS => "ACS",
        ECAP_ARI => "ARI",
        ECAP_SRIOV => "SR-IOV",
        ECAP_LTR => "LTR",
        ECAP_L1SS => "L1SS",
        other => ext_cap_name(other),
    }
}

// ---------------------------------------------------------------------------------------
// The walk

/// Walk `config` (64, 256 or 4096 bytes) into its registers and capabilities.
pub fn layout(config: &[u8]) -> Layout {
    let mut w = Walker {
        cfg: config,
        limit: config.len(),
        short: false,
        exp_type: None,
        out: Layout {
            regs: Vec::with_capacity(96),
            caps: Vec::with_capacity(16),
            problems: Vec::new(),
        },
    };
    w.walk();
    let mut out = w.out;
    settle(&mut out);
    out
}

/// The PCI Express device/port type of a walked config space, if it has the capability.
pub fn express_type(layout: &Layout, config: &[u8]) -> Option<u8> {
    let reg = layout.reg("pcie.caps")?;
    reg_value(reg, config).map(|v| ((v >> 4) & 0xf) as u8)
}

struct Walker<'a> {
    cfg: &'a [u8],
    /// Registers must end at or before this offset (0x100 inside the standard list).
    limit: usize,
    /// A register of the current structure did not fit.
    short: bool,
    /// The PCI Express device/port type, once the PCIe capability has been seen.
    exp_type: Option<u8>,
    out: Layout,
}

impl Walker<'_> {
    fn r8(&self, off: usize) -> Option<u8> {
        self.cfg.get(off).copied()
    }

    fn r16(&self, off: usize) -> Option<u16> {
        let b = self.cfg.get(off..off.checked_add(2)?)?;
        Some(u16::from_le_bytes(b.try_into().ok()?))
    }

    fn r32(&self, off: usize) -> Option<u32> {
        let b = self.cfg.get(off..off.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    fn problem(&mut self, p: String) {
        self.out.problems.push(p);
    }

    /// Add a register if it fits in the config space (and in the current structure's
    /// limit); remember when one did not.
    fn reg(
        &mut self,
        off: usize,
        width: u8,
        key: &'static str,
        name: impl Into<String>,
        group: &str,
    ) {
        self.reg_v(off, width, key, name, group, false);
    }

    fn reg_v(
        &mut self,
        off: usize,
        width: u8,
        key: &'static str,
        name: impl Into<String>,
        group: &str,
        volatile: bool,
    ) {
        if off + width as usize > self.limit || off > u16::MAX as usize {
            self.short = true;
            return;
        }
        self.out.regs.push(PciReg {
            offset: off as u16,
            width,
            key,
            name: name.into(),
            group: group.to_string(),
            volatile: volatile.then_some(Volatility::Counter),
        });
    }

    fn walk(&mut self) {
        let len = self.cfg.len();
        if len == 0 {
            self.problem("config space is empty".into());
            return;
        }
        if len < 64 {
            self.problem(format!(
                "config space holds only {len} bytes; the header needs 64"
            ));
        }
        let head = &self.cfg[..len.min(64)];
        if head.iter().all(|&b| b == 0xff) {
            self.problem(
                "config space reads as all ones: the device is gone or powered off".into(),
            );
            self.header_common("Header");
            return;
        }
        let htype = self.r8(0x0e).map(|t| t & 0x7f);
        let g = "Header";
        self.header_common(g);
        let cap_ptr_at = match htype {
            Some(0) => {
                self.header_type0(g);
                Some(0x34)
            }
            Some(1) => {
                self.header_type1(g);
                Some(0x34)
            }
            Some(2) => {
                self.reg(0x14, 1, "header.cap_ptr", "Capabilities Pointer", g);
                self.reg_v(
                    0x16,
                    2,
                    "header.secondary_status",
                    "Secondary Status",
                    g,
                    true,
                );
                self.reg(0x3c, 1, "header.interrupt_line", "Interrupt Line", g);
                self.reg(0x3d, 1, "header.interrupt_pin", "Interrupt Pin", g);
                self.reg(0x3e, 2, "header.bridge_control", "Bridge Control", g);
                Some(0x14)
            }
            Some(t) => {
                self.problem(format!("unknown header type {t:#04x}"));
                None
            }
            None => None,
        };
        if let (Some(t), Some(class)) = (htype, self.r16(0x0a)) {
            let expected = match class {
                0x0604 | 0x0609 => 1,
                0x0607 => 2,
                _ => 0,
            };
            if t <= 2 && t != expected {
                self.problem(format!(
                    "class {class:04x} does not go with header type {t:02x} (lspci: invalid class)"
                ));
            }
        }
        let status = self.r16(0x06).unwrap_or(0);
        let mut can_have_ext = false;
        if let Some(at) = cap_ptr_at {
            if status & 0x10 != 0 {
                can_have_ext = self.walk_caps(at);
            }
        }
        if len > 0x100 && can_have_ext {
            self.walk_ext_caps();
        }
    }

    fn header_common(&mut self, g: &str) {
        self.reg(0x00, 4, "header.ids", "Vendor/Device ID", g);
        self.reg(0x04, 2, "header.command", "Command", g);
        self.reg_v(0x06, 2, "header.status", "Status", g, true);
        self.reg(0x08, 4, "header.class", "Class/Revision", g);
        self.reg(0x0c, 1, "header.cache_line_size", "Cache Line Size", g);
        self.reg(0x0d, 1, "header.latency_timer", "Latency Timer", g);
        self.reg(0x0e, 1, "header.type", "Header Type", g);
        self.reg(0x0f, 1, "header.bist", "BIST", g);
    }

    /// `count` base address registers from `at`; the upper half of a 64-bit memory BAR is
    /// named as such (`BAR1 (BAR0 high)`).
    fn bars(&mut self, at: usize, count: usize, key: &'static str, prefix: &str, g: &str) {
        let mut i = 0;
        while i < count {
            let off = at + 4 * i;
            let v = self.r32(off).unwrap_or(0);
            self.reg(off, 4, key, format!("{prefix}{i}"), g);
            if v & 0x1 == 0 && v & 0x6 == 0x4 && i + 1 < count {
                let name = format!("{prefix}{} ({prefix}{i} high)", i + 1);
                self.reg(off + 4, 4, key, name, g);
                i += 1;
            }
            i += 1;
        }
    }

    fn header_type0(&mut self, g: &str) {
        self.bars(0x10, 6, "header.bar", "BAR", g);
        self.reg(0x28, 4, "header.cardbus_cis", "CardBus CIS", g);
        self.reg(0x2c, 4, "header.subsystem", "Subsystem ID", g);
        self.reg(0x30, 4, "header.rom", "Expansion ROM", g);
        self.reg(0x34, 1, "header.cap_ptr", "Capabilities Pointer", g);
        self.reg(0x3c, 1, "header.interrupt_line", "Interrupt Line", g);
        self.reg(0x3d, 1, "header.interrupt_pin", "Interrupt Pin", g);
        self.reg(0x3e, 1, "header.min_gnt", "Min_Gnt", g);
        self.reg(0x3f, 1, "header.max_lat", "Max_Lat", g);
    }

    fn header_type1(&mut self, g: &str) {
        self.bars(0x10, 2, "header.bar", "BAR", g);
        self.reg(0x18, 4, "header.bus_numbers", "Bus Numbers", g);
        self.reg(0x1c, 2, "header.io_window", "I/O Base/Limit", g);
        self.reg_v(
            0x1e,
            2,
            "header.secondary_status",
            "Secondary Status",
            g,
            true,
        );
        self.reg(0x20, 4, "header.mem_window", "Memory Base/Limit", g);
        self.reg(
            0x24,
            4,
            "header.prefetch_window",
            "Prefetchable Base/Limit",
            g,
        );
        self.reg(
            0x28,
            4,
            "header.prefetch_window",
            "Prefetchable Base Upper",
            g,
        );
        self.reg(
            0x2c,
            4,
            "header.prefetch_window",
            "Prefetchable Limit Upper",
            g,
        );
        self.reg(0x30, 4, "header.io_window", "I/O Base/Limit Upper", g);
        self.reg(0x34, 1, "header.cap_ptr", "Capabilities Pointer", g);
        self.reg(0x38, 4, "header.rom", "Expansion ROM", g);
        self.reg(0x3c, 1, "header.interrupt_line", "Interrupt Line", g);
        self.reg(0x3d, 1, "header.interrupt_pin", "Interrupt Pin", g);
        self.reg(0x3e, 2, "header.bridge_control", "Bridge Control", g);
    }

    /// Walk the standard list whose first pointer is at `ptr_at`. Returns whether a PCI
    /// Express or PCI-X capability was found (only those devices have extended space).
    fn walk_caps(&mut self, ptr_at: usize) -> bool {
        let Some(first) = self.r8(ptr_at) else {
            return false;
        };
        let mut from = ptr_at;
        let mut ptr = (first & !3) as usize;
        let mut seen: u64 = 0;
        let mut count = 0;
        let mut ext = false;
        while ptr != 0 {
            if ptr < 0x40 {
                self.problem(format!(
                    "capability pointer at {from:#04x} points into the header ({ptr:#04x})"
                ));
                break;
            }
            if ptr + 2 > self.cfg.len() {
                self.problem(format!(
                    "capability pointer at {from:#04x} points to {ptr:#04x}, past the end of \
                     the {}-byte config space",
                    self.cfg.len()
                ));
                break;
            }
            let bit = 1u64 << (ptr / 4);
            if seen & bit != 0 {
                self.problem(format!(
                    "capability list loops: {from:#04x} points back to {ptr:#04x}"
                ));
                break;
            }
            seen |= bit;
            count += 1;
            if count > MAX_CAPS {
                self.problem(format!(
                    "capability list has more than {MAX_CAPS} entries; the rest is ignored"
                ));
                break;
            }
            let id = self.r8(ptr).unwrap_or(0xff);
            let next = (self.r8(ptr + 1).unwrap_or(0) & !3) as usize;
            if id == 0xff {
                self.problem(format!(
                    "capability list broken at {ptr:#04x}: capability id 0xff"
                ));
                break;
            }
            let id16 = id as u16;
            self.out.caps.push(Capability {
                id: id16,
                offset: ptr as u16,
                extended: false,
                name: cap_name(id16).to_string(),
            });
            if id16 == CAP_EXP || id16 == CAP_PCIX {
                ext = true;
            }
            self.limit = self.cfg.len().min(0x100);
            self.short = false;
            self.decode_cap(id16, ptr);
            if self.short {
                self.problem(format!(
                    "{} capability at {ptr:#04x} runs past the end of {} config space",
                    cap_name(id16),
                    if self.cfg.len() < 0x100 {
                        "the truncated"
                    } else {
                        "the standard"
                    }
                ));
            }
            from = ptr + 1;
            ptr = next;
        }
        self.limit = self.cfg.len();
        ext
    }

    fn walk_ext_caps(&mut self) {
        let len = self.cfg.len();
        let mut pos = 0x100usize;
        let mut from: Option<usize> = None;
        let mut seen = [0u64; 16];
        let mut count = 0;
        loop {
            let Some(header) = self.r32(pos) else {
                self.problem(format!(
                    "extended capability pointer {pos:#05x} is past the end of the \
                     {len}-byte config space"
                ));
                break;
            };
            if header == 0 || header == 0xffff_ffff {
                if let Some(f) = from {
                    self.problem(format!(
                        "extended capability at {f:#05x} points to an empty header at \
                         {pos:#05x}"
                    ));
                } else if header == 0xffff_ffff {
                    self.problem("extended config space reads as all ones".into());
                }
                break;
            }
            let slot = pos / 4;
            let (word, bit) = (slot / 64, 1u64 << (slot % 64));
            let Some(w) = seen.get_mut(word) else {
                break;
            };
            if *w & bit != 0 {
                self.problem(format!(
                    "extended capability list loops: {:#05x} points back to {pos:#05x}",
                    from.unwrap_or(pos)
                ));
                break;
            }
            *w |= bit;
            count += 1;
            if count > MAX_EXT_CAPS {
                self.problem(format!(
                    "extended capability list has more than {MAX_EXT_CAPS} entries; the \
                     rest is ignored"
                ));
                break;
            }
            let id = (header & 0xffff) as u16;
            let version = ((header >> 16) & 0xf) as u8;
            let next = ((header >> 20) & 0xffc) as usize;
            self.out.caps.push(Capability {
                id,
                offset: pos as u16,
                extended: true,
                name: ext_cap_name(id).to_string(),
            });
            self.limit = len;
            self.short = false;
            self.decode_ext_cap(id, pos, version);
            if self.short {
                self.problem(format!(
                    "{} capability at {pos:#05x} runs past the end of the {len}-byte config \
                     space",
                    ext_cap_name(id)
                ));
            }
            if next == 0 {
                break;
            }
            if next < 0x100 {
                self.problem(format!(
                    "extended capability at {pos:#05x} points to {next:#05x}, below 0x100"
                ));
                break;
            }
            from = Some(pos);
            pos = next;
        }
        self.limit = len;
    }

    fn decode_cap(&mut self, id: u16, at: usize) {
        match id {
            CAP_PM => {
                let g = format!("Power Management @{at:#x}");
                self.reg(at + 2, 2, "pm.pmc", "PMC", &g);
                self.reg(at + 4, 2, "pm.pmcsr", "PMCSR", &g);
                self.reg(at + 6, 1, "pm.bse", "PMCSR_BSE", &g);
                self.reg_v(at + 7, 1, "pm.data", "PM Data", &g, true);
            }
            CAP_MSI => {
                let g = format!("MSI @{at:#x}");
                let ctl = self.r16(at + 2).unwrap_or(0);
                let is64 = ctl & 0x80 != 0;
                let maskable = ctl & 0x100 != 0;
                self.reg(at + 2, 2, "msi.control", "MSI Control", &g);
                self.reg(at + 4, 4, "msi.address", "MSI Address", &g);
                let data = if is64 {
                    self.reg(at + 8, 4, "msi.address", "MSI Upper Address", &g);
                    at + 0x0c
                } else {
                    at + 0x08
                };
                self.reg(data, 2, "msi.data", "MSI Data", &g);
                if maskable {
                    let m = if is64 { at + 0x10 } else { at + 0x0c };
                    self.reg(m, 4, "msi.mask", "MSI Mask", &g);
                    self.reg_v(m + 4, 4, "msi.pending", "MSI Pending", &g, true);
                }
            }
            CAP_MSIX => {
                let g = format!("MSI-X @{at:#x}");
                self.reg(at + 2, 2, "msix.control", "MSI-X Control", &g);
                self.reg(at + 4, 4, "msix.table", "MSI-X Table", &g);
                self.reg(at + 8, 4, "msix.pba", "MSI-X PBA", &g);
            }
            CAP_EXP => self.cap_express(at),
            _ => {}
        }
    }

    fn cap_express(&mut self, at: usize) {
        let flags = self.r16(at + 2).unwrap_or(0);
        let version = flags & 0xf;
        let ty = ((flags >> 4) & 0xf) as u8;
        if self.exp_type.is_some() {
            self.problem(format!(
                "a second PCI Express capability at {at:#04x}; the first one counts"
            ));
        } else {
            self.exp_type = Some(ty);
        }
        let g = match exp_type_name(ty) {
            "Unknown type" => format!("Express (type {ty}) @{at:#x}"),
            name => format!("Express ({name}) @{at:#x}"),
        };
        let slot = matches!(
            ty,
            EXP_TYPE_ROOT_PORT | EXP_TYPE_DOWNSTREAM | EXP_TYPE_PCIE_BRIDGE
        ) && flags & 0x100 != 0;
        let link = !matches!(ty, EXP_TYPE_ROOT_INT_EP | EXP_TYPE_ROOT_EC);
        let root = matches!(ty, EXP_TYPE_ROOT_PORT | EXP_TYPE_ROOT_EC);
        self.reg(at + 0x02, 2, "pcie.caps", "PCIe Cap", &g);
        self.reg(at + 0x04, 4, "pcie.devcap", "DevCap", &g);
        self.reg(at + 0x08, 2, "pcie.devctl", "DevCtl", &g);
        self.reg_v(at + 0x0a, 2, "pcie.devsta", "DevSta", &g, true);
        if link {
            self.reg(at + 0x0c, 4, "pcie.lnkcap", "LnkCap", &g);
            self.reg(at + 0x10, 2, "pcie.lnkctl", "LnkCtl", &g);
            self.reg_v(at + 0x12, 2, "pcie.lnksta", "LnkSta", &g, true);
        }
        if slot {
            self.reg(at + 0x14, 4, "pcie.sltcap", "SltCap", &g);
            self.reg(at + 0x18, 2, "pcie.sltctl", "SltCtl", &g);
            self.reg_v(at + 0x1a, 2, "pcie.sltsta", "SltSta", &g, true);
        }
        if root {
            self.reg(at + 0x1c, 2, "pcie.rootctl", "RootCtl", &g);
            self.reg(at + 0x1e, 2, "pcie.rootcap", "RootCap", &g);
            self.reg_v(at + 0x20, 4, "pcie.rootsta", "RootSta", &g, true);
        }
        if version >= 2 {
            self.reg(at + 0x24, 4, "pcie.devcap2", "DevCap2", &g);
            self.reg(at + 0x28, 2, "pcie.devctl2", "DevCtl2", &g);
            self.reg_v(at + 0x2a, 2, "pcie.devsta2", "DevSta2", &g, true);
            if link {
                self.reg(at + 0x2c, 4, "pcie.lnkcap2", "LnkCap2", &g);
                self.reg(at + 0x30, 2, "pcie.lnkctl2", "LnkCtl2", &g);
                self.reg_v(at + 0x32, 2, "pcie.lnksta2", "LnkSta2", &g, true);
            }
            if slot {
                self.reg(at + 0x34, 4, "pcie.sltcap2", "SltCap2", &g);
                self.reg(at + 0x38, 2, "pcie.sltctl2", "SltCtl2", &g);
                self.reg_v(at + 0x3a, 2, "pcie.sltsta2", "SltSta2", &g, true);
            }
        }
    }

    fn decode_ext_cap(&mut self, id: u16, at: usize, _version: u8) {
        let g = format!("{} @{at:#x}", ext_group_label(id));
        match id {
            ECAP_AER => {
                self.reg_v(at + 0x04, 4, "aer.uncor_status", "UESta", &g, true);
                self.reg(at + 0x08, 4, "aer.uncor_mask", "UEMsk", &g);
                self.reg(at + 0x0c, 4, "aer.uncor_severity", "UESvrt", &g);
                self.reg_v(at + 0x10, 4, "aer.cor_status", "CESta", &g, true);
                self.reg(at + 0x14, 4, "aer.cor_mask", "CEMsk", &g);
                self.reg(at + 0x18, 4, "aer.cap_control", "AERCap", &g);
                const LOG: [&str; 4] = ["HeaderLog0", "HeaderLog1", "HeaderLog2", "HeaderLog3"];
                for (i, name) in LOG.iter().enumerate() {
                    self.reg_v(at + 0x1c + 4 * i, 4, "aer.header_log", *name, &g, true);
                }
                if matches!(self.exp_type, Some(EXP_TYPE_ROOT_PORT | EXP_TYPE_ROOT_EC)) {
                    self.reg(at + 0x2c, 4, "aer.root_command", "RootCmd", &g);
                    self.reg_v(at + 0x30, 4, "aer.root_status", "RootSta", &g, true);
                    self.reg_v(at + 0x34, 4, "aer.error_source", "ErrorSrc", &g, true);
                }
            }
            ECAP_DSN => {
                self.reg(at + 0x04, 4, "dsn.serial", "Serial Number Low", &g);
                self.reg(at + 0x08, 4, "dsn.serial", "Serial Number High", &g);
            }
            ECAP_ACS => {
                self.reg(at + 0x04, 2, "acs.cap", "ACSCap", &g);
                self.reg(at + 0x06, 2, "acs.ctrl", "ACSCtl", &g);
            }
            ECAP_ARI => {
                self.reg(at + 0x04, 2, "ari.cap", "ARICap", &g);
                self.reg(at + 0x06, 2, "ari.ctrl", "ARICtl", &g);
            }
            ECAP_SRIOV => {
                self.reg(at + 0x04, 4, "sriov.cap", "SR-IOV Cap", &g);
                self.reg(at + 0x08, 2, "sriov.ctrl", "SR-IOV Control", &g);
                self.reg_v(at + 0x0a, 2, "sriov.status", "SR-IOV Status", &g, true);
                self.reg(at + 0x0c, 2, "sriov.initial_vfs", "InitialVFs", &g);
                self.reg(at + 0x0e, 2, "sriov.total_vfs", "TotalVFs", &g);
                self.reg(at + 0x10, 2, "sriov.num_vfs", "NumVFs", &g);
                self.reg(at + 0x12, 1, "sriov.fdl", "Function Dependency Link", &g);
                self.reg(at + 0x14, 2, "sriov.vf_offset", "VF Offset", &g);
                self.reg(at + 0x16, 2, "sriov.vf_stride", "VF Stride", &g);
                self.reg(at + 0x1a, 2, "sriov.vf_device", "VF Device ID", &g);
                self.reg(
                    at + 0x1c,
                    4,
                    "sriov.supported_page_sizes",
                    "Supported Page Sizes",
                    &g,
                );
                self.reg(at + 0x20, 4, "sriov.page_size", "System Page Size", &g);
                self.bars(at + 0x24, 6, "sriov.vf_bar", "VF BAR", &g);
                self.reg(at + 0x3c, 4, "sriov.migration", "VF Migration State", &g);
            }
            ECAP_LTR => {
                self.reg(at + 0x04, 2, "ltr.max_snoop", "Max Snoop Latency", &g);
                self.reg(at + 0x06, 2, "ltr.max_nosnoop", "Max No-Snoop Latency", &g);
            }
            ECAP_L1SS => {
                self.reg(at + 0x04, 4, "l1ss.cap", "L1SubCap", &g);
                self.reg(at + 0x08, 4, "l1ss.ctl1", "L1SubCtl1", &g);
                self.reg(at + 0x0c, 4, "l1ss.ctl2", "L1SubCtl2", &g);
            }
            _ => {}
        }
    }
}

/// Sort the registers by offset and drop any that overlaps an earlier one (overlapping
/// capabilities): `reg_at` needs disjoint, sorted registers.
fn settle(out: &mut Layout) {
    if !out.regs.is_sorted_by_key(|r| r.offset) {
        out.regs.sort_by_key(|r| r.offset);
    }
    let mut end = 0u32;
    let mut dropped: Vec<String> = Vec::new();
    out.regs.retain(|r| {
        let start = r.offset as u32;
        if start < end {
            dropped.push(format!(
                "{} ({}) at {:#05x} overlaps an earlier register; ignored",
                r.name, r.group, r.offset
            ));
            false
        } else {
            end = start + r.width as u32;
            true
        }
    });
    out.problems.extend(dropped);
}

/// The value of `reg` in `config`, little-endian; `None` when config is too short.
pub fn reg_value(reg: &PciReg, config: &[u8]) -> Option<u64> {
    let start = reg.offset as usize;
    let bytes = config.get(start..start + reg.width as usize)?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64),
    )
}

// ---------------------------------------------------------------------------------------
// Field tables

#[derive(Clone, Copy)]
enum Kind {
    /// One bit: shown `Name+` / `Name-`.
    Flag,
    /// A number without named values.
    Num,
    /// Named values, indexed by the field value.
    Table(&'static [&'static str]),
    /// A meaning computed from the whole register value.
    Fmt(fn(u64) -> String),
}

#[derive(Clone, Copy)]
struct F {
    name: &'static str,
    mask: u64,
    kind: Kind,
}

const fn flag(name: &'static str, bit: u32) -> F {
    F {
        name,
        mask: 1 << bit,
        kind: Kind::Flag,
    }
}

const fn num(name: &'static str, mask: u64) -> F {
    F {
        name,
        mask,
        kind: Kind::Num,
    }
}

const fn table(name: &'static str, mask: u64, t: &'static [&'static str]) -> F {
    F {
        name,
        mask,
        kind: Kind::Table(t),
    }
}

const fn fmt(name: &'static str, mask: u64, f: fn(u64) -> String) -> F {
    F {
        name,
        mask,
        kind: Kind::Fmt(f),
    }
}

impl F {
    fn decode(&self, value: u64) -> Field {
        let v = extract(value, self.mask);
        let meaning = match self.kind {
            Kind::Flag | Kind::Num => None,
            Kind::Table(t) => Some(match t.get(v as usize) {
                Some(s) => (*s).to_string(),
                None => format!("reserved ({v})"),
            }),
            Kind::Fmt(f) => Some(f(value)),
        };
        Field {
            name: self.name.to_string(),
            mask: self.mask,
            value: v,
            meaning,
        }
    }
}

/// The named fields of `reg` holding `value`.
pub fn decode_reg(reg: &PciReg, value: u64) -> Vec<Field> {
    match reg.key {
        "header.bar" | "sriov.vf_bar" if reg.name.ends_with(" high)") => {
            return vec![F {
                name: "AddressHigh",
                mask: 0xffff_ffff,
                kind: Kind::Fmt(|v| format!("{:#x}", v & 0xffff_ffff)),
            }
            .decode(value)];
        }
        "header.bar" | "sriov.vf_bar" => return bar_fields(value),
        _ => {}
    }
    fields_of(reg).iter().map(|f| f.decode(value)).collect()
}

fn bar_fields(value: u64) -> Vec<Field> {
    const IO: &[F] = &[flag("I/O", 0), fmt("Address", 0xffff_fffc, bar_io_addr)];
    const MEM: &[F] = &[
        flag("I/O", 0),
        table("Type", 0x6, &["32-bit", "below 1M", "64-bit", "reserved"]),
        flag("Prefetchable", 3),
        fmt("Address", 0xffff_fff0, bar_mem_addr),
    ];
    let t = if value & 1 != 0 { IO } else { MEM };
    t.iter().map(|f| f.decode(value)).collect()
}

fn bar_io_addr(v: u64) -> String {
    format!("{:#x}", v & 0xffff_fffc)
}

fn bar_mem_addr(v: u64) -> String {
    format!("{:#x}", v & 0xffff_fff0)
}

/// A `&'static [F]` from field constructors (const fns are not promoted in plain code).
macro_rules! t {
    ($($e:expr),* $(,)?) => {{
        const T: &[F] = &[$($e),*];
        T
    }};
}

fn fields_of(reg: &PciReg) -> &'static [F] {
    match (reg.key, reg.offset) {
        ("header.ids", _) => IDS,
        ("header.command", _) => COMMAND,
        ("header.status", _) => STATUS,
        ("header.class", _) => CLASS,
        ("header.cache_line_size", _) => t![fmt("CacheLineSize", 0xff, cache_line)],
        ("header.latency_timer", _) => t![num("LatencyTimer", 0xff)],
        ("header.type", _) => t![
            table(
                "Layout",
                0x7f,
                &["normal", "PCI-to-PCI bridge", "CardBus bridge"],
            ),
            flag("MultiFunction", 7),
        ],
        ("header.bist", _) => t![
            num("CompletionCode", 0x0f),
            flag("Start", 6),
            flag("Capable", 7),
        ],
        ("header.subsystem", _) => t![
            num("SubsystemVendor", 0xffff),
            num("Subsystem", 0xffff_0000)
        ],
        ("header.rom", _) => t![flag("Enable", 0), fmt("Address", 0xffff_f800, rom_addr)],
        ("header.interrupt_pin", _) => t![table("Pin", 0xff, &["none", "A", "B", "C", "D"])],
        ("header.secondary_status", _) => SEC_STATUS,
        ("header.bridge_control", _) => BRIDGE_CONTROL,
        ("header.bus_numbers", _) => t![
            num("Primary", 0xff),
            num("Secondary", 0xff00),
            num("Subordinate", 0xff_0000),
            num("SecLatency", 0xff00_0000),
        ],
        ("header.io_window", 0x1c) => t![
            table("IOBaseType", 0x0f, &["16-bit", "32-bit"]),
            fmt("IOBase", 0xf0, |v| format!("{:#x}", (v & 0xf0) << 8)),
            table("IOLimitType", 0x0f00, &["16-bit", "32-bit"]),
            fmt("IOLimit", 0xf000, |v| format!(
                "{:#x}",
                (v & 0xf000) | 0xfff
            )),
        ],
        ("header.io_window", _) => t![
            num("IOBaseUpper16", 0xffff),
            num("IOLimitUpper16", 0xffff_0000)
        ],
        ("header.mem_window", _) => t![
            fmt("MemBase", 0xfff0, |v| format!("{:#x}", (v & 0xfff0) << 16)),
            fmt("MemLimit", 0xfff0_0000, |v| {
                format!("{:#x}", (v & 0xfff0_0000) | 0xf_ffff)
            }),
        ],
        ("header.prefetch_window", 0x24) => t![
            table("PrefBaseType", 0x0f, &["32-bit", "64-bit"]),
            fmt("PrefBase", 0xfff0, |v| format!("{:#x}", (v & 0xfff0) << 16)),
            table("PrefLimitType", 0x000f_0000, &["32-bit", "64-bit"]),
            fmt("PrefLimit", 0xfff0_0000, |v| {
                format!("{:#x}", (v & 0xfff0_0000) | 0xf_ffff)
            }),
        ],
        ("header.prefetch_window", 0x28) => t![num("PrefBaseUpper32", 0xffff_ffff)],
        ("header.prefetch_window", _) => t![num("PrefLimitUpper32", 0xffff_ffff)],
        ("header.cap_ptr", _) => t![num("CapPtr", 0xff)],
        ("header.interrupt_line", _) => t![num("IRQ", 0xff)],
        ("pm.pmc", _) => PMC,
        ("pm.pmcsr", _) => PMCSR,
        ("pm.bse", _) => t![flag("B2/B3", 6), flag("BPCC", 7)],
        ("msi.control", _) => MSI_CONTROL,
        ("msix.control", _) => MSIX_CONTROL,
        ("msix.table", _) | ("msix.pba", _) => t![
            num("BAR", 0x7),
            fmt("Offset", 0xffff_fff8, |v| format!(
                "{:#010x}",
                v & 0xffff_fff8
            )),
        ],
        ("pcie.caps", _) => EXP_CAPS,
        ("pcie.devcap", _) => DEVCAP,
        ("pcie.devctl", _) => DEVCTL,
        ("pcie.devsta", _) => DEVSTA,
        ("pcie.lnkcap", _) => LNKCAP,
        ("pcie.lnkctl", _) => LNKCTL,
        ("pcie.lnksta", _) => LNKSTA,
        ("pcie.sltcap", _) => SLTCAP,
        ("pcie.sltctl", _) => SLTCTL,
        ("pcie.sltsta", _) => SLTSTA,
        ("pcie.rootctl", _) => ROOTCTL,
        ("pcie.rootcap", _) => t![flag("CRSVisible", 0)],
        ("pcie.rootsta", _) => t![
            num("PMEReqID", 0xffff),
            flag("PMEStatus", 16),
            flag("PMEPending", 17),
        ],
        ("pcie.devcap2", _) => DEVCAP2,
        ("pcie.devctl2", _) => DEVCTL2,
        ("pcie.lnkcap2", _) => LNKCAP2,
        ("pcie.lnkctl2", _) => LNKCTL2,
        ("pcie.lnksta2", _) => LNKSTA2,
        ("aer.uncor_status", _) | ("aer.uncor_mask", _) | ("aer.uncor_severity", _) => AER_UNCOR,
        ("aer.cor_status", _) | ("aer.cor_mask", _) => AER_COR,
        ("aer.cap_control", _) => AER_CAP,
        ("aer.root_command", _) => t![flag("CERptEn", 0), flag("NFERptEn", 1), flag("FERptEn", 2)],
        ("aer.root_status", _) => AER_ROOT_STATUS,
        ("aer.error_source", _) => t![
            num("ERR_COR", 0xffff),
            num("ERR_FATAL/NONFATAL", 0xffff_0000)
        ],
        ("sriov.cap", _) => t![
            flag("VFMigrationCap", 0),
            flag("ARIPreserved", 1),
            flag("VF10BitTagReqSup", 2),
            num("IntMsgNum", 0xffe0_0000),
        ],
        ("sriov.ctrl", _) => SRIOV_CTRL,
        ("sriov.status", _) => t![flag("VFMigrationStatus", 0)],
        ("sriov.initial_vfs", _) => t![num("InitialVFs", 0xffff)],
        ("sriov.total_vfs", _) => t![num("TotalVFs", 0xffff)],
        ("sriov.num_vfs", _) => t![num("NumVFs", 0xffff)],
        ("sriov.fdl", _) => t![num("FunctionDependencyLink", 0xff)],
        ("sriov.vf_offset", _) => t![num("VFOffset", 0xffff)],
        ("sriov.vf_stride", _) => t![num("VFStride", 0xffff)],
        ("sriov.vf_device", _) => t![num("VFDeviceID", 0xffff)],
        ("sriov.page_size", _) | ("sriov.supported_page_sizes", _) => {
            t![fmt("PageSizes", 0xffff_ffff, page_sizes)]
        }
        ("acs.cap", _) => ACS_CAP,
        ("acs.ctrl", _) => ACS_CTRL,
        ("ari.cap", _) => t![flag("MFVC", 0), flag("ACS", 1), num("NextFunction", 0xff00)],
        ("ari.ctrl", _) => t![flag("MFVC", 0), flag("ACS", 1), num("FuncGroup", 0x70)],
        ("ltr.max_snoop", _) | ("ltr.max_nosnoop", _) => LTR,
        ("l1ss.cap", _) => L1SS_CAP,
        ("l1ss.ctl1", _) => L1SS_CTL1,
        ("l1ss.ctl2", _) => t![fmt("T_PwrOn", 0xfb, |v| {
            pwron_us((v & 0x3) as u8, ((v >> 3) & 0x1f) as u32)
        })],
        _ => t![],
    }
}

const IDS: &[F] = &[num("Vendor", 0xffff), num("Device", 0xffff_0000)];
const CLASS: &[F] = &[
    num("Revision", 0xff),
    num("ProgIf", 0xff00),
    num("Subclass", 0xff_0000),
    num("Class", 0xff00_0000),
];

const COMMAND: &[F] = &[
    flag("I/O", 0),
    flag("Mem", 1),
    flag("BusMaster", 2),
    flag("SpecCycle", 3),
    flag("MemWINV", 4),
    flag("VGASnoop", 5),
    flag("ParErr", 6),
    flag("Stepping", 7),
    flag("SERR", 8),
    flag("FastB2B", 9),
    flag("DisINTx", 10),
];

const DEVSEL: &[&str] = &["fast", "medium", "slow", "reserved"];

const STATUS: &[F] = &[
    flag("Cap", 4),
    flag("66MHz", 5),
    flag("UDF", 6),
    flag("FastB2B", 7),
    flag("ParErr", 8),
    table("DEVSEL", 0x600, DEVSEL),
    flag(">TAbort", 11),
    flag("<TAbort", 12),
    flag("<MAbort", 13),
    flag(">SERR", 14),
    flag("<PERR", 15),
    flag("INTx", 3),
];

const SEC_STATUS: &[F] = &[
    flag("66MHz", 5),
    flag("FastB2B", 7),
    flag("ParErr", 8),
    table("DEVSEL", 0x600, DEVSEL),
    flag(">TAbort", 11),
    flag("<TAbort", 12),
    flag("<MAbort", 13),
    flag("<SERR", 14),
    flag("<PERR", 15),
];

const BRIDGE_CONTROL: &[F] = &[
    flag("Parity", 0),
    flag("SERR", 1),
    flag("NoISA", 2),
    flag("VGA", 3),
    flag("VGA16", 4),
    flag("MAbort", 5),
    flag(">Reset", 6),
    flag("FastB2B", 7),
    flag("PriDiscTmr", 8),
    flag("SecDiscTmr", 9),
    flag("DiscTmrStat", 10),
    flag("DiscTmrSERREn", 11),
];

const PMC: &[F] = &[
    num("Version", 0x7),
    flag("PMEClk", 3),
    flag("DSI", 5),
    table(
        "AuxCurrent",
        0x1c0,
        &[
            "0mA", "55mA", "100mA", "160mA", "220mA", "270mA", "320mA", "375mA",
        ],
    ),
    flag("D1", 9),
    flag("D2", 10),
    flag("PME(D0)", 11),
    flag("PME(D1)", 12),
    flag("PME(D2)", 13),
    flag("PME(D3hot)", 14),
    flag("PME(D3cold)", 15),
];

const PMCSR: &[F] = &[
    table("PowerState", 0x3, &["D0", "D1", "D2", "D3hot"]),
    flag("NoSoftRst", 3),
    flag("PME-Enable", 8),
    num("DSel", 0x1e00),
    num("DScale", 0x6000),
    flag("PME", 15),
];

const MSI_CONTROL: &[F] = &[
    flag("Enable", 0),
    fmt("Count", 0x70, |v| {
        (1u32 << ((v >> 4) & 7).min(5)).to_string()
    }),
    fmt("CountRequested", 0x0e, |v| {
        (1u32 << ((v >> 1) & 7).min(5)).to_string()
    }),
    flag("Maskable", 8),
    flag("64bit", 7),
];

const MSIX_CONTROL: &[F] = &[
    flag("Enable", 15),
    flag("Masked", 14),
    fmt("TabSize", 0x7ff, |v| ((v & 0x7ff) + 1).to_string()),
];

const EXP_CAPS: &[F] = &[
    num("Version", 0xf),
    fmt("Type", 0xf0, |v| {
        let t = ((v >> 4) & 0xf) as u8;
        match exp_type_name(t) {
            "Unknown type" => format!("Unknown type {t}"),
            n => n.to_string(),
        }
    }),
    flag("Slot", 8),
    num("IntMsgNum", 0x3e00),
];

const L0S_LAT: &[&str] = &[
    "<64ns",
    "<128ns",
    "<256ns",
    "<512ns",
    "<1us",
    "<2us",
    "<4us",
    "unlimited",
];
const L1_LAT: &[&str] = &[
    "<1us",
    "<2us",
    "<4us",
    "<8us",
    "<16us",
    "<32us",
    "<64us",
    "unlimited",
];

const DEVCAP: &[F] = &[
    fmt("MaxPayload", 0x7, |v| payload(v & 7)),
    fmt("PhantFunc", 0x18, |v| {
        ((1u32 << ((v >> 3) & 3)) - 1).to_string()
    }),
    flag("ExtTag", 5),
    table("L0sLatency", 0x1c0, L0S_LAT),
    table("L1Latency", 0xe00, L1_LAT),
    flag("AttnBtn", 12),
    flag("AttnInd", 13),
    flag("PwrInd", 14),
    flag("RBE", 15),
    fmt("SlotPowerLimit", 0x0ffc_0000, |v| {
        power_limit((v >> 18) & 0xff, (v >> 26) & 3)
    }),
    flag("FLReset", 28),
];

const DEVCTL: &[F] = &[
    flag("CorrErr", 0),
    flag("NonFatalErr", 1),
    flag("FatalErr", 2),
    flag("UnsupReq", 3),
    flag("RlxdOrd", 4),
    flag("ExtTag", 8),
    flag("PhantFunc", 9),
    flag("AuxPwr", 10),
    flag("NoSnoop", 11),
    flag("BrConfRtry/FLReset", 15),
    fmt("MaxPayload", 0xe0, |v| payload((v >> 5) & 7)),
    fmt("MaxReadReq", 0x7000, |v| payload((v >> 12) & 7)),
];

const DEVSTA: &[F] = &[
    flag("CorrErr", 0),
    flag("NonFatalErr", 1),
    flag("FatalErr", 2),
    flag("UnsupReq", 3),
    flag("AuxPwr", 4),
    flag("TransPend", 5),
];

const LNKCAP: &[F] = &[
    fmt("Speed", 0xf, |v| link_speed(v & 0xf)),
    fmt("Width", 0x3f0, |v| format!("x{}", (v >> 4) & 0x3f)),
    table("ASPM", 0xc00, &["not supported", "L0s", "L1", "L0s L1"]),
    table("L0sExitLatency", 0x7000, L0S_LAT),
    table("L1ExitLatency", 0x38000, L1_LAT),
    flag("ClockPM", 18),
    flag("Surprise", 19),
    flag("LLActRep", 20),
    flag("BwNot", 21),
    flag("ASPMOptComp", 22),
    num("Port", 0xff00_0000),
];

const LNKCTL: &[F] = &[
    table("ASPM", 0x3, &["Disabled", "L0s", "L1", "L0s L1"]),
    table("RCB", 0x8, &["64 bytes", "128 bytes"]),
    flag("Disabled", 4),
    flag("Retrain", 5),
    flag("CommClk", 6),
    flag("ExtSynch", 7),
    flag("ClockPM", 8),
    flag("AutWidDis", 9),
    flag("BWInt", 10),
    flag("AutBWInt", 11),
];

const LNKSTA: &[F] = &[
    fmt("Speed", 0xf, |v| link_speed(v & 0xf)),
    fmt("Width", 0x3f0, |v| format!("x{}", (v >> 4) & 0x3f)),
    flag("TrErr", 10),
    flag("Train", 11),
    flag("SlotClk", 12),
    flag("DLActive", 13),
    flag("BWMgmt", 14),
    flag("ABWMgmt", 15),
];

const SLTCAP: &[F] = &[
    flag("AttnBtn", 0),
    flag("PwrCtrl", 1),
    flag("MRL", 2),
    flag("AttnInd", 3),
    flag("PwrInd", 4),
    flag("HotPlug", 6),
    flag("Surprise", 5),
    fmt("PowerLimit", 0x1ff80, |v| {
        power_limit((v >> 7) & 0xff, (v >> 15) & 3)
    }),
    flag("Interlock", 17),
    flag("NoCompl", 18),
    num("Slot", 0xfff8_0000),
];

const INDICATOR: &[&str] = &["Unknown", "On", "Blink", "Off"];

const SLTCTL: &[F] = &[
    flag("AttnBtn", 0),
    flag("PwrFlt", 1),
    flag("MRL", 2),
    flag("PresDet", 3),
    flag("CmdCplt", 4),
    flag("HPIrq", 5),
    flag("LinkChg", 12),
    table("AttnInd", 0xc0, INDICATOR),
    table("PwrInd", 0x300, INDICATOR),
    flag("Power", 10),
    flag("Interlock", 11),
];

const SLTSTA: &[F] = &[
    flag("AttnBtn", 0),
    flag("PowerFlt", 1),
    flag("MRL", 5),
    flag("CmdCplt", 4),
    flag("PresDet", 6),
    flag("Interlock", 7),
    flag("MRLChanged", 2),
    flag("PresDetChanged", 3),
    flag("LinkStateChanged", 8),
];

const ROOTCTL: &[F] = &[
    flag("ErrCorrectable", 0),
    flag("ErrNon-Fatal", 1),
    flag("ErrFatal", 2),
    flag("PMEIntEna", 3),
    flag("CRSVisible", 4),
];

const DEVCAP2: &[F] = &[
    fmt("CmpltTimeoutRanges", 0xf, |v| {
        match v & 0xf {
            0 => "Not Supported",
            1 => "Range A",
            2 => "Range B",
            3 => "Range AB",
            6 => "Range BC",
            7 => "Range ABC",
            14 => "Range BCD",
            15 => "Range ABCD",
            _ => "Unknown",
        }
        .to_string()
    }),
    flag("TimeoutDis", 4),
    flag("ARIFwd", 5),
    flag("AtomicOpRouting", 6),
    flag("32bitAtomicComp", 7),
    flag("64bitAtomicComp", 8),
    flag("128bitCASComp", 9),
    flag("NROPrPrP", 10),
    flag("LTR", 11),
    num("TPHComp", 0x3000),
    num("LNSystemCLS", 0xc000),
    flag("10BitTagComp", 16),
    flag("10BitTagReq", 17),
    table(
        "OBFF",
        0xc_0000,
        &[
            "Not Supported",
            "Via message",
            "Via WAKE#",
            "Via message/WAKE#",
        ],
    ),
    flag("ExtFmt", 20),
    flag("EETLPPrefix", 21),
    num("MaxEETLPPrefixes", 0xc0_0000),
    num("EmergencyPowerReduction", 0x300_0000),
    flag("EmergencyPowerReductionInit", 26),
    flag("FRS", 31),
];

const DEVCTL2: &[F] = &[
    fmt("CmpltTimeout", 0xf, |v| completion_timeout(v & 0xf)),
    flag("TimeoutDis", 4),
    flag("ARIFwd", 5),
    flag("AtomicOpReqEn", 6),
    flag("AtomicOpEgressBlck", 7),
    flag("IDOReqEn", 8),
    flag("IDOCmpltEn", 9),
    flag("LTR", 10),
    flag("EmergencyPowerReductionReq", 11),
    flag("10BitTagReq", 12),
    table(
        "OBFF",
        0x6000,
        &["Disabled", "Via message A", "Via message B", "Via WAKE#"],
    ),
    flag("EETLPPrefixBlk", 15),
];

const LNKCAP2: &[F] = &[
    fmt("SupportedSpeeds", 0xfe, |v| {
        let vector = (v >> 1) & 0x7f;
        if vector & 0x60 != 0 {
            "RsvdP"
        } else if vector & 0x10 != 0 {
            "2.5-32GT/s"
        } else if vector & 0x08 != 0 {
            "2.5-16GT/s"
        } else if vector & 0x04 != 0 {
            "2.5-8GT/s"
        } else if vector & 0x02 != 0 {
            "2.5-5GT/s"
        } else if vector & 0x01 != 0 {
            "2.5GT/s"
        } else {
            "Unknown"
        }
        .to_string()
    }),
    flag("Crosslink", 8),
    flag("Retimer", 23),
    flag("2Retimers", 24),
    flag("DRS", 31),
];

const LNKCTL2: &[F] = &[
    fmt("TargetLinkSpeed", 0xf, |v| match v & 0xf {
        0 => "2.5GT/s".to_string(),
        s @ 1..=6 => link_speed(s),
        _ => "Unknown".to_string(),
    }),
    flag("EnterCompliance", 4),
    flag("SpeedDis", 5),
    table("SelectableDeemphasis", 0x40, &["-6dB", "-3.5dB"]),
    table(
        "TransmitMargin",
        0x380,
        &[
            "Normal Operating Range",
            "800-1200mV(full-swing)/400-700mV(half-swing)",
            "200-400mV(full-swing)/100-200mV(half-swing)",
            "200-400mV(full-swing)/100-200mV(half-swing)",
            "200-400mV(full-swing)/100-200mV(half-swing)",
            "200-400mV(full-swing)/100-200mV(half-swing)",
            "Unknown",
            "Unknown",
        ],
    ),
    flag("EnterModifiedCompliance", 10),
    flag("ComplianceSOS", 11),
    table(
        "ComplianceDeemphasis",
        0xf000,
        &[
            "-6dB de-emphasis, 0dB preshoot",
            "-3.5dB de-emphasis, 0dB preshoot",
            "-4.4dB de-emphasis, 0dB preshoot",
            "-2.5dB de-emphasis, 0dB preshoot",
            "0dB de-emphasis, 0dB preshoot",
            "0dB de-emphasis, 1.9dB preshoot",
            "0dB de-emphasis, 2.5dB preshoot",
            "-6.0dB de-emphasis, 3.5dB preshoot",
            "-3.5dB de-emphasis, 3.5dB preshoot",
            "0dB de-emphasis, 3.5dB preshoot",
            "Unknown",
            "Unknown",
            "Unknown",
            "Unknown",
            "Unknown",
            "Unknown",
        ],
    ),
];

const LNKSTA2: &[F] = &[
    table("CurrentDeemphasis", 0x1, &["-6dB", "-3.5dB"]),
    flag("EqualizationComplete", 1),
    flag("EqualizationPhase1", 2),
    flag("EqualizationPhase2", 3),
    flag("EqualizationPhase3", 4),
    flag("LinkEqualizationRequest", 5),
    flag("Retimer", 6),
    flag("2Retimers", 7),
    table(
        "CrosslinkRes",
        0x300,
        &[
            "unsupported",
            "Upstream Port",
            "Downstream Port",
            "incomplete",
        ],
    ),
    num("DownstreamComp", 0x7000),
    flag("DRS", 15),
];

const AER_UNCOR: &[F] = &[
    flag("DLP", 4),
    flag("SDES", 5),
    flag("TLP", 12),
    flag("FCP", 13),
    flag("CmpltTO", 14),
    flag("CmpltAbrt", 15),
    flag("UnxCmplt", 16),
    flag("RxOF", 17),
    flag("MalfTLP", 18),
    flag("ECRC", 19),
    flag("UnsupReq", 20),
    flag("ACSViol", 21),
    flag("UncorrIntErr", 22),
    flag("BlockedTLP", 23),
    flag("AtomicOpBlocked", 24),
    flag("TLPBlockedErr", 25),
    flag("PoisonTLPBlocked", 26),
    flag("DMWrReqBlocked", 27),
    flag("IDECheck", 28),
    flag("MisIDETLP", 29),
    flag("PCRC_CHECK", 30),
    flag("TLPXlatBlocked", 31),
];

const AER_COR: &[F] = &[
    flag("RxErr", 0),
    flag("BadTLP", 6),
    flag("BadDLLP", 7),
    flag("Rollover", 8),
    flag("Timeout", 12),
    flag("AdvNonFatalErr", 13),
    flag("CorrIntErr", 14),
    flag("HeaderOF", 15),
];

const AER_CAP: &[F] = &[
    num("FirstErrorPointer", 0x1f),
    flag("ECRCGenCap", 5),
    flag("ECRCGenEn", 6),
    flag("ECRCChkCap", 7),
    flag("ECRCChkEn", 8),
    flag("MultHdrRecCap", 9),
    flag("MultHdrRecEn", 10),
    flag("TLPPfxPres", 11),
    flag("HdrLogCap", 12),
];

const AER_ROOT_STATUS: &[F] = &[
    flag("CERcvd", 0),
    flag("MultCERcvd", 1),
    flag("UERcvd", 2),
    flag("MultUERcvd", 3),
    flag("FirstFatal", 4),
    flag("NonFatalMsg", 5),
    flag("FatalMsg", 6),
    num("IntMsgNum", 0xf800_0000),
];

const SRIOV_CTRL: &[F] = &[
    flag("VFEnable", 0),
    flag("VFMigration", 1),
    flag("VFMigrationInt", 2),
    flag("VFMSE", 3),
    flag("ARIHierarchy", 4),
    flag("VF10BitTagReq", 5),
];

const ACS_CAP: &[F] = &[
    flag("SrcValid", 0),
    flag("TransBlk", 1),
    flag("ReqRedir", 2),
    flag("CmpltRedir", 3),
    flag("UpstreamFwd", 4),
    flag("EgressCtrl", 5),
    flag("DirectTrans", 6),
    num("EgressCtrlVectorSize", 0xff00),
];

const ACS_CTRL: &[F] = &[
    flag("SrcValid", 0),
    flag("TransBlk", 1),
    flag("ReqRedir", 2),
    flag("CmpltRedir", 3),
    flag("UpstreamFwd", 4),
    flag("EgressCtrl", 5),
    flag("DirectTrans", 6),
];

const LTR: &[F] = &[
    num("Value", 0x3ff),
    table(
        "Scale",
        0x1c00,
        &[
            "x1ns",
            "x32ns",
            "x1024ns",
            "x32768ns",
            "x1048576ns",
            "x33554432ns",
            "reserved",
            "reserved",
        ],
    ),
    fmt("Latency", 0x1fff, |v| {
        let scale = (v >> 10) & 7;
        if scale > 5 {
            "reserved scale".to_string()
        } else {
            format!("{}ns", (v & 0x3ff) << (5 * scale))
        }
    }),
];

const L1SS_CAP: &[F] = &[
    flag("PCI-PM_L1.2", 0),
    flag("PCI-PM_L1.1", 1),
    flag("ASPM_L1.2", 2),
    flag("ASPM_L1.1", 3),
    flag("L1_PM_Substates", 4),
    fmt("PortCommonModeRestoreTime", 0xff00, |v| {
        format!("{}us", (v >> 8) & 0xff)
    }),
    fmt("PortTPowerOnTime", 0xfb_0000, |v| {
        pwron_us(((v >> 16) & 3) as u8, ((v >> 19) & 0x1f) as u32)
    }),
];

const L1SS_CTL1: &[F] = &[
    flag("PCI-PM_L1.2", 0),
    flag("PCI-PM_L1.1", 1),
    flag("ASPM_L1.2", 2),
    flag("ASPM_L1.1", 3),
    fmt("T_CommonMode", 0xff00, |v| format!("{}us", (v >> 8) & 0xff)),
    fmt("LTR1.2_Threshold", 0xe3ff_0000, |v| {
        let scale = (v >> 29) & 7;
        if scale > 5 {
            "reserved scale".to_string()
        } else {
            format!("{}ns", ((v >> 16) & 0x3ff) << (5 * scale))
        }
    }),
];

fn cache_line(v: u64) -> String {
    format!("{} bytes", (v & 0xff) * 4)
}

fn rom_addr(v: u64) -> String {
    format!("{:#x}", v & 0xffff_f800)
}

fn payload(code: u64) -> String {
    format!("{} bytes", 128u64 << (code & 7))
}

fn link_speed(s: u64) -> String {
    match s {
        1 => "2.5GT/s",
        2 => "5GT/s",
        3 => "8GT/s",
        4 => "16GT/s",
        5 => "32GT/s",
        6 => "64GT/s",
        _ => "unknown",
    }
    .to_string()
}

fn completion_timeout(v: u64) -> String {
    match v {
        0 => "50us to 50ms",
        1 => "50us to 100us",
        2 => "1ms to 10ms",
        5 => "16ms to 55ms",
        6 => "65ms to 210ms",
        9 => "260ms to 900ms",
        10 => "1s to 3.5s",
        13 => "4s to 13s",
        14 => "17s to 64s",
        _ => "Unknown",
    }
    .to_string()
}

/// A slot power limit as lspci prints it (`25W`, `>600W`).
fn power_limit(value: u64, scale: u64) -> String {
    if scale == 0 && value == 0xff {
        return ">600W".to_string();
    }
    let value = if scale == 0 && (0xf0..=0xfe).contains(&value) {
        250 + 25 * (value - 0xf0)
    } else {
        value
    };
    // Milliwatts keep the arithmetic exact.
    let mw = value * [1000u64, 100, 10, 1][scale as usize & 3];
    if mw % 1000 == 0 {
        format!("{}W", mw / 1000)
    } else {
        let s = format!("{}.{:03}", mw / 1000, mw % 1000);
        format!("{}W", s.trim_end_matches('0'))
    }
}

/// T_PowerOn from its scale (2us, 10us, 100us) and value.
fn pwron_us(scale: u8, value: u32) -> String {
    match scale {
        0 => format!("{}us", 2 * value),
        1 => format!("{}us", 10 * value),
        2 => format!("{}us", 100 * value),
        _ => "reserved scale".to_string(),
    }
}

fn page_sizes(v: u64) -> String {
    let v = v & 0xffff_ffff;
    if v == 0 {
        return "none".to_string();
    }
    let mut out = Vec::new();
    for bit in 0..32 {
        if v & (1 << bit) != 0 {
            let kib = 4u64 << bit;
            out.push(if kib >= 1024 * 1024 {
                format!("{}G", kib / (1024 * 1024))
            } else if kib >= 1024 {
                format!("{}M", kib / 1024)
            } else {
                format!("{kib}K")
            });
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put16(c: &mut [u8], off: usize, v: u16) {
        c[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(c: &mut [u8], off: usize, v: u32) {
        c[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// A 4 KiB PCIe endpoint: PM at 0x40 → MSI at 0x50 → PCIe at 0x70; AER at 0x100 →
    /// LTR at 0x140.
    fn endpoint() -> Vec<u8> {
        let mut c = vec![0u8; 4096];
        put16(&mut c, 0, 0x144d);
        put16(&mut c, 2, 0xa808);
        put16(&mut c, 4, 0x0406);
        put16(&mut c, 6, 0x0010);
        c[0x34] = 0x40;
        c[0x40] = 0x01;
        c[0x41] = 0x50;
        put16(&mut c, 0x42, 0x0603);
        put16(&mut c, 0x44, 0x0008);
        c[0x50] = 0x05;
        c[0x51] = 0x70;
        put16(&mut c, 0x52, 0x0080);
        c[0x70] = 0x10;
        c[0x71] = 0x00;
        put16(&mut c, 0x72, 0x0002);
        put16(&mut c, 0x78, 0x2050);
        put16(&mut c, 0x80, 0x0142);
        put32(&mut c, 0x100, 0x1402_0001);
        put32(&mut c, 0x140, 0x0001_0018);
        c
    }

    #[test]
    fn walks_a_healthy_endpoint() {
        let c = endpoint();
        let l = layout(&c);
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        let caps: Vec<(u16, u16, bool)> = l
            .caps
            .iter()
            .map(|c| (c.id, c.offset, c.extended))
            .collect();
        assert_eq!(
            caps,
            vec![
                (CAP_PM, 0x40, false),
                (CAP_MSI, 0x50, false),
                (CAP_EXP, 0x70, false),
                (ECAP_AER, 0x100, true),
                (ECAP_LTR, 0x140, true)
            ]
        );
        // Sorted and disjoint.
        for pair in l.regs.windows(2) {
            assert!(pair[0].offset + pair[0].width as u16 <= pair[1].offset);
        }
        let devctl = l.reg("pcie.devctl").unwrap();
        assert_eq!((devctl.offset, devctl.width), (0x78, 2));
        assert_eq!(devctl.group, "Express (Endpoint) @0x70");
        assert_eq!(l.reg_at(0x79).unwrap().key, "pcie.devctl");
        assert_eq!(l.reg("pcie.lnkctl2").unwrap().offset, 0xa0);
        assert!(l.reg("pcie.sltctl").is_none(), "no slot on an endpoint");
        assert!(l.reg("pcie.rootctl").is_none());
        assert!(
            l.reg("aer.root_command").is_none(),
            "root registers only on root ports"
        );
        assert_eq!(l.reg("msi.data").unwrap().offset, 0x5c, "64-bit MSI");
        assert!(l.reg("msi.mask").is_none());
        assert_eq!(
            l.reg("header.status").unwrap().volatile,
            Some(Volatility::Counter)
        );
        assert_eq!(l.reg("pcie.devctl").unwrap().volatile, None);
        assert_eq!(
            l.reg("aer.cor_status").unwrap().volatile,
            Some(Volatility::Counter)
        );
        assert_eq!(l.reg("ltr.max_snoop").unwrap().group, "LTR @0x140");
        assert_eq!(l.cap_at(0x7a).unwrap().id, CAP_EXP);
    }

    fn field(l: &Layout, c: &[u8], key: &str, name: &str) -> Field {
        let r = l.reg(key).unwrap();
        let v = reg_value(r, c).unwrap();
        decode_reg(r, v)
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{key} has no field {name}"))
    }

    #[test]
    fn decodes_fields_like_lspci() {
        let mut c = endpoint();
        let l = layout(&c);
        let f = field(&l, &c, "pcie.devctl", "MaxPayload");
        assert_eq!((f.value, f.meaning.as_deref()), (2, Some("512 bytes")));
        let f = field(&l, &c, "pcie.devctl", "MaxReadReq");
        assert_eq!(f.meaning.as_deref(), Some("512 bytes"));
        assert_eq!(
            field(&l, &c, "pcie.lnkctl", "ASPM").meaning.as_deref(),
            Some("L1")
        );
        assert_eq!(field(&l, &c, "pcie.lnkctl", "ClockPM").value, 1);
        assert_eq!(field(&l, &c, "pcie.lnkctl", "CommClk").value, 1);
        assert_eq!(
            field(&l, &c, "pm.pmcsr", "PowerState").meaning.as_deref(),
            Some("D0")
        );
        assert_eq!(field(&l, &c, "pm.pmcsr", "NoSoftRst").value, 1);
        assert_eq!(field(&l, &c, "header.command", "DisINTx").value, 1);
        assert_eq!(field(&l, &c, "header.command", "BusMaster").value, 1);
        assert_eq!(field(&l, &c, "header.command", "I/O").value, 0);
        // D3hot, MSI enabled with 4 of 8 vectors.
        put16(&mut c, 0x44, 0x000b);
        put16(&mut c, 0x52, 0x00a7);
        let l = layout(&c);
        assert_eq!(
            field(&l, &c, "pm.pmcsr", "PowerState").meaning.as_deref(),
            Some("D3hot")
        );
        assert_eq!(field(&l, &c, "msi.control", "Enable").value, 1);
        assert_eq!(
            field(&l, &c, "msi.control", "Count").meaning.as_deref(),
            Some("4")
        );
        assert_eq!(
            field(&l, &c, "msi.control", "CountRequested")
                .meaning
                .as_deref(),
            Some("8")
        );
        // LnkCtl2 target speed and LTR.
        put16(&mut c, 0xa0, 0x0003);
        put16(&mut c, 0x144, 0x1003);
        let l = layout(&c);
        assert_eq!(
            field(&l, &c, "pcie.lnkctl2", "TargetLinkSpeed")
                .meaning
                .as_deref(),
            Some("8GT/s")
        );
        assert_eq!(
            field(&l, &c, "ltr.max_snoop", "Latency").meaning.as_deref(),
            Some("3145728ns")
        );
    }

    #[test]
    fn msix_table_size_is_n_plus_one() {
        let r = PciReg {
            offset: 0x72,
            width: 2,
            key: "msix.control",
            name: "MSI-X Control".into(),
            group: "MSI-X @0x70".into(),
            volatile: None,
        };
        let f = decode_reg(&r, 0xc01f);
        let get = |n: &str| f.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(get("Enable").value, 1);
        assert_eq!(get("Masked").value, 1);
        assert_eq!(get("TabSize").meaning.as_deref(), Some("32"));
    }

    #[test]
    fn l1ss_and_power_limit_formats() {
        let r = PciReg {
            offset: 0x208,
            width: 4,
            key: "l1ss.ctl1",
            name: "L1SubCtl1".into(),
            group: "L1SS @0x200".into(),
            volatile: None,
        };
        // LTR1.2_Threshold 99 * 1024ns, T_CommonMode 45us, ASPM L1.2 + L1.1.
        let f = decode_reg(&r, (2u64 << 29) | (99 << 16) | (45 << 8) | 0xc);
        let get = |n: &str| f.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(get("LTR1.2_Threshold").meaning.as_deref(), Some("101376ns"));
        assert_eq!(get("T_CommonMode").meaning.as_deref(), Some("45us"));
        assert_eq!(get("ASPM_L1.2").value, 1);
        assert_eq!(get("PCI-PM_L1.2").value, 0);
        assert_eq!(power_limit(25, 0), "25W");
        assert_eq!(power_limit(75, 1), "7.5W");
        assert_eq!(power_limit(0xff, 0), ">600W");
        assert_eq!(power_limit(0xf1, 0), "275W");
        assert_eq!(pwron_us(1, 5), "50us");
        assert_eq!(page_sizes(0x553), "4K,8K,64K,256K,1M,4M");
    }

    #[test]
    fn cap_pointer_loop_is_reported() {
        let mut c = endpoint();
        c[0x71] = 0x40; // PCIe → PM again
        let l = layout(&c);
        assert_eq!(l.caps.iter().filter(|c| !c.extended).count(), 3);
        assert!(
            l.problems.iter().any(|p| p.contains("loops")),
            "{:?}",
            l.problems
        );
    }

    #[test]
    fn self_loop_and_low_bits_are_handled() {
        let mut c = endpoint();
        c[0x41] = 0x43; // low two bits ignored: 0x40 points to itself
        let l = layout(&c);
        assert_eq!(l.caps.iter().filter(|c| !c.extended).count(), 1);
        assert!(l.problems.iter().any(|p| p.contains("loops")));
        // A misaligned first pointer is aligned down, as the specification says.
        let mut c = endpoint();
        c[0x34] = 0x42;
        let l = layout(&c);
        assert_eq!(l.caps.first().map(|c| c.offset), Some(0x40));
        assert!(l.problems.is_empty(), "{:?}", l.problems);
    }

    #[test]
    fn pointers_out_of_range_are_reported() {
        let mut c = endpoint();
        c[0x51] = 0x20; // into the header
        let l = layout(&c);
        assert!(l.problems.iter().any(|p| p.contains("into the header")));
        assert!(l.caps.iter().all(|c| c.id != CAP_EXP || c.extended));
        // Extended space is only walked for PCIe/PCI-X devices.
        assert!(!l.caps.iter().any(|c| c.extended));

        let mut c = endpoint();
        c.truncate(0x60);
        c[0x51] = 0x70;
        let l = layout(&c);
        assert!(
            l.problems.iter().any(|p| p.contains("past the end")),
            "{:?}",
            l.problems
        );
    }

    #[test]
    fn a_capability_running_past_the_end_is_cut() {
        let mut c = endpoint();
        // PCIe capability at 0xf0 would reach 0x12c: its tail is not standard space.
        c[0x51] = 0xf0;
        c[0xf0] = 0x10;
        c[0xf1] = 0x00;
        put16(&mut c, 0xf2, 0x0002);
        let l = layout(&c);
        assert!(l
            .regs
            .iter()
            .all(|r| r.offset < 0x100 || r.group.starts_with("AER") || r.group.starts_with("LTR")));
        assert!(
            l.problems.iter().any(|p| p.contains("runs past the end")),
            "{:?}",
            l.problems
        );
        assert!(l.reg("pcie.devctl").is_some());
        assert!(l.reg("pcie.lnkctl2").is_none());
    }

    #[test]
    fn truncated_config_is_decoded_as_far_as_it_goes() {
        let c = endpoint();
        let l = layout(&c[..64]);
        assert!(l.reg("header.command").is_some());
        assert!(l.reg("header.interrupt_pin").is_some());
        assert!(
            l.problems.iter().any(|p| p.contains("past the end")),
            "{:?}",
            l.problems
        );
        let l = layout(&c[..40]);
        assert!(l.problems.iter().any(|p| p.contains("only 40 bytes")));
        assert!(l.reg("header.command").is_some());
        assert!(l.reg("header.interrupt_pin").is_none());
        let l = layout(&[]);
        assert!(l.regs.is_empty());
        assert!(!l.problems.is_empty());
        for n in 0..c.len().min(300) {
            let _ = layout(&c[..n]);
        }
    }

    #[test]
    fn ext_cap_loops_and_bad_pointers_are_reported() {
        let mut c = endpoint();
        put32(&mut c, 0x140, 0x1001_0018); // LTR → AER again
        let l = layout(&c);
        assert_eq!(l.caps.iter().filter(|c| c.extended).count(), 2);
        assert!(
            l.problems.iter().any(|p| p.contains("loops")),
            "{:?}",
            l.problems
        );

        let mut c = endpoint();
        put32(&mut c, 0x140, 0x0801_0018); // points below 0x100
        let l = layout(&c);
        assert!(l.problems.iter().any(|p| p.contains("below 0x100")));

        let mut c = endpoint();
        put32(&mut c, 0x140, 0x2001_0018); // to an empty header
        let l = layout(&c);
        assert!(l.problems.iter().any(|p| p.contains("empty header")));

        let mut c = endpoint();
        put32(&mut c, 0x140, 0x1431_0018); // low bits of the pointer are ignored: 0x140
        let l = layout(&c);
        assert!(l.problems.iter().any(|p| p.contains("loops")));

        // A config that stops at 0x102 cannot hold an extended header.
        let c = endpoint();
        let l = layout(&c[..0x102]);
        assert!(l.problems.iter().any(|p| p.contains("past the end")));
    }

    #[test]
    fn all_ones_means_the_device_is_gone() {
        for len in [64, 256, 4096] {
            let c = vec![0xffu8; len];
            let l = layout(&c);
            assert!(l.caps.is_empty());
            assert!(
                l.problems.iter().any(|p| p.contains("all ones")),
                "{:?}",
                l.problems
            );
            assert!(l.reg("header.command").is_some());
        }
    }

    #[test]
    fn id_0xff_breaks_the_chain() {
        let mut c = endpoint();
        c[0x50] = 0xff;
        let l = layout(&c);
        assert!(l.problems.iter().any(|p| p.contains("broken")));
        assert_eq!(l.caps.len(), 1);
    }

    #[test]
    fn long_chains_stop_at_48() {
        let mut c = vec![0u8; 256];
        put16(&mut c, 6, 0x10);
        c[0x34] = 0x40;
        // 0x40, 0x44, … 0xfc: 48 vendor capabilities pointing at each other, and the last
        // one back to 0x40 would loop; make the list 48 long and then some.
        for (i, off) in (0x40..0x100).step_by(4).enumerate() {
            c[off] = 0x09;
            c[off + 1] = if off + 4 < 0x100 { (off + 4) as u8 } else { 0 };
            let _ = i;
        }
        let l = layout(&c);
        assert_eq!(l.caps.len(), 48);
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        // Make it loop: the walk stops at the 48 limit or the loop, whichever comes first.
        c[0xfd] = 0x40;
        let l = layout(&c);
        assert!(l.caps.len() <= MAX_CAPS);
        assert!(!l.problems.is_empty());
    }

    #[test]
    fn root_port_has_slot_root_and_aer_root_registers() {
        let mut c = vec![0u8; 4096];
        put16(&mut c, 0x06, 0x10);
        put16(&mut c, 0x0a, 0x0604);
        c[0x0e] = 0x01;
        c[0x34] = 0x40;
        c[0x40] = 0x10;
        put16(&mut c, 0x42, 0x0142); // v2 root port, slot
        put32(&mut c, 0x100, 0x0001_0001);
        let l = layout(&c);
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        for k in [
            "pcie.sltctl",
            "pcie.rootctl",
            "pcie.rootsta",
            "aer.root_command",
            "header.bridge_control",
            "header.secondary_status",
            "header.bus_numbers",
        ] {
            assert!(l.reg(k).is_some(), "{k}");
        }
        assert_eq!(
            l.reg("pcie.devctl").unwrap().group,
            "Express (Root Port) @0x40"
        );
        // Version 1: no *2 registers.
        put16(&mut c, 0x42, 0x0141);
        let l = layout(&c);
        assert!(l.reg("pcie.devctl2").is_none());
        assert!(l.reg("pcie.lnkctl2").is_none());
        // RC integrated endpoint: no link registers.
        put16(&mut c, 0x42, 0x0092);
        c[0x0e] = 0;
        let l = layout(&c);
        assert!(l.reg("pcie.lnkctl").is_none());
        assert!(l.reg("pcie.lnkctl2").is_none());
        assert!(l.reg("pcie.devctl2").is_some());
    }

    #[test]
    fn the_upper_half_of_a_64_bit_bar_is_named() {
        let mut c = endpoint();
        put32(&mut c, 0x10, 0x7a00_000c); // 64-bit prefetchable
        put32(&mut c, 0x14, 0x0000_0040);
        let l = layout(&c);
        let hi = l.reg_at(0x14).unwrap();
        assert_eq!(hi.name, "BAR1 (BAR0 high)");
        let f = decode_reg(hi, 0x40);
        assert_eq!(
            (f[0].name.as_str(), f[0].meaning.as_deref()),
            ("AddressHigh", Some("0x40"))
        );
        assert_eq!(l.reg_at(0x18).unwrap().name, "BAR2");
        let f = decode_reg(l.reg_at(0x10).unwrap(), 0x7a00_000c);
        assert!(f
            .iter()
            .any(|f| f.name == "Type" && f.meaning.as_deref() == Some("64-bit")));
    }

    #[test]
    fn class_and_header_type_must_agree() {
        let mut c = endpoint();
        put16(&mut c, 0x0a, 0x0604); // a bridge class with a type 0 header
        let l = layout(&c);
        assert!(
            l.problems.iter().any(|p| p.contains("header type 00")),
            "{:?}",
            l.problems
        );
    }

    #[test]
    fn overlapping_capabilities_keep_disjoint_registers() {
        let mut c = endpoint();
        // MSI-X placed inside the PCIe capability.
        c[0x71] = 0x80;
        c[0x80] = 0x11;
        c[0x81] = 0x00;
        let l = layout(&c);
        for pair in l.regs.windows(2) {
            assert!(pair[0].offset + pair[0].width as u16 <= pair[1].offset);
        }
        assert!(l.problems.iter().any(|p| p.contains("overlaps")));
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift generator: deterministic garbage.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..300 {
            let len = [64usize, 256, 4096][round % 3];
            let mut c = vec![0u8; len];
            for b in c.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = s as u8;
            }
            c[6] |= 0x10;
            c[0x34] = 0x40 + (s as u8 & 0xbc);
            let l = layout(&c);
            for r in &l.regs {
                let v = reg_value(r, &c).unwrap();
                let _ = decode_reg(r, v);
            }
        }
    }
}
