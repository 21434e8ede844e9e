//! The snapshot: everything one capture (or one import) saw, as a versioned JSON file.
//!
//! Layout (version 1), documented in the README:
//!
//! ```json
//! { "format": "regdrift-snapshot", "version": 1,
//!   "meta": { ... },
//!   "msr":  { "selection": "known", "cpus": { "0": { "values": {"0x1a0": "0x850089"},
//!                                                      "unreadable": {"0x1fc": "EIO"} } } },
//!   "mtrr": { "phys_bits": 48, "proc_mtrr": "reg00: base=..." },
//!   "pci":  { "devices": { "0000:00:1f.2": { "vendor": "8086", ..., "config": {"len": 256, "hex": "..."} } } } }
//! ```
//!
//! A section that is absent (`null` or missing) was not captured (or not carried by an
//! imported dump); `diff` then compares only what both sides have.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FileError;

pub const FORMAT: &str = "regdrift-snapshot";
pub const VERSION: u32 = 1;

/// The largest snapshot file regdrift will open (a 256-CPU server with a thousand devices
/// is ~15 MiB); the same as the largest dump `import` reads.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// The most CPUs a snapshot may hold (Linux on x86 supports at most 8192).
pub const MAX_CPUS: usize = 65_536;

/// The most PCI devices a snapshot may hold (a whole PCI domain holds 65536 functions;
/// the largest servers have a few thousand).
pub const MAX_PCI_DEVICES: usize = 65_536;

/// Config space in a snapshot is at most this many bytes for each byte of its JSON (plus
/// [`CONFIG_SLACK`]): a `{"len": 4096, "hex": ""}` of 22 bytes stands for 4096 bytes, so
/// without a budget a small file could claim gigabytes. Real snapshots hold one to ten
/// bytes of config space per byte of JSON (a 4 KiB space whose only non-zero bytes are
/// its 64-byte header takes about 250 bytes). With [`MAX_PCI_DEVICES`], config space
/// never takes more than 256 MiB.
pub const CONFIG_BYTES_PER_JSON_BYTE: usize = 32;
/// Config bytes allowed beyond the per-byte budget (a few whole devices).
pub const CONFIG_SLACK: usize = 64 << 10;

thread_local! {
    /// Config bytes the snapshot being parsed may still hold (`None`: no limit, outside
    /// [`Snapshot::from_json`]).
    static CONFIG_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Sets the config budget for one parse and clears it afterwards, even on error.
struct BudgetGuard;

impl BudgetGuard {
    fn new(json_len: usize) -> Self {
        let budget = json_len
            .saturating_mul(CONFIG_BYTES_PER_JSON_BYTE)
            .saturating_add(CONFIG_SLACK);
        CONFIG_BUDGET.with(|b| b.set(Some(budget)));
        BudgetGuard
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        CONFIG_BUDGET.with(|b| b.set(None));
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format: String,
    pub version: u32,
    pub meta: Meta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msr: Option<MsrSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtrr: Option<MtrrSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciSection>,
}

/// Where the snapshot came from and what could not be read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub regdrift_version: String,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Module names from /proc/modules, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
    /// The kernel's list of online CPUs (`0-3,6`), as /sys/devices/system/cpu/online gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_online: Option<String>,
    /// Sources that could not be read, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// Read from a machine (or a tree laid out like one) under `root`.
    Capture { root: String },
    /// Converted from another tool's dump.
    Import { importer: String, file: String },
    /// Made by a generator (benchmarks, tests).
    Synthetic { generator: String },
}

impl Default for Origin {
    fn default() -> Self {
        Origin::Capture { root: "/".into() }
    }
}

/// One source that could not be read (or read only in part).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `msr`, `cpuid`, `mtrr`, `pci`, `meta`, or an importer's name.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: String,
}

impl Problem {
    pub fn new(source: &str, path: Option<&Path>, reason: impl Into<String>) -> Self {
        Problem {
            source: source.to_string(),
            path: path.map(|p| p.display().to_string()),
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// MSRs

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MsrSection {
    /// What was asked for: `known`, `scan`, or the list given (`0x10,0x200-0x20f`).
    pub selection: String,
    /// Per logical CPU number. A CPU whose MSR device could not be opened is absent (and
    /// named in `meta.problems`).
    #[serde(with = "cpu_map")]
    pub cpus: BTreeMap<u32, CpuMsrs>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuMsrs {
    /// MSR index → value, as `"0x1a0": "0x850089"`.
    #[serde(with = "hex_u32_u64_map")]
    pub values: BTreeMap<u32, u64>,
    /// MSR index → why it could not be read (`EIO`, `short read`…). A scan does not list
    /// the MSRs that fault: on real hardware that is most of the space.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "hex_u32_str_map"
    )]
    pub unreadable: BTreeMap<u32, String>,
    /// Physical address width from CPUID 0x80000008 (EAX 7:0), when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phys_bits: Option<u8>,
    /// The MSR "device" was a regular file (a fixture or a generated machine): there the
    /// 8 bytes of MSR `i` overlap those of `i+1 … i+7`, which `diff` takes into account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regular_file: bool,
}

// ---------------------------------------------------------------------------------------
// MTRRs

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MtrrSection {
    /// Physical address width used to decode PHYSMASKn (CPUID, or `--phys-bits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phys_bits: Option<u8>,
    /// The text of /proc/mtrr, as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mtrr: Option<String>,
}

// ---------------------------------------------------------------------------------------
// PCI

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PciSection {
    #[serde(with = "bdf_map")]
    pub devices: BTreeMap<Bdf, PciDevice>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PciDevice {
    #[serde(with = "hex4")]
    pub vendor: u16,
    #[serde(with = "hex4")]
    pub device: u16,
    /// Class, subclass and programming interface (`0x010601` is `"010601"`).
    #[serde(with = "hex6")]
    pub class: u32,
    #[serde(with = "hex2")]
    pub revision: u8,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex4")]
    pub subsystem_vendor: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex4")]
    pub subsystem_device: Option<u16>,
    /// The bound driver's name (the `driver` link), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Config space as the kernel gave it: 4096, 256 or 64 bytes.
    #[serde(with = "config_bytes")]
    pub config: Vec<u8>,
    /// Why the config space is shorter than the device's (e.g. not root: 64 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_note: Option<String>,
    /// The device disappeared while it was being read: what was read is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vanished: bool,
}

/// A PCI address: domain:bus:device.function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for Bdf {
    type Err = String;
    /// `0000:00:1f.2`, or `00:1f.2` (domain 0).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a PCI address (domain:bus:device.function): {s:?}");
        let (rest, func) = s.rsplit_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (dom, bus, dev) = match parts.as_slice() {
            [b, d] => ("0", *b, *d),
            [dm, b, d] => (*dm, *b, *d),
            _ => return Err(bad()),
        };
        let hex = |t: &str, max: u32| -> Result<u32, String> {
            if t.is_empty() || t.len() > 8 {
                return Err(bad());
            }
            let v = u32::from_str_radix(t, 16).map_err(|_| bad())?;
            if v > max {
                return Err(bad());
            }
            Ok(v)
        };
        Ok(Bdf {
            domain: hex(dom, u32::MAX)?,
            bus: hex(bus, 0xff)? as u8,
            device: hex(dev, 0x1f)? as u8,
            function: hex(func, 7)? as u8,
        })
    }
}

impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bdf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------
// Construction, load and save

impl Snapshot {
    /// An empty snapshot of this format version, with `origin`.
    pub fn new(origin: Origin) -> Self {
        Snapshot {
            format: FORMAT.to_string(),
            version: VERSION,
            meta: Meta {
                regdrift_version: env!("CARGO_PKG_VERSION").to_string(),
                origin,
                ..Meta::default()
            },
            msr: None,
            mtrr: None,
            pci: None,
        }
    }

    /// Parse a snapshot from JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        // One pass for a well-formed file; a file that does not parse is looked at again
        // for its header, so that a newer or foreign file is refused by name rather than
        // by the first field it does not understand. Config space is budgeted against the
        // size of the text while parsing (see `BudgetGuard`).
        let _budget = BudgetGuard::new(text.len());
        match serde_json::from_str::<Snapshot>(text) {
            Ok(snap) => {
                check_header(
                    Some(&serde_json::Value::from(snap.format.as_str())),
                    Some(&serde_json::Value::from(snap.version)),
                )?;
                Ok(snap)
            }
            Err(e) => {
                #[derive(Deserialize)]
                struct Header {
                    format: Option<serde_json::Value>,
                    version: Option<serde_json::Value>,
                }
                let header: Header = match serde_json::from_str(text) {
                    Ok(h) => h,
                    Err(e) => return Err(format!("not a JSON snapshot: {e}")),
                };
                check_header(header.format.as_ref(), header.version.as_ref())?;
                Err(format!("invalid snapshot: {e}"))
            }
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = crate::sanitize::to_json_pretty(self).expect("snapshot serializes");
        s.push('\n');
        s
    }

    /// Load a snapshot file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = read_text_file(path, MAX_FILE_BYTES)?;
        Snapshot::from_json(&text).map_err(|what| FileError::invalid(path, what))
    }

    pub fn save(&self, out: &crate::atomic::Output) -> Result<(), FileError> {
        out.write(self.to_json().as_bytes())
    }

    /// A one-line description for reports: host, kernel, boot id or the import source.
    pub fn describe(&self) -> String {
        let m = &self.meta;
        let mut parts = Vec::new();
        match &m.origin {
            Origin::Capture { root } if root != "/" => parts.push(format!("root {root}")),
            Origin::Capture { .. } => {}
            Origin::Import { importer, file } => parts.push(format!("{importer} dump {file}")),
            Origin::Synthetic { generator } => parts.push(format!("synthetic ({generator})")),
        }
        if let Some(h) = &m.hostname {
            parts.push(h.clone());
        }
        if let Some(k) = &m.kernel_release {
            parts.push(format!("Linux {k}"));
        }
        if let Some(b) = &m.boot_id {
            parts.push(format!("boot {}", b.get(..8).unwrap_or(b)));
        }
        if let Some(t) = &m.captured_at {
            parts.push(t.clone());
        }
        crate::sanitize::inert(&parts.join(", ")).into_owned()
    }
}

/// Refuse a file whose `format` is not a snapshot's or whose `version` is not this one.
fn check_header(
    format: Option<&serde_json::Value>,
    version: Option<&serde_json::Value>,
) -> Result<(), String> {
    match format.and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "format is {:?}, expected {FORMAT:?}",
                crate::sanitize::inert(other)
            ))
        }
        None => return Err(format!("no \"format\": {FORMAT:?} field: not a snapshot")),
    }
    match version.and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => Ok(()),
        Some(v) if v > VERSION as u64 => Err(format!(
            "snapshot version {v} is newer than this regdrift understands \
             (version {VERSION}); upgrade regdrift"
        )),
        Some(v) => Err(format!("unknown snapshot version {v}")),
        None => Err("no numeric \"version\" field".to_string()),
    }
}

/// Read a whole text file, refusing one larger than `max` bytes and one that is not UTF-8.
pub fn read_text_file(path: &Path, max: u64) -> Result<String, FileError> {
    use std::io::Read;
    let read_err = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || FileError::invalid(path, format!("larger than {} MiB: refused", max >> 20));
    let f = std::fs::File::open(path).map_err(read_err)?;
    // A regular file says its size: refuse before reading any of it. Others (pipes,
    // /proc files) are read up to the limit.
    if f.metadata().is_ok_and(|m| m.is_file() && m.len() > max) {
        return Err(too_large());
    }
    // Sized from the file's length when it has one: one allocation for a big snapshot.
    // The length is only a hint: reading stops at `max + 1` bytes whatever it says.
    let hint = f.metadata().map(|m| m.len()).unwrap_or(0).min(max + 1);
    let mut buf = Vec::with_capacity(hint as usize + 1);
    f.take(max + 1).read_to_end(&mut buf).map_err(read_err)?;
    if buf.len() as u64 > max {
        return Err(too_large());
    }
    String::from_utf8(buf).map_err(|e| {
        FileError::invalid(
            path,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

// ---------------------------------------------------------------------------------------
// serde helpers: numbers as hex strings, maps keyed by hex strings.

/// Parse `0x1a0`, `0X1A0` or `1a0` (hex) as a u64.
pub fn parse_hex(s: &str) -> Option<u64> {
    let t = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    // Fast path for plain digits (every number a snapshot holds); anything else (a sign)
    // goes through the standard parser.
    let mut v = 0u64;
    for &b in t.as_bytes() {
        match hex_digit(b) {
            Some(d) => v = (v << 4) | d as u64,
            None => return u64::from_str_radix(t, 16).ok(),
        }
    }
    Some(v)
}

/// The value of one hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `v` as `0x…` (lower case, no leading zeros) in `buf`, without the formatting machinery:
/// snapshots hold hundreds of thousands of these.
fn hex_0x(v: u64, buf: &mut [u8; 18]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - v.leading_zeros() as usize).div_ceil(4).max(1);
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..digits {
        buf[1 + digits - i] = DIGITS[((v >> (4 * i)) & 0xf) as usize];
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[..2 + digits]).unwrap_or("0x0")
}

/// A hex number of at most `MAX` read from a JSON string without allocating; the text is
/// kept only when it is not such a number, for the error message.
struct HexStr<const MAX: u64>(Result<u64, String>);

impl<'de, const MAX: u64> Deserialize<'de> for HexStr<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MAX: u64>;
        impl<const MAX: u64> serde::de::Visitor<'_> for V<MAX> {
            type Value = HexStr<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a hex number as a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HexStr<MAX>, E> {
                Ok(HexStr(match parse_hex(v) {
                    Some(n) if n <= MAX => Ok(n),
                    _ => Err(v.to_string()),
                }))
            }
        }
        d.deserialize_str(V::<MAX>)
    }
}

macro_rules! hex_fixed {
    ($modname:ident, $ty:ty, $width:expr) => {
        mod $modname {
            use serde::{Deserialize, Deserializer, Serializer};
            pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&format_args!("{:0w$x}", v, w = $width))
            }
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                super::parse_hex(&s)
                    .and_then(|v| <$ty>::try_from(v).ok())
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "expected a hex number of at most {} digits, got {:?}",
                            $width, s
                        ))
                    })
            }
        }
    };
}
hex_fixed!(hex2, u8, 2);
hex_fixed!(hex4, u16, 4);
hex_fixed!(hex6, u32, 6);

mod opt_hex4 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(&format_args!("{v:04x}")),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        let s = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => super::parse_hex(&s)
                .and_then(|v| u16::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("bad 16-bit hex id {s:?}"))),
        }
    }
}

mod hex_u32_u64_map {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    use super::{hex_0x, HexStr};

    pub fn serialize<S: Serializer>(m: &BTreeMap<u32, u64>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        let (mut kb, mut vb) = ([0u8; 18], [0u8; 18]);
        for (&k, &v) in m {
            map.serialize_entry(hex_0x(k as u64, &mut kb), hex_0x(v, &mut vb))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, u64>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BTreeMap<u32, u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of hex MSR index to hex value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                // Collected first and built in one go: the keys come sorted from a
                // snapshot, and a later duplicate wins as it would on insert.
                let mut v: Vec<(u32, u64)> = Vec::with_capacity(a.size_hint().unwrap_or(0));
                while let Some((k, val)) =
                    a.next_entry::<HexStr<{ u32::MAX as u64 }>, HexStr<{ u64::MAX }>>()?
                {
                    let key =
                        k.0.map_err(|k| serde::de::Error::custom(format!("bad MSR index {k:?}")))?
                            as u32;
                    let val = val.0.map_err(|v| {
                        serde::de::Error::custom(format!("bad value {v:?} for MSR {key:#x}"))
                    })?;
                    v.push((key, val));
                }
                Ok(v.into_iter().collect())
            }
        }
        d.deserialize_map(V)
    }
}

mod hex_u32_str_map {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<u32, String>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(&format_args!("{k:#x}"), v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u32, String>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                super::parse_hex(&k)
                    .and_then(|k| u32::try_from(k).ok())
                    .map(|k| (k, v))
                    .ok_or_else(|| serde::de::Error::custom(format!("bad MSR index {k:?}")))
            })
            .collect()
    }
}

mod cpu_map {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{Error as _, MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    use super::CpuMsrs;

    pub fn serialize<S: Serializer>(m: &BTreeMap<u32, CpuMsrs>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(&k.to_string(), v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u32, CpuMsrs>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BTreeMap<u32, CpuMsrs>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of CPU number to MSRs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = BTreeMap::new();
                while let Some(k) = a.next_key::<std::borrow::Cow<'de, str>>()? {
                    if m.len() >= super::MAX_CPUS {
                        return Err(A::Error::custom(format!(
                            "more than {} CPUs: refused",
                            super::MAX_CPUS
                        )));
                    }
                    let cpu = k
                        .parse::<u32>()
                        .map_err(|_| A::Error::custom(format!("bad CPU number {k:?}")))?;
                    m.insert(cpu, a.next_value::<CpuMsrs>()?);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

mod bdf_map {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{Error as _, MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    use super::{Bdf, PciDevice};

    pub fn serialize<S: Serializer>(m: &BTreeMap<Bdf, PciDevice>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Bdf, PciDevice>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BTreeMap<Bdf, PciDevice>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of PCI address to device")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = BTreeMap::new();
                while let Some(k) = a.next_key::<Bdf>()? {
                    if m.len() >= super::MAX_PCI_DEVICES {
                        return Err(A::Error::custom(format!(
                            "more than {} PCI devices: refused",
                            super::MAX_PCI_DEVICES
                        )));
                    }
                    m.insert(k, a.next_value::<PciDevice>()?);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// Config space as `{"len": 4096, "hex": "8680..."}`: the hex stops at the last non-zero
/// byte, the rest up to `len` is zero. A 4 KiB extended space that is mostly zeros stays
/// short.
mod config_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Config space is at most 4 KiB; refuse absurd claims before allocating.
    const MAX_CONFIG: usize = 4096;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Repr<'a> {
        len: usize,
        #[serde(borrow)]
        hex: std::borrow::Cow<'a, str>,
    }

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let mut hex = String::with_capacity(end * 2);
        for &b in &v[..end] {
            hex.push(DIGITS[(b >> 4) as usize] as char);
            hex.push(DIGITS[(b & 0xf) as usize] as char);
        }
        Repr {
            len: v.len(),
            hex: hex.into(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        use serde::de::Error;
        let r = Repr::deserialize(d)?;
        if r.len > MAX_CONFIG {
            return Err(D::Error::custom(format!(
                "config length {} is larger than 4096",
                r.len
            )));
        }
        let over = super::CONFIG_BUDGET.with(|b| match b.get() {
            Some(left) if r.len > left => true,
            Some(left) => {
                b.set(Some(left - r.len));
                false
            }
            None => false,
        });
        if over {
            return Err(D::Error::custom(format!(
                "config spaces claim more than {} bytes for each byte of the file: refused",
                super::CONFIG_BYTES_PER_JSON_BYTE
            )));
        }
        let h = r.hex.as_bytes();
        if h.len() % 2 != 0 || h.len() / 2 > r.len {
            return Err(D::Error::custom(format!(
                "config hex has {} digits for {} bytes",
                h.len(),
                r.len
            )));
        }
        let mut out = vec![0u8; r.len];
        for (i, (slot, pair)) in out.iter_mut().zip(h.chunks_exact(2)).enumerate() {
            *slot = match (super::hex_digit(pair[0]), super::hex_digit(pair[1])) {
                (Some(hi), Some(lo)) => (hi << 4) | lo,
                _ => {
                    let s = std::str::from_utf8(pair).map_err(D::Error::custom)?;
                    u8::from_str_radix(s, 16)
                        .map_err(|_| D::Error::custom(format!("bad hex byte {s:?} at {i:#x}")))?
                }
            };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut s = Snapshot::new(Origin::Capture { root: "/".into() });
        s.meta.kernel_release = Some("6.1.0-28-amd64".into());
        let mut cpu = CpuMsrs::default();
        cpu.values.insert(0x1a0, 0x850089);
        cpu.values.insert(0xc000_0080, 0xd01);
        cpu.unreadable.insert(0x1fc, "EIO".into());
        cpu.phys_bits = Some(48);
        let mut cpus = BTreeMap::new();
        cpus.insert(0, cpu.clone());
        cpus.insert(1, cpu);
        s.msr = Some(MsrSection {
            selection: "known".into(),
            cpus,
        });
        let mut config = vec![0u8; 4096];
        config[..4].copy_from_slice(&[0x86, 0x80, 0x29, 0x3b]);
        config[0x100] = 0x01;
        let mut devices = BTreeMap::new();
        devices.insert(
            "0000:00:1f.2".parse().unwrap(),
            PciDevice {
                vendor: 0x8086,
                device: 0x3b29,
                class: 0x010601,
                revision: 6,
                subsystem_vendor: Some(0x17aa),
                subsystem_device: None,
                driver: Some("ahci".into()),
                config,
                config_note: None,
                vanished: false,
            },
        );
        s.pci = Some(PciSection { devices });
        s
    }

    #[test]
    fn round_trips() {
        let s = sample();
        let text = s.to_json();
        assert!(text.contains("\"0x1a0\": \"0x850089\""));
        assert!(text.contains("\"0000:00:1f.2\""));
        assert!(text.contains("\"class\": \"010601\""));
        let back = Snapshot::from_json(&text).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn config_trailing_zeros_are_not_stored() {
        let text = sample().to_json();
        // 0x101 bytes of hex at most, not 4096.
        let hex_line = text.lines().find(|l| l.contains("\"hex\"")).unwrap();
        assert!(hex_line.len() < 0x101 * 2 + 20, "{}", hex_line.len());
    }

    #[test]
    fn refuses_other_formats_and_versions() {
        let text = sample().to_json();
        let newer = text.replace("\"version\": 1", "\"version\": 7");
        let e = Snapshot::from_json(&newer).unwrap_err();
        assert!(e.contains("version 7 is newer"), "{e}");
        let other = text.replace("regdrift-snapshot", "regdrift-recording");
        assert!(Snapshot::from_json(&other)
            .unwrap_err()
            .contains("format is"));
        assert!(Snapshot::from_json("[1,2]").is_err());
        assert!(Snapshot::from_json("{}")
            .unwrap_err()
            .contains("not a snapshot"));
    }

    #[test]
    fn refuses_absurd_config_lengths() {
        let text = sample()
            .to_json()
            .replace("\"len\": 4096", "\"len\": 4294967296");
        assert!(Snapshot::from_json(&text)
            .unwrap_err()
            .contains("larger than 4096"));
    }

    #[test]
    fn hex_numbers_parse_and_print_as_the_standard_library_does() {
        for v in [
            0u64,
            1,
            0xf,
            0x10,
            0x1a0,
            0x8000_0000,
            u64::MAX,
            0x0123_4567_89ab_cdef,
        ] {
            let mut buf = [0u8; 18];
            assert_eq!(hex_0x(v, &mut buf), format!("{v:#x}"));
            assert_eq!(parse_hex(&format!("{v:#x}")), Some(v));
            assert_eq!(parse_hex(&format!("{v:X}")), Some(v));
        }
        for s in ["", "0x", "xyz", "0x1g", "0x1ffffffffffffffff", "-1"] {
            assert_eq!(parse_hex(s), None, "{s:?}");
        }
        // What u64::from_str_radix accepts beyond plain digits still parses.
        assert_eq!(parse_hex("+1a"), Some(0x1a));
    }

    #[test]
    fn bad_msr_maps_are_refused_by_name() {
        let text = sample().to_json();
        let e = Snapshot::from_json(&text.replace("\"0x1a0\": ", "\"0x1ffffffff\": ")).unwrap_err();
        assert!(e.contains("bad MSR index \"0x1ffffffff\""), "{e}");
        let e = Snapshot::from_json(&text.replace("\"0x850089\"", "\"0xq\"")).unwrap_err();
        assert!(e.contains("bad value \"0xq\" for MSR 0x1a0"), "{e}");
        let e =
            Snapshot::from_json(&text.replace("\"hex\": \"8680", "\"hex\": \"8g80")).unwrap_err();
        assert!(e.contains("bad hex byte \"8g\" at 0x0"), "{e}");
    }

    #[test]
    fn large_snapshots_round_trip() {
        let pair = crate::fixture::synth::generate(&crate::fixture::synth::Spec::laptop(2));
        for s in [&pair.baseline, &pair.current] {
            let text = s.to_json();
            assert_eq!(&Snapshot::from_json(&text).unwrap(), s);
        }
    }

    #[test]
    fn bdf_parses_both_forms() {
        let a: Bdf = "00:1f.2".parse().unwrap();
        let b: Bdf = "0000:00:1f.2".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0000:00:1f.2");
        assert!("00:20.0".parse::<Bdf>().is_err());
        assert!("00:1f.8".parse::<Bdf>().is_err());
        assert!("junk".parse::<Bdf>().is_err());
    }
}
