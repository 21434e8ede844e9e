//! lspci hex dumps → the `pci` section of a snapshot.
//!
//! Accepted (the format `lspci -F` reads, made lenient where dumps in the wild differ):
//!
//! - a device line at the start of a line: `00:1f.2 SATA controller [0106]: Intel … [8086:3b29]
//!   (rev 06)`, optionally with a domain (`0000:00:1f.2 …`); the rest of the line may be
//!   anything (names, `-n` ids, `Class 0604: Device 8086:3408`) or nothing;
//! - the `-v…-vvv` lines that follow, indented (ignored, except `Kernel driver in use: NAME`,
//!   kept as the bound driver);
//! - hex rows `XX: b0 b1 …` (an offset of 2 to 8 hex digits, then bytes of two hex digits);
//!   lspci prints 16 bytes a row and 64 (`-x`), 256 (`-xxx`) or 4096 (`-xxxx`) bytes a
//!   device;
//! - devices separated by blank lines.
//!
//! The bytes are kept exactly as dumped (a device that aliases its 4 KiB space keeps the
//! repeats). Vendor, device, class, revision and subsystem ids come from the bytes; the ids,
//! class, `(rev xx)` and `(prog-if xx)` printed on the device line are checked against them,
//! with a warning on disagreement. Bytes a dump skips read as `ff` (as in `lspci -F`), with
//! a warning; rows past 4 KiB, malformed rows, repeated devices and devices without rows
//! are warned about and left out; more than [`MAX_DEVICES`] devices are refused past the
//! limit.
//!
//! [`write_lspci`] writes a PCI section back in the format `lspci -F` reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::sanitize::inert;
use crate::snapshot::{Bdf, PciDevice, PciSection};

use super::{body, excerpt, finish, new_snapshot, ImportError, Imported, Warnings};

/// The importer's name in `meta.origin`.
pub const IMPORTER: &str = "lspci";

/// Devices imported at most from one dump (PCI has at most 65536 functions per domain; a
/// large server has about a thousand).
pub const MAX_DEVICES: usize = 16_384;

/// Config space is at most 4 KiB.
pub const CONFIG_MAX: usize = 4096;

/// Whether `text` has the shape of an lspci dump (a device line at the start of a line).
pub fn looks_like(text: &str) -> bool {
    body(text).lines().any(|l| device_line(l).is_some())
}

/// Parse an lspci hex dump; `file` is recorded as the origin.
pub fn parse_lspci(text: &str, file: &str) -> Result<Imported, ImportError> {
    parse_lspci_limited(text, file, MAX_DEVICES)
}

/// [`parse_lspci`] importing at most `max_devices` devices.
pub(crate) fn parse_lspci_limited(
    text: &str,
    file: &str,
    max_devices: usize,
) -> Result<Imported, ImportError> {
    let text = body(text);
    let mut w = Warnings::default();
    let mut devices: BTreeMap<Bdf, PciDevice> = BTreeMap::new();
    let mut cur: Option<Builder> = None;
    let mut started = 0usize;
    let mut stray: Option<(usize, usize)> = None; // first line, count

    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            if let Some(b) = cur.take() {
                b.finish(&mut devices, &mut w);
            }
            continue;
        }
        if let Some((bdf, rest)) = device_line(line) {
            if let Some(b) = cur.take() {
                b.finish(&mut devices, &mut w);
            }
            if started >= max_devices {
                w.always(
                    n,
                    format!(
                        "more than {max_devices} devices: the rest of the file was not imported"
                    ),
                );
                break;
            }
            started += 1;
            cur = Some(Builder::new(bdf, rest, n));
            continue;
        }
        if let Some((offset, rest)) = row_start(line) {
            match cur.as_mut() {
                Some(b) => b.row(offset, rest, n, &mut w),
                None => {
                    let s = stray.get_or_insert((n, 0));
                    s.1 += 1;
                }
            }
            continue;
        }
        if let Some(b) = cur.as_mut() {
            if let Some(name) = line.trim_start().strip_prefix("Kernel driver in use:") {
                b.driver(name.trim(), n, &mut w);
            }
        }
    }
    if let Some(b) = cur.take() {
        b.finish(&mut devices, &mut w);
    }
    if let Some((line, count)) = stray {
        w.at(
            line,
            format!("{count} hex row(s) outside any device (after a blank line?): ignored"),
        );
    }
    if started == 0 {
        return Err(ImportError::new(
            "no PCI device found: expected a device line such as `00:1f.2 SATA controller \
             [0106]: …` followed by hex rows such as `00: 86 80 29 3b …` (lspci -xxx or \
             -xxxx)",
        ));
    }
    if devices.is_empty() {
        return Err(ImportError::new(
            "no device has config bytes: the dump was made without -x; use `lspci -xxx` \
             (or `lspci -xxxx` as root for the 4 KiB extended space)",
        ));
    }
    let mut snap = new_snapshot(IMPORTER, file);
    snap.pci = Some(PciSection { devices });
    Ok(finish(
        IMPORTER,
        file,
        snap,
        w,
        &[
            ("msr", "an lspci dump carries no MSRs"),
            ("mtrr", "an lspci dump carries no MTRRs"),
        ],
    ))
}

/// Write `pci` in the format `lspci -F FILE` reads: a device line, the bound driver, rows
/// of 16 bytes, a blank line.
pub fn write_lspci(pci: &PciSection) -> String {
    let mut s = String::new();
    for (bdf, d) in &pci.devices {
        let _ = writeln!(
            s,
            "{bdf} Class {:04x}: Device {:04x}:{:04x} (rev {:02x})",
            d.class >> 8,
            d.vendor,
            d.device,
            d.revision
        );
        if let Some(driver) = &d.driver {
            let _ = writeln!(s, "\tKernel driver in use: {}", inert(driver));
        }
        for (i, chunk) in d.config.chunks(16).enumerate() {
            let _ = write!(s, "{:02x}:", i * 16);
            for b in chunk {
                let _ = write!(s, " {b:02x}");
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// A device line: the PCI address at the start of the line, and the rest of the line.
fn device_line(line: &str) -> Option<(Bdf, &str)> {
    let end = line.find([' ', '\t']).unwrap_or(line.len());
    let token = line.get(..end)?;
    if !bdf_shape(token) {
        return None;
    }
    let bdf = token.parse().ok()?;
    Some((bdf, line.get(end..)?))
}

/// `bb:dd.f` or `dddd:bb:dd.f` (a domain of 4 to 8 hex digits), as lspci prints them.
fn bdf_shape(token: &str) -> bool {
    let hex = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let Some((rest, func)) = token.rsplit_once('.') else {
        return false;
    };
    if func.len() != 1 || !func.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    match parts.as_slice() {
        [bus, dev] => hex(bus, 2..=2) && hex(dev, 2..=2),
        [dom, bus, dev] => hex(dom, 4..=8) && hex(bus, 2..=2) && hex(dev, 2..=2),
        _ => false,
    }
}

/// A hex row: its offset and what follows the colon.
fn row_start(line: &str) -> Option<(u64, &str)> {
    let colon = line.find(':')?;
    let offset = line.get(..colon)?;
    if !(2..=8).contains(&offset.len()) || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = line.get(colon + 1..)?;
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    Some((u64::from_str_radix(offset, 16).ok()?, rest))
}

/// Exactly two hex digits.
fn hex_byte(token: &str) -> Option<u8> {
    if token.len() == 2 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(token, 16).ok()
    } else {
        None
    }
}

/// One device being read.
struct Builder<'a> {
    bdf: Bdf,
    line: usize,
    header: &'a str,
    bytes: Vec<u8>,
    /// Which bytes a row gave (a bit per offset).
    given: [u64; CONFIG_MAX / 64],
    repeated: bool,
    beyond: bool,
    driver: Option<String>,
}

impl<'a> Builder<'a> {
    fn new(bdf: Bdf, header: &'a str, line: usize) -> Self {
        Builder {
            bdf,
            line,
            header,
            bytes: Vec::new(),
            given: [0; CONFIG_MAX / 64],
            repeated: false,
            beyond: false,
            driver: None,
        }
    }

    fn is_given(&self, pos: usize) -> bool {
        self.given
            .get(pos / 64)
            .is_some_and(|w| w & (1 << (pos % 64)) != 0)
    }

    fn row(&mut self, offset: u64, rest: &str, line: usize, w: &mut Warnings) {
        for (pos, token) in (offset..).zip(rest.split_whitespace()) {
            let Some(byte) = hex_byte(token) else {
                w.at(
                    line,
                    format!(
                        "{}: `{}` is not a hex byte: the rest of the row was ignored",
                        self.bdf,
                        excerpt(token)
                    ),
                );
                return;
            };
            if pos >= CONFIG_MAX as u64 {
                if !self.beyond {
                    self.beyond = true;
                    w.at(
                        line,
                        format!(
                            "{}: bytes past offset 0xfff ignored (config space is 4 KiB)",
                            self.bdf
                        ),
                    );
                }
                return;
            }
            let p = pos as usize;
            if self.bytes.len() <= p {
                self.bytes.resize(p + 1, 0xff);
            }
            if self.is_given(p) {
                self.repeated = true;
            }
            if let Some(slot) = self.bytes.get_mut(p) {
                *slot = byte;
            }
            if let Some(word) = self.given.get_mut(p / 64) {
                *word |= 1 << (p % 64);
            }
        }
    }

    fn driver(&mut self, name: &str, line: usize, w: &mut Warnings) {
        if name.is_empty() {
            return;
        }
        if name.len() > 64 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            w.at(
                line,
                format!(
                    "{}: `{}` is not a driver name: ignored",
                    self.bdf,
                    excerpt(name)
                ),
            );
            return;
        }
        self.driver = Some(name.to_string());
    }

    fn finish(self, devices: &mut BTreeMap<Bdf, PciDevice>, w: &mut Warnings) {
        let bdf = self.bdf;
        let line = self.line;
        if self.bytes.is_empty() {
            w.at(
                line,
                format!("{bdf} has no hex rows (lspci was run without -x): left out"),
            );
            return;
        }
        if devices.contains_key(&bdf) {
            w.at(
                line,
                format!("{bdf} appears a second time: the second dump was left out"),
            );
            return;
        }
        let len = self.bytes.len();
        let missing = missing_ranges(&self, len);
        if !missing.is_empty() {
            w.at(
                line,
                format!(
                    "{bdf}: bytes {missing} are missing from the dump: read as ff, as \
                     `lspci -F` does"
                ),
            );
        }
        if self.repeated {
            w.at(
                line,
                format!("{bdf}: some bytes are given twice: the later rows were kept"),
            );
        }
        if !matches!(len, 64 | 256 | 4096) {
            w.at(
                line,
                format!(
                    "{bdf}: {len} bytes of config space, not a whole lspci -x (64), -xxx (256) \
                     or -xxxx (4096) dump: truncated?"
                ),
            );
        }
        let cfg = &self.bytes;
        if len < 16 {
            w.at(
                line,
                format!("{bdf}: fewer than 16 bytes: the ids cannot all be read (taken as 0)"),
            );
        }
        let byte = |i: usize| cfg.get(i).copied().unwrap_or(0);
        let vendor = u16::from_le_bytes([byte(0), byte(1)]);
        let device = u16::from_le_bytes([byte(2), byte(3)]);
        let revision = byte(8);
        let class = u32::from_le_bytes([byte(9), byte(10), byte(11), 0]);
        cross_check(bdf, line, self.header, (vendor, device, class, revision), w);
        let (subsystem_vendor, subsystem_device) = subsystem(cfg);
        let config_note = match len {
            4096 => None,
            256 => Some("lspci -xxx dump: 256 bytes".to_string()),
            64 => Some("lspci -x dump: 64 bytes (the standard header)".to_string()),
            n => Some(format!("the dump holds {n} bytes")),
        };
        devices.insert(
            bdf,
            PciDevice {
                vendor,
                device,
                class,
                revision,
                subsystem_vendor,
                subsystem_device,
                driver: self.driver,
                config: self.bytes,
                config_note,
                vanished: false,
            },
        );
    }
}

/// `0x40-0x7f, 0x100` for the bytes below `len` that no row gave.
fn missing_ranges(b: &Builder, len: usize) -> String {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for p in 0..=len {
        let missing = p < len && !b.is_given(p);
        match (missing, start) {
            (true, None) => start = Some(p),
            (false, Some(s)) => {
                out.push(if p - 1 == s {
                    format!("{s:#x}")
                } else {
                    format!("{s:#x}-{:#x}", p - 1)
                });
                start = None;
            }
            _ => {}
        }
    }
    out.join(", ")
}

/// The ids lspci printed on a device line.
#[derive(Debug, Default, PartialEq, Eq)]
struct HeaderIds {
    ids: Option<(u16, u16)>,
    class: Option<u16>,
    revision: Option<u8>,
    prog_if: Option<u8>,
}

fn hex4(s: &str) -> Option<u16> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u16::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// `8086:3b29`.
fn id_pair(s: &str) -> Option<(u16, u16)> {
    let (v, d) = s.split_once(':')?;
    Some((hex4(v)?, hex4(d)?))
}

/// Read the ids from what follows the address on a device line: `-nn` brackets
/// (`SATA controller [0106]: Intel … [8086:3b29] (rev 06)`), names-less output
/// (`Class 0604: Device 8086:3408 (rev 10)`) or `-n` (`0600: 8086:2a40 (rev 07)`).
fn header_ids(rest: &str) -> HeaderIds {
    let mut h = HeaderIds::default();
    // Bracketed groups: `[0106]` followed by `:` is the class, the last `[vvvv:dddd]` the ids.
    let mut from = 0;
    while let Some(open) = rest.get(from..).and_then(|s| s.find('[')) {
        let open = from + open;
        let Some(close) = rest.get(open..).and_then(|s| s.find(']')) else {
            break;
        };
        let close = open + close;
        let inner = rest.get(open + 1..close).unwrap_or("");
        if let Some(pair) = id_pair(inner) {
            h.ids = Some(pair);
        } else if h.class.is_none() && rest.get(close + 1..close + 2) == Some(":") {
            h.class = hex4(inner);
        }
        from = close + 1;
    }
    // The ids sit near the start of a line; a pathological line is read no further.
    let words: Vec<&str> = rest.split_whitespace().take(256).collect();
    if h.ids.is_none() {
        h.ids = words
            .windows(2)
            .find(|w| w.first() == Some(&"Device"))
            .and_then(|w| w.get(1).and_then(|s| id_pair(s)));
    }
    if h.class.is_none() {
        h.class = words
            .windows(2)
            .find(|w| w.first() == Some(&"Class"))
            .and_then(|w| w.get(1).and_then(|s| s.strip_suffix(':')).and_then(hex4));
    }
    // `lspci -n`: `0600: 8086:2a40 (rev 07)`.
    if let (None, None, Some(first), Some(second)) = (h.class, h.ids, words.first(), words.get(1)) {
        if let (Some(class), Some(ids)) = (first.strip_suffix(':').and_then(hex4), id_pair(second))
        {
            h.class = Some(class);
            h.ids = Some(ids);
        }
    }
    let two_hex = |s: Option<&str>| {
        s.filter(|s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| u8::from_str_radix(s, 16).ok())
    };
    if let Some(p) = rest.rfind("(rev ") {
        h.revision = two_hex(rest.get(p + 5..p + 7));
    }
    if let Some(p) = rest.find("(prog-if ") {
        h.prog_if = two_hex(rest.get(p + 9..p + 11));
    }
    h
}

/// Warn where the device line and the bytes disagree; the bytes are kept.
fn cross_check(
    bdf: Bdf,
    line: usize,
    header: &str,
    (vendor, device, class, revision): (u16, u16, u32, u8),
    w: &mut Warnings,
) {
    let h = header_ids(header);
    let mut say = |what: String| {
        w.at(
            line,
            format!("{bdf}: the device line says {what}: the bytes were kept"),
        )
    };
    if let Some((v, d)) = h.ids {
        if (v, d) != (vendor, device) {
            say(format!(
                "[{v:04x}:{d:04x}] but the config bytes say {vendor:04x}:{device:04x}"
            ));
        }
    }
    if let Some(c) = h.class {
        if u32::from(c) != class >> 8 {
            say(format!(
                "class {c:04x} but the config bytes say {:04x}",
                class >> 8
            ));
        }
    }
    if let Some(r) = h.revision {
        if r != revision {
            say(format!(
                "(rev {r:02x}) but the config bytes say {revision:02x}"
            ));
        }
    }
    if let Some(p) = h.prog_if {
        if u32::from(p) != class & 0xff {
            say(format!(
                "(prog-if {p:02x}) but the config bytes say {:02x}",
                class & 0xff
            ));
        }
    }
}

/// The subsystem ids where the kernel reads them: the type 0 header, the CardBus header,
/// or a bridge's Subsystem ID capability.
fn subsystem(cfg: &[u8]) -> (Option<u16>, Option<u16>) {
    let word =
        |i: usize| -> Option<u16> { Some(u16::from_le_bytes([*cfg.get(i)?, *cfg.get(i + 1)?])) };
    let at = |i: usize| (word(i), word(i + 2));
    match cfg.get(0x0e).map(|h| h & 0x7f) {
        Some(0) => at(0x2c),
        Some(1) => find_cap(cfg, 0x0d).map_or((None, None), |p| at(p + 4)),
        Some(2) => at(0x40),
        _ => (None, None),
    }
}

/// The offset of capability `id` in the standard list, walked with a bound.
fn find_cap(cfg: &[u8], id: u8) -> Option<usize> {
    let status = u16::from_le_bytes([*cfg.get(6)?, *cfg.get(7)?]);
    if status & 0x10 == 0 {
        return None;
    }
    let mut ptr = usize::from(*cfg.get(0x34)? & 0xfc);
    for _ in 0..48 {
        if ptr < 0x40 {
            return None;
        }
        if *cfg.get(ptr)? == id {
            return Some(ptr);
        }
        ptr = usize::from(*cfg.get(ptr + 1)? & 0xfc);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(bytes: &[u8]) -> String {
        let mut s = String::new();
        for (i, c) in bytes.chunks(16).enumerate() {
            let _ = write!(s, "{:02x}:", i * 16);
            for b in c {
                let _ = write!(s, " {b:02x}");
            }
            s.push('\n');
        }
        s
    }

    /// A type 0 header of an Intel SATA controller (8086:3b29 rev 06, class 010601),
    /// subsystem 17aa:2168, with an MSI capability at 0x80.
    fn sata(len: usize) -> Vec<u8> {
        let mut c = vec![0u8; len];
        c[..12].copy_from_slice(&[
            0x86, 0x80, 0x29, 0x3b, 0x07, 0x04, 0x10, 0x00, 0x06, 0x01, 0x06, 0x01,
        ]);
        c[0x2c..0x30].copy_from_slice(&[0xaa, 0x17, 0x68, 0x21]);
        c[0x34] = 0x80;
        if len > 0x80 {
            c[0x80] = 0x05;
        }
        c
    }

    #[test]
    fn parses_a_device_with_verbose_lines() {
        let text = format!(
            "00:1f.2 SATA controller [0106]: Intel Corporation 5 Series [8086:3b29] (rev 06) \
             (prog-if 01 [AHCI 1.0])\n\tSubsystem: Lenovo Device [17aa:2168]\n\tControl: I/O+ \
             Mem+\n\tKernel driver in use: ahci\n\tKernel modules: ahci\n{}\n",
            rows(&sata(256))
        );
        let imp = parse_lspci(&text, "t.txt").unwrap();
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        let pci = imp.snapshot.pci.as_ref().unwrap();
        let d = &pci.devices[&"0000:00:1f.2".parse().unwrap()];
        assert_eq!(
            (d.vendor, d.device, d.class, d.revision),
            (0x8086, 0x3b29, 0x010601, 6)
        );
        assert_eq!(
            (d.subsystem_vendor, d.subsystem_device),
            (Some(0x17aa), Some(0x2168))
        );
        assert_eq!(d.driver.as_deref(), Some("ahci"));
        assert_eq!(d.config, sata(256));
        assert_eq!(d.config_note.as_deref(), Some("lspci -xxx dump: 256 bytes"));
        let snap = &imp.snapshot;
        assert!(snap.msr.is_none() && snap.mtrr.is_none());
        assert!(snap.meta.problems.iter().any(|p| p.source == "msr"));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let text = format!("\u{feff}00:1f.2 SATA\n{}", rows(&sata(64)));
        assert!(looks_like(&text));
        let imp = parse_lspci(&text, "t").unwrap();
        assert_eq!(imp.snapshot.pci.unwrap().devices.len(), 1);
    }

    #[test]
    fn domains_and_plain_lines() {
        let text = format!(
            "0001:02:00.0 0200: 8086:3b29 (rev 06)\n{}\n00:02.0\n{}",
            rows(&sata(64)),
            rows(&sata(64))
        );
        let imp = parse_lspci(&text, "t").unwrap();
        let pci = imp.snapshot.pci.unwrap();
        let keys: Vec<String> = pci.devices.keys().map(|b| b.to_string()).collect();
        assert_eq!(keys, ["0000:00:02.0", "0001:02:00.0"]);
        // `-n` says class 0200, the bytes say 0106.
        assert_eq!(imp.warnings.len(), 1, "{:?}", imp.warnings);
        assert!(imp.warnings[0].contains("class 0200 but the config bytes say 0106"));
        assert!(imp.warnings[0].starts_with("line 1: 0001:02:00.0"));
    }

    #[test]
    fn header_disagreement_warns_and_keeps_bytes() {
        let text = format!(
            "00:1f.2 SATA controller [0106]: Intel [8086:3b28] (rev 05)\n{}",
            rows(&sata(64))
        );
        let imp = parse_lspci(&text, "t").unwrap();
        assert_eq!(imp.warnings.len(), 2, "{:?}", imp.warnings);
        assert!(imp.warnings[0].contains("[8086:3b28] but the config bytes say 8086:3b29"));
        assert!(imp.warnings[1].contains("(rev 05) but the config bytes say 06"));
        let d = imp
            .snapshot
            .pci
            .unwrap()
            .devices
            .into_values()
            .next()
            .unwrap();
        assert_eq!(d.device, 0x3b29);
    }

    #[test]
    fn header_id_forms() {
        assert_eq!(
            header_ids(" Class 0604: Device 8086:3408 (rev 10)"),
            HeaderIds {
                ids: Some((0x8086, 0x3408)),
                class: Some(0x0604),
                revision: Some(0x10),
                prog_if: None
            }
        );
        assert_eq!(
            header_ids(
                " VGA compatible controller [0300]: Advanced Micro Devices, Inc. [AMD/ATI] Fiji \
                 [Radeon R9 FURY / NANO Series] [1002:7300] (rev ca) (prog-if 00 [VGA controller])"
            ),
            HeaderIds {
                ids: Some((0x1002, 0x7300)),
                class: Some(0x0300),
                revision: Some(0xca),
                prog_if: Some(0)
            }
        );
        assert_eq!(
            header_ids(" 0600: 8086:2a40 (rev 07)").ids,
            Some((0x8086, 0x2a40))
        );
        assert_eq!(
            header_ids(" Host bridge: Intel Corporation Device (rev 12)").ids,
            None
        );
        assert_eq!(header_ids(""), HeaderIds::default());
        // Multi-byte names around brackets do not break slicing.
        assert_eq!(header_ids(" Ünïcødé [€€€€] [ab:cd] (rev é").revision, None);
    }

    #[test]
    fn four_kib_dumps_and_aliasing_are_kept_as_is() {
        let mut cfg = sata(4096);
        for base in (0x100..0x1000).step_by(0x100) {
            cfg[base + 0x97] = 3;
        }
        let text = format!("02:00.0 Ethernet\n{}", rows(&cfg));
        let imp = parse_lspci(&text, "t").unwrap();
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        let d = imp
            .snapshot
            .pci
            .unwrap()
            .devices
            .into_values()
            .next()
            .unwrap();
        assert_eq!(d.config, cfg);
        assert_eq!(d.config_note, None);
    }

    #[test]
    fn bridge_subsystem_from_capability() {
        let mut c = vec![0u8; 256];
        c[..4].copy_from_slice(&[0x86, 0x80, 0x40, 0x29]);
        c[6] = 0x10; // capability list
        c[0x0b] = 6;
        c[0x0a] = 4;
        c[0x0e] = 0x81; // multi-function type 1
        c[0x34] = 0x40;
        c[0x40..0x42].copy_from_slice(&[0x10, 0x90]); // PCIe -> 0x90
        c[0x90..0x98].copy_from_slice(&[0x0d, 0xa0, 0, 0, 0x25, 0x10, 0x3c, 0x01]);
        c[0xa0..0xa2].copy_from_slice(&[0x01, 0x40]); // PM pointing back to 0x40: a loop
        assert_eq!(subsystem(&c), (Some(0x1025), Some(0x013c)));
        c[0x91] = 0x40; // loop before SSVID... now SSVID at 0x90 is still found first
        assert_eq!(find_cap(&c, 0x0d), Some(0x90));
        assert_eq!(find_cap(&c, 0x11), None); // the loop ends
        c[0x0e] = 2; // CardBus
        assert_eq!(subsystem(&c), (Some(0x9010), Some(0)));
        assert_eq!(subsystem(&[]), (None, None));
    }

    #[test]
    fn gaps_odd_lengths_and_repeats_warn() {
        let text = "00:00.0 Host\n00: 86 80 40 2a\n10: 01 02\n00: 86 80\n";
        let imp = parse_lspci(text, "t").unwrap();
        let w = imp.warnings.join("\n");
        assert!(w.contains("bytes 0x4-0xf are missing"), "{w}");
        assert!(w.contains("given twice"), "{w}");
        assert!(w.contains("18 bytes of config space"), "{w}");
        let d = imp
            .snapshot
            .pci
            .unwrap()
            .devices
            .into_values()
            .next()
            .unwrap();
        assert_eq!(d.config.len(), 18);
        assert_eq!(&d.config[..6], &[0x86, 0x80, 0x40, 0x2a, 0xff, 0xff]);
        assert_eq!(d.config_note.as_deref(), Some("the dump holds 18 bytes"));
    }

    #[test]
    fn rows_beyond_4k_and_malformed_rows() {
        let mut text = "00:00.0 Host\n".to_string();
        text.push_str(&rows(&sata(64)));
        text.push_str("ff8: 01 02 03 04 05 06 07 08 09 0a 0b\n");
        text.push_str("12345678: 00 11\n");
        text.push_str("40: 01 zz 03\n");
        let imp = parse_lspci(&text, "t").unwrap();
        let w = imp.warnings.join("\n");
        assert!(w.contains("past offset 0xfff"), "{w}");
        assert!(w.contains("`zz` is not a hex byte"), "{w}");
        let d = imp
            .snapshot
            .pci
            .unwrap()
            .devices
            .into_values()
            .next()
            .unwrap();
        assert_eq!(d.config.len(), 4096);
        assert_eq!(&d.config[0xff8..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(d.config[0x40], 1);
        assert_eq!(d.config[0x41], 0xff);
    }

    #[test]
    fn truncated_file_imports_in_part() {
        let full = format!("00:1f.2 SATA\n{}", rows(&sata(256)));
        let cut = &full[..full.len() - 20];
        let imp = parse_lspci(cut, "t").unwrap();
        assert!(!imp.warnings.is_empty());
        let d = imp
            .snapshot
            .pci
            .unwrap()
            .devices
            .into_values()
            .next()
            .unwrap();
        assert!(d.config.len() < 256 && d.config.len() > 200);
    }

    #[test]
    fn refusals() {
        let e = parse_lspci("", "t").unwrap_err();
        assert!(e.to_string().contains("no PCI device found"), "{e}");
        let e =
            parse_lspci("00:1f.2 SATA controller: Intel\n\tControl: I/O+\n\n", "t").unwrap_err();
        assert!(e.to_string().contains("without -x"), "{e}");
        let e = parse_lspci("\u{0}\u{1}\u{2}garbage\n\u{fffd}\n", "t").unwrap_err();
        assert!(e.to_string().contains("no PCI device"), "{e}");
        // Rows with no device before them.
        let e = parse_lspci("00: 86 80 29 3b\n", "t").unwrap_err();
        assert!(e.to_string().contains("no PCI device"), "{e}");
    }

    #[test]
    fn duplicates_stray_rows_and_rowless_devices() {
        let text = format!(
            "00:1f.2 A\n{r}\n00:1f.2 B\n{r}\n10: 00 00\n\n00:1f.3 C\n\tControl: I/O+\n",
            r = rows(&sata(64))
        );
        let imp = parse_lspci(&text, "t").unwrap();
        let w = imp.warnings.join("\n");
        assert!(w.contains("appears a second time"), "{w}");
        assert!(w.contains("1 hex row(s) outside any device"), "{w}");
        assert!(w.contains("0000:00:1f.3 has no hex rows"), "{w}");
        assert_eq!(imp.snapshot.pci.unwrap().devices.len(), 1);
    }

    #[test]
    fn device_count_is_bounded() {
        // A million one-row devices: the first ones are imported, the rest refused with a
        // warning kept past the warning bound; memory stays bounded by the device limit.
        let mut text = String::new();
        for i in 0..1_000_000u32 {
            let _ = writeln!(
                text,
                "{:04x}:{:02x}:{:02x}.0\n00: 86 80 29 3b\n",
                i >> 13,
                (i >> 5) & 0xff,
                i & 0x1f
            );
        }
        let imp = parse_lspci_limited(&text, "t", 300).unwrap();
        assert_eq!(imp.snapshot.pci.unwrap().devices.len(), 300);
        assert!(imp
            .warnings
            .iter()
            .any(|w| w.contains("more than 300 devices")));
        // The real limit applies to the public parser.
        assert_eq!(MAX_DEVICES, 16_384);
    }

    #[test]
    fn hostile_driver_names_are_refused() {
        let text = format!(
            "00:1f.2 SATA\n\tKernel driver in use: a b\n{}",
            rows(&sata(64))
        );
        let imp = parse_lspci(&text, "t").unwrap();
        assert_eq!(
            imp.snapshot
                .pci
                .unwrap()
                .devices
                .into_values()
                .next()
                .unwrap()
                .driver,
            None
        );
        assert!(imp.warnings[0].contains("is not a driver name"));
    }

    #[test]
    fn write_then_parse_round_trips() {
        let text = format!(
            "00:1f.2 SATA\n\tKernel driver in use: ahci\n{}\n0000:03:00.0 X\n{}",
            rows(&sata(4096)),
            rows(&sata(64))
        );
        let a = parse_lspci(&text, "t").unwrap();
        let written = write_lspci(a.snapshot.pci.as_ref().unwrap());
        assert!(written.starts_with("0000:00:1f.2 Class 0106: Device 8086:3b29 (rev 06)\n"));
        let b = parse_lspci(&written, "t").unwrap();
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        assert_eq!(a.snapshot.pci, b.snapshot.pci);
    }

    #[test]
    fn shapes() {
        assert!(bdf_shape("00:1f.2") && bdf_shape("0000:00:1f.2") && bdf_shape("10000:ff:1f.7"));
        assert!(
            !bdf_shape("00:1f.8")
                && !bdf_shape("0:1f.2")
                && !bdf_shape("00:1f")
                && !bdf_shape("000:00:1f.2")
        );
        assert_eq!(row_start("00: 86 80"), Some((0, " 86 80")));
        assert_eq!(row_start("ff0:"), Some((0xff0, "")));
        assert_eq!(row_start("00:1f.2 SATA"), None);
        assert_eq!(row_start("\t\tAddress: fee00000"), None);
        assert_eq!(row_start("Latency: 0"), None);
        assert_eq!(row_start("0x00: 12"), None);
    }
}
