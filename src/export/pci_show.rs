//! One PCI device as text, in the spirit of `lspci -vvv`: the identity line with pci.ids
//! names, the bound driver, then the header and every capability with its registers
//! decoded into fields (`Name+`, `Name-`, `Name=value`), and whatever the config-space
//! walk could not make sense of. The output is plain ASCII, at most 80 columns wide, and
//! every string that comes from outside (driver names, pci.ids names) is made inert.

use std::fmt::Write as _;

use crate::decode::pci::{self, Capability, Layout, PciReg, CAP_EXP, CAP_PM};
use crate::decode::Field;
use crate::pciids;
use crate::sanitize::inert;
use crate::snapshot::{Bdf, PciDevice};

const WIDTH: usize = 80;

/// The text block for `dev` at `bdf`, ending with a newline.
pub fn render_device(bdf: Bdf, dev: &PciDevice) -> String {
    let mut out = String::with_capacity(4096);
    let layout = pci::layout(&dev.config);
    identity(&mut out, bdf, dev);
    if let Some(drv) = &dev.driver {
        let _ = writeln!(out, "    Kernel driver in use: {}", ascii(&inert(drv)));
    }
    let _ = write!(out, "    Config space: {} bytes", dev.config.len());
    match &dev.config_note {
        Some(note) => {
            out.push_str(" (");
            out.push_str(&ascii(&inert(note)));
            out.push_str(")\n");
        }
        None => out.push('\n'),
    }
    if dev.vanished {
        out.push_str("    The device vanished while it was being read.\n");
    }

    // Registers by the structure that holds them.
    let mut header: Vec<&PciReg> = Vec::new();
    let mut per_cap: Vec<Vec<&PciReg>> = vec![Vec::new(); layout.caps.len()];
    for reg in &layout.regs {
        match owning_cap(&layout, reg.offset) {
            Some(i) => {
                if let Some(v) = per_cap.get_mut(i) {
                    v.push(reg);
                }
            }
            None => header.push(reg),
        }
    }
    if !header.is_empty() {
        out.push_str("    Header:\n");
        for reg in header {
            if matches!(reg.key, "header.ids" | "header.class" | "header.cap_ptr") {
                continue;
            }
            register(&mut out, reg, &dev.config);
        }
    }
    for (cap, regs) in layout.caps.iter().zip(per_cap) {
        let _ = writeln!(
            out,
            "    Capabilities: {}",
            cap_title(cap, &layout, &dev.config)
        );
        for reg in regs {
            register(&mut out, reg, &dev.config);
        }
    }
    if !layout.problems.is_empty() {
        out.push_str("    Problems:\n");
        for p in &layout.problems {
            let mut lines = Lines::new(&mut out, 8, 12);
            lines.words(p);
            lines.end();
        }
    }
    out
}

/// `0000:01:00.0 Non-Volatile memory controller [0108]: Samsung … [144d:a808] (rev 00)`
/// and the subsystem line.
fn identity(out: &mut String, bdf: Bdf, dev: &PciDevice) {
    let class = dev.class;
    let class_label = match pciids::class_name(class) {
        Some(n) => format!("{} [{:04x}]", n, class >> 8),
        None => format!("Class [{:04x}]", class >> 8),
    };
    let vendor = pciids::vendor_name(dev.vendor).unwrap_or("Unknown vendor");
    let device = match pciids::device_name(dev.vendor, dev.device) {
        Some(n) => n.to_string(),
        None => format!("Device {:04x}", dev.device),
    };
    let mut lines = Lines::new(out, 0, 8);
    let mut w = String::new();
    let _ = write!(w, "{bdf}");
    lines.word(&w);
    lines.words(&ascii(&format!("{class_label}:")));
    lines.words(&ascii(vendor));
    lines.words(&ascii(&device));
    w.clear();
    let _ = write!(w, "[{:04x}:{:04x}]", dev.vendor, dev.device);
    lines.word(&w);
    w.clear();
    let _ = write!(w, "(rev {:02x})", dev.revision);
    lines.word(&w);
    if class & 0xff != 0 {
        w.clear();
        match pciids::prog_if_name(class) {
            Some(n) => {
                let _ = write!(w, "(prog-if {:02x} [{}])", class & 0xff, ascii(n));
            }
            None => {
                let _ = write!(w, "(prog-if {:02x})", class & 0xff);
            }
        }
        lines.word(&w);
    }
    lines.end();
    if let (Some(sv), Some(sd)) = (dev.subsystem_vendor, dev.subsystem_device) {
        if sv != 0 || sd != 0 {
            let name = match pciids::subsystem_name(dev.vendor, dev.device, sv, sd) {
                Some(n) => n.to_string(),
                None => match pciids::vendor_name(sv) {
                    Some(v) => format!("{v} Device {sd:04x}"),
                    None => format!("Device {sd:04x}"),
                },
            };
            let mut lines = Lines::new(out, 4, 8);
            lines.word("Subsystem:");
            lines.words(&ascii(&name));
            lines.word(&format!("[{sv:04x}:{sd:04x}]"));
            lines.end();
        }
    }
}

/// Index of the capability whose structure holds `offset`.
fn owning_cap(layout: &Layout, offset: u16) -> Option<usize> {
    let extended = offset >= 0x100;
    layout
        .caps
        .iter()
        .enumerate()
        .filter(|(_, c)| c.extended == extended && c.offset <= offset)
        .max_by_key(|(_, c)| c.offset)
        .map(|(i, _)| i)
}

/// `[40] Power Management version 3`, `[70] Express (v2) Endpoint, MSI 00`,
/// `[100 v2] Advanced Error Reporting`.
fn cap_title(cap: &Capability, layout: &Layout, config: &[u8]) -> String {
    let at = cap.offset as usize;
    let word = |off: usize| -> u64 {
        config
            .get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
            .unwrap_or(0)
    };
    if cap.extended {
        let version = config.get(at + 2).map(|b| b & 0xf).unwrap_or(0);
        let name = match cap.name.as_str() {
            "Extended Capability" => format!("Extended Capability ID {:#04x}", cap.id),
            n => n.to_string(),
        };
        return format!("[{at:03x} v{version}] {name}");
    }
    let name = match cap.id {
        CAP_PM => format!("Power Management version {}", word(at + 2) & 0x7),
        CAP_EXP => {
            let flags = word(at + 2);
            let ty = ((flags >> 4) & 0xf) as u8;
            let mut s = format!("Express (v{}) ", flags & 0xf);
            match pci::exp_type_name(ty) {
                "Unknown type" => {
                    let _ = write!(s, "Unknown type {ty}");
                }
                n => s.push_str(n),
            }
            if matches!(
                ty,
                pci::EXP_TYPE_ROOT_PORT | pci::EXP_TYPE_DOWNSTREAM | pci::EXP_TYPE_PCIE_BRIDGE
            ) {
                let _ = write!(s, " (Slot{})", if flags & 0x100 != 0 { '+' } else { '-' });
            }
            let _ = write!(s, ", MSI {:02x}", (flags >> 9) & 0x1f);
            s
        }
        pci::CAP_SSVID => {
            let (sv, sd) = (word(at + 4) as u16, word(at + 6) as u16);
            match pciids::vendor_name(sv) {
                Some(v) => format!("Subsystem: {} [{sv:04x}:{sd:04x}]", ascii(v)),
                None => format!("Subsystem: [{sv:04x}:{sd:04x}]"),
            }
        }
        _ => match cap.name.as_str() {
            "Capability" => format!("Capability ID {:#04x}", cap.id),
            n => n.to_string(),
        },
    };
    let _ = layout;
    format!("[{at:02x}] {name}")
}

/// One register: `Name: Field+ Field- Field=value`, wrapped at 80 columns. Words are
/// written into one scratch string: a thousand devices have a hundred thousand of them.
fn register(out: &mut String, reg: &PciReg, config: &[u8]) {
    let Some(value) = pci::reg_value(reg, config) else {
        return;
    };
    let fields = pci::decode_reg(reg, value);
    let mut lines = Lines::new(out, 8, 12);
    let mut w = String::with_capacity(64);
    w.push_str(&reg.name);
    w.push(':');
    lines.word(&w);
    w.clear();
    if fields.is_empty() {
        let _ = write!(w, "{:#0width$x}", value, width = 2 + 2 * reg.width as usize);
        lines.word(&w);
    } else if let [only] = fields.as_slice() {
        // A register that is one number: `Cache Line Size: 64 bytes`, `NumVFs: 4`.
        field_text(&mut w, only);
        match w.split_once('=') {
            Some((_, v)) => lines.word(v),
            None => lines.word(&w),
        }
    } else {
        for f in &fields {
            w.clear();
            field_text(&mut w, f);
            lines.word(&w);
        }
    }
    lines.end();
}

/// `Name+`, `Name-`, `Name=meaning`, `Name=5` or `Name=0x1f`, appended to `o`.
fn field_text(o: &mut String, f: &Field) {
    o.push_str(&f.name);
    match &f.meaning {
        Some(m) => {
            o.push('=');
            push_ascii(o, m);
        }
        None if f.mask.count_ones() == 1 => o.push(if f.value != 0 { '+' } else { '-' }),
        None if f.value < 0x10 => {
            let _ = write!(o, "={}", f.value);
        }
        None => {
            let _ = write!(o, "={:#x}", f.value);
        }
    }
}

/// Words laid out in lines of at most 80 columns: the first line indented by `first`, the
/// next ones by `rest`. A single word longer than a line stands alone; empty words are
/// skipped.
struct Lines<'a> {
    out: &'a mut String,
    col: usize,
    line_start: bool,
    indent: usize,
    rest: usize,
}

impl<'a> Lines<'a> {
    fn new(out: &'a mut String, first: usize, rest: usize) -> Self {
        Lines {
            out,
            col: 0,
            line_start: true,
            indent: first,
            rest,
        }
    }

    fn word(&mut self, w: &str) {
        if w.is_empty() {
            return;
        }
        if !self.line_start && self.col + 1 + w.len() > WIDTH {
            self.out.push('\n');
            self.line_start = true;
            self.indent = self.rest;
        }
        if self.line_start {
            self.out.extend(std::iter::repeat_n(' ', self.indent));
            self.col = self.indent;
            self.line_start = false;
        } else {
            self.out.push(' ');
            self.col += 1;
        }
        self.out.push_str(w);
        self.col += w.len();
    }

    /// The words of `text`, split at single spaces.
    fn words(&mut self, text: &str) {
        for w in text.split(' ') {
            self.word(w);
        }
    }

    fn end(self) {
        if !self.line_start {
            self.out.push('\n');
        }
    }
}

/// `s` with everything outside printable ASCII written as an escape.
fn ascii(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    push_ascii(&mut o, s);
    o
}

/// [`ascii`], appended to `o`.
fn push_ascii(o: &mut String, s: &str) {
    for c in s.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            o.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(o, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(o, "\\u{{{:x}}}", c as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::pci_configs;
    use crate::fixture::PciIds;

    fn device(config: Vec<u8>, driver: Option<&str>) -> PciDevice {
        let ids = PciIds::from_config(&config);
        PciDevice {
            vendor: ids.vendor,
            device: ids.device,
            class: ids.class,
            revision: ids.revision,
            subsystem_vendor: Some(ids.subsystem_vendor),
            subsystem_device: Some(ids.subsystem_device),
            driver: driver.map(str::to_string),
            config,
            config_note: None,
            vanished: false,
        }
    }

    fn bdf(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    #[test]
    fn renders_an_nvme_drive_like_lspci() {
        let mut config = pci_configs::nvme();
        pci_configs::set_power_state(&mut config, 3);
        let text = render_device(bdf("01:00.0"), &device(config, Some("nvme")));
        assert!(text.starts_with(
            "0000:01:00.0 Non-Volatile memory controller [0108]: Samsung Electronics Co Ltd"
        ));
        for needle in [
            "[144d:a808] (rev 00)",
            "(prog-if 02 [NVM Express])",
            "Subsystem: SSD 970 EVO/PRO [144d:a801]",
            "Kernel driver in use: nvme",
            "Config space: 4096 bytes",
            "Capabilities: [40] Power Management version 3",
            "PMCSR: PowerState=D3hot NoSoftRst+",
            "Capabilities: [70] Express (v2) Endpoint, MSI 00",
            "MaxPayload=256 bytes",
            "MaxReadReq=512 bytes",
            "LnkCtl: ASPM=L1 RCB=64 bytes Disabled- Retrain- CommClk+",
            "Capabilities: [b0] MSI-X",
            "MSI-X Control: Enable+ Masked- TabSize=33",
            "Capabilities: [100 v2] Advanced Error Reporting",
            "Capabilities: [190 v1] L1 PM Substates",
            "LTR1.2_Threshold=101376ns",
            "Command: I/O- Mem+ BusMaster+",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        for line in text.lines() {
            assert!(line.len() <= 80, "too long: {line:?}");
            assert!(line.is_ascii());
        }
        assert!(!text.contains("Problems"));
    }

    #[test]
    fn driver_names_are_inert_and_problems_shown() {
        let mut config = pci_configs::xhci();
        config[0x71] = 0x70; // PM points to itself
        let text = render_device(
            bdf("00:14.0"),
            &device(config, Some("evil\x1b]0;owned\x07\u{202e}")),
        );
        assert!(text.contains("Kernel driver in use: evil\\x1b]0;owned\\x07\\u{202e}"));
        assert!(!text.contains('\x1b'));
        assert!(text.contains("Problems:"));
        assert!(text.contains("loops"));
        assert!(text.is_ascii());
    }

    #[test]
    fn every_laptop_device_renders() {
        for (b, config, driver) in pci_configs::laptop() {
            let text = render_device(b, &device(config, driver));
            assert!(text.starts_with(&b.to_string()));
            assert!(
                text.lines().all(|l| l.len() <= 80 && l.is_ascii()),
                "{text}"
            );
            assert!(!text.contains("Problems"), "{text}");
        }
        let short = render_device(
            bdf("00:1f.4"),
            &device(pci_configs::nvme()[..64].to_vec(), None),
        );
        assert!(short.contains("Config space: 64 bytes"));
        assert!(short.contains("Problems:"));
    }
}
