//! rdmsr output (msr-tools) → the `msr` section of a snapshot.
//!
//! `rdmsr` prints values only, so a dump must also say which MSR each value belongs to.
//! Accepted lines (blank lines are skipped anywhere):
//!
//! | line | meaning |
//! | --- | --- |
//! | `rdmsr -a 0x1a0`, `$ sudo rdmsr -p 3 -X 0x1a0`, `user@host:~$ rdmsr 0x1a0` | the command (a transcript): the values that follow are of that MSR, for the CPUs it names (`-a`: all, in the order printed; `-p N`: CPU N; neither: CPU 0), in the format its options give |
//! | `# 0x1a0`, `# MSR 0x1a0 IA32_MISC_ENABLE` | a header naming the MSR of the values that follow |
//! | `0x1a0:`, `0x1a0: 850089 850089 …`, `MSR 0x1a0: …` | a header, with the first values on the same line (`echo "$m: $(rdmsr -a $m)"`) |
//! | `850089`, or several on a line | values, for the CPUs of the last header in turn |
//! | `CPU 3: 850089` | a value for CPU 3 (what `rdmsr -a` of msr-tools ≥ 1.3-git prints) |
//! | `cpu3 0x1a0 0x850089`, `cpu 3 0x1a0 850089` | a labelled value; a word instead of the value (`EIO`, `unreadable`) records the MSR as unreadable |
//! | `rdmsr: CPU 3 cannot read MSR 0x000001fc` | rdmsr's error: the MSR is unreadable on that CPU |
//! | other `#` lines, other shell lines (`$ …`, `+ …`, a prompt) | ignored (a shell line also ends the values of the command before it) |
//!
//! Values: hex as rdmsr prints them by default or with `-x`, `-X`, `-0` (zero-padded) and
//! `-c` (`0x` prefix); decimal with `-d` (rdmsr's signed form: a negative number stands for
//! bit 63 set; `0` is both 0 and 1<<63, which the output cannot tell apart) or `-u`
//! (`12345`, or `12345U` with `-c`); octal with `-o`; `{0x89,0x00,…}` for `-r -c`. Without a
//! command line, a bare number is read as hex (rdmsr's default), `-5` as `-d` output and
//! `5U` as `-u -c` output. Bit-field output (`-f`) and raw binary (`-r`) do not give whole
//! MSR values and are refused.
//!
//! Values of `rdmsr -a` without `CPU N:` labels (older msr-tools) go to CPUs 0, 1, 2, … in
//! the order printed, with a warning. A later value of the same MSR on the same CPU (a
//! transcript that reads it again) replaces the earlier one, with a warning when they
//! differ.

use super::{
    body, excerpt, finish, new_snapshot, set_msr_section, Entry, ImportError, Imported, MsrTable,
    Warnings, MSR_NOT_CARRIED,
};

/// The importer's name in `meta.origin`.
pub const IMPORTER: &str = "rdmsr";

/// Words read on one line: a value per CPU at most, and a few more.
const MAX_WORDS: usize = super::MAX_CPU as usize + 8;

/// How the values of a block are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Radix {
    /// No command line: hex unless the value says otherwise (`-5`, `5U`).
    Auto,
    Hex,
    Signed,
    Unsigned,
    Octal,
}

/// Which CPUs the values of a block are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cpus {
    One(u32),
    InOrder,
}

/// The values that follow a header or a command.
#[derive(Debug)]
struct Block {
    msr: u32,
    cpus: Cpus,
    radix: Radix,
    /// Next CPU for [`Cpus::InOrder`].
    next: u32,
    /// Values given so far (unlabelled ones).
    unlabelled: u32,
    labelled: bool,
    line: usize,
}

impl Block {
    fn new(msr: u32, cpus: Cpus, radix: Radix, line: usize) -> Self {
        Block {
            msr,
            cpus,
            radix,
            next: 0,
            unlabelled: 0,
            labelled: false,
            line,
        }
    }
}

/// Whether `text` reads as rdmsr output holding at least one value.
pub fn looks_like(text: &str) -> bool {
    parse_rdmsr(text, "").is_ok()
}

/// Parse rdmsr output (see the module documentation for the forms); `file` is recorded as
/// the origin.
pub fn parse_rdmsr(text: &str, file: &str) -> Result<Imported, ImportError> {
    parse_rdmsr_limited(text, file, super::MAX_MSR_VALUES)
}

/// [`parse_rdmsr`] keeping at most `limit` values.
pub(crate) fn parse_rdmsr_limited(
    text: &str,
    file: &str,
    limit: usize,
) -> Result<Imported, ImportError> {
    let mut p = Parser {
        table: MsrTable::with_limit(limit),
        w: Warnings::default(),
        block: None,
        in_order: false,
    };
    for (i, raw) in body(text).lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if !p.line(line, i + 1)? {
            break;
        }
    }
    p.end_block();
    if p.table.is_empty() {
        return Err(ImportError::new(
            "no MSR value found: expected rdmsr output with the MSR named before the values \
             (the `rdmsr -a 0x1a0` command line, `# 0x1a0` or `0x1a0:`), or lines \
             `cpuN 0xADDR 0xVALUE`",
        ));
    }
    if p.in_order {
        p.w.push(
            "values of `rdmsr -a` without `CPU N:` labels were given to CPUs 0, 1, 2, … in \
             the order printed: check that the CPUs from 0 up were the ones online",
        );
    }
    let mut snap = new_snapshot(IMPORTER, file);
    set_msr_section(&mut snap, p.table);
    Ok(finish(IMPORTER, file, snap, p.w, MSR_NOT_CARRIED))
}

struct Parser {
    table: MsrTable,
    w: Warnings,
    block: Option<Block>,
    /// Some `rdmsr -a` block had unlabelled values for several CPUs.
    in_order: bool,
}

impl Parser {
    /// Handle one non-blank line; false once the table is full.
    fn line(&mut self, line: &str, n: usize) -> Result<bool, ImportError> {
        let words: Vec<&str> = line.split_whitespace().take(MAX_WORDS + 1).collect();
        if words.len() > MAX_WORDS {
            return Err(ImportError::at(
                n,
                format!("more than {MAX_WORDS} words on one line: not rdmsr output"),
            ));
        }
        if let Some(rest) = line.strip_prefix("rdmsr:") {
            return Ok(self.error_line(rest.trim(), n));
        }
        if let Some(at) = words
            .iter()
            .position(|w| *w == "rdmsr" || w.ends_with("/rdmsr"))
        {
            self.command(words.get(at + 1..).unwrap_or(&[]), n);
            return Ok(true);
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(msr) = header_msr(comment.split_whitespace()) {
                self.end_block();
                self.block = Some(Block::new(msr, Cpus::InOrder, Radix::Auto, n));
            }
            return Ok(true);
        }
        if let Some(done) = self.labelled(&words, n)? {
            return Ok(done);
        }
        if let Some((msr, values)) = inline_header(&words) {
            self.end_block();
            self.block = Some(Block::new(msr, Cpus::InOrder, Radix::Auto, n));
            return self.values(values, n);
        }
        let radix = self.block.as_ref().map_or(Radix::Auto, |b| b.radix);
        if words.iter().all(|w| parse_value(w, radix).is_ok()) {
            if self.block.is_none() {
                return Err(ImportError::at(
                    n,
                    format!(
                        "`{}`: a value with no MSR named before it: put the rdmsr command line, \
                         `# 0x1a0` or `0x1a0:` before the values",
                        excerpt(line)
                    ),
                ));
            }
            return self.values(&words, n);
        }
        if is_shell_line(line) {
            self.end_block();
            self.w
                .at(n, format!("shell line `{}` ignored", excerpt(line)));
            return Ok(true);
        }
        Err(ImportError::at(
            n,
            format!(
                "`{}`: expected an rdmsr value, a line naming the MSR (the rdmsr command line, \
                 `# 0x1a0` or `0x1a0:`), `CPU N: VALUE` or `cpuN 0xADDR 0xVALUE`",
                excerpt(line)
            ),
        ))
    }

    fn end_block(&mut self) {
        if let Some(b) = self.block.take() {
            if b.unlabelled == 0 && !b.labelled {
                self.w
                    .at(b.line, format!("no value follows for MSR {:#x}", b.msr));
            }
            if b.cpus == Cpus::InOrder && b.unlabelled > 1 {
                self.in_order = true;
            }
        }
    }

    /// Unlabelled values for the CPUs of the current block.
    fn values(&mut self, words: &[&str], n: usize) -> Result<bool, ImportError> {
        for word in words {
            let Some(b) = self.block.as_mut() else {
                return Ok(true);
            };
            let value = parse_value(word, b.radix).map_err(|e| ImportError::at(n, e))?;
            let cpu = match b.cpus {
                Cpus::One(cpu) => {
                    if b.unlabelled > 0 {
                        self.w.at(
                            n,
                            format!(
                                "a second value for CPU {cpu} MSR {:#x} after a single-CPU \
                                 rdmsr: ignored",
                                b.msr
                            ),
                        );
                        continue;
                    }
                    cpu
                }
                Cpus::InOrder => {
                    let cpu = b.next;
                    b.next = b.next.saturating_add(1);
                    cpu
                }
            };
            b.unlabelled += 1;
            let msr = b.msr;
            if !self
                .table
                .put(cpu, msr, Entry::Value(value), n, &mut self.w)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `CPU 3: VALUE` (in a block) or `cpu3 0xADDR VALUE`; `None` when the line is neither.
    fn labelled(&mut self, words: &[&str], n: usize) -> Result<Option<bool>, ImportError> {
        let Some(first) = words.first() else {
            return Ok(None);
        };
        let lower = first.to_ascii_lowercase();
        let Some(after) = lower.strip_prefix("cpu") else {
            return Ok(None);
        };
        // The CPU number is in the first word (`cpu3`, `cpu3:`) or the second (`CPU 3:`).
        let (number, rest) = if after.is_empty() {
            match words.get(1) {
                Some(w) => (w.to_string(), words.get(2..).unwrap_or(&[])),
                None => return Ok(None),
            }
        } else {
            (after.to_string(), words.get(1..).unwrap_or(&[]))
        };
        let number = number.trim_end_matches(':');
        let Ok(cpu) = number.parse::<u32>() else {
            return Ok(None);
        };
        match rest {
            [value] => {
                let Some(b) = self.block.as_mut() else {
                    return Err(ImportError::at(
                        n,
                        "a `CPU N: VALUE` line with no MSR named before it: put the rdmsr \
                         command line, `# 0x1a0` or `0x1a0:` first",
                    ));
                };
                let v = parse_value(value, b.radix).map_err(|e| ImportError::at(n, e))?;
                b.labelled = true;
                let msr = b.msr;
                Ok(Some(self.table.put(
                    cpu,
                    msr,
                    Entry::Value(v),
                    n,
                    &mut self.w,
                )))
            }
            [addr, value, tail @ ..]
                if tail
                    .first()
                    .is_none_or(|t| t.starts_with('(') || t.starts_with('#')) =>
            {
                let msr = msr_number(addr.trim_end_matches(':')).ok_or_else(|| {
                    ImportError::at(n, format!("`{}` is not an MSR number (0x…)", excerpt(addr)))
                })?;
                let entry = match parse_value(value, Radix::Auto) {
                    Ok(v) => Entry::Value(v),
                    Err(_) if is_reason(value) => Entry::Unreadable(value.to_string()),
                    Err(e) => return Err(ImportError::at(n, e)),
                };
                Ok(Some(self.table.put(cpu, msr, entry, n, &mut self.w)))
            }
            _ => Ok(None),
        }
    }

    /// An rdmsr command line: start a block for the values that follow.
    fn command(&mut self, args: &[&str], n: usize) {
        self.end_block();
        match parse_command(args) {
            Ok((msr, cpus, radix)) => self.block = Some(Block::new(msr, cpus, radix, n)),
            Err(why) => self.w.at(n, format!("rdmsr command ignored: {why}")),
        }
    }

    /// rdmsr's own error messages.
    fn error_line(&mut self, rest: &str, n: usize) -> bool {
        // `CPU 3 cannot read MSR 0x000001fc`
        let words: Vec<&str> = rest.split_whitespace().collect();
        if let ["CPU", cpu, "cannot", "read", "MSR", msr] = words.as_slice() {
            if let (Ok(cpu), Some(msr)) = (cpu.parse::<u32>(), msr_number(msr)) {
                if self.block.as_ref().is_some_and(|b| b.msr == msr) {
                    // rdmsr stops at the first failing CPU: the block is over.
                    self.end_block_quietly();
                }
                return self
                    .table
                    .put(cpu, msr, Entry::Unreadable("EIO".into()), n, &mut self.w);
            }
        }
        self.w.at(n, format!("rdmsr said `{}`", excerpt(rest)));
        true
    }

    fn end_block_quietly(&mut self) {
        if let Some(b) = self.block.take() {
            if b.cpus == Cpus::InOrder && b.unlabelled > 1 {
                self.in_order = true;
            }
        }
    }
}

/// The MSR named by a `#` comment: its first word that is `0x…`, after an optional `MSR`.
fn header_msr<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<u32> {
    let mut first = words.next()?;
    if first.eq_ignore_ascii_case("msr") || first.eq_ignore_ascii_case("register") {
        first = words.next()?;
    }
    let first = first.trim_end_matches([':', ',']);
    if first.starts_with("0x") || first.starts_with("0X") {
        msr_number(first)
    } else {
        None
    }
}

/// `0x1a0: v v …` or `MSR 0x1a0: v …`: the MSR and the values on the line.
fn inline_header<'a, 'b>(words: &'b [&'a str]) -> Option<(u32, &'b [&'a str])> {
    let (addr, rest) = match words {
        [m, addr, rest @ ..] if m.eq_ignore_ascii_case("msr") => (*addr, rest),
        [addr, rest @ ..] => (*addr, rest),
        [] => return None,
    };
    let addr = addr.strip_suffix(':')?;
    if !(addr.starts_with("0x") || addr.starts_with("0X")) {
        return None;
    }
    Some((msr_number(addr)?, rest))
}

/// A word that explains why a value is missing (`EIO`, `unreadable`, `n/a`): it has a
/// letter that is not a hex digit, so it cannot be a mistyped value.
fn is_reason(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 32
        && word
            .chars()
            .any(|c| c.is_ascii_alphabetic() && !c.is_ascii_hexdigit())
        && !word.starts_with("0x")
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
}

/// A shell prompt or trace line: `$ cmd`, `+ cmd`, `user@host:~$ cmd`, `user@host:~$`.
fn is_shell_line(line: &str) -> bool {
    line.starts_with("$ ")
        || line.starts_with("+ ")
        || line.starts_with("> ")
        || line.starts_with("% ")
        || line.contains("$ ")
        || line.contains("# ")
        || line.ends_with('$')
}

/// An MSR number as rdmsr reads it (`strtoul` with base 0: `0x1a0`, `0640`, `416`).
fn msr_number(s: &str) -> Option<u32> {
    c_number(s).and_then(|n| u32::try_from(n).ok())
}

/// A C integer literal (base 0): hex with `0x`, octal with a leading `0`, else decimal.
fn c_number(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return hex_digits(h);
    }
    if s.len() > 1 && s.starts_with('0') {
        let o = s.get(1..)?;
        if o.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return u64::from_str_radix(o, 8).ok();
        }
        return None;
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    None
}

fn hex_digits(h: &str) -> Option<u64> {
    if h.is_empty() || h.len() > 16 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

/// The MSR, CPUs and value format of an rdmsr command line (its arguments after `rdmsr`).
fn parse_command(args: &[&str]) -> Result<(u32, Cpus, Radix), String> {
    let mut cpus = Cpus::One(0);
    let mut radix = Radix::Hex;
    let mut reg: Option<&str> = None;
    let mut i = 0;
    let cpu_arg = |s: Option<&&str>| -> Result<u32, String> {
        let s = s.ok_or("-p without a CPU number")?;
        c_number(s)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("`{}` is not a CPU number", excerpt(s)))
    };
    while let Some(&word) = args.get(i) {
        i += 1;
        // Shell syntax after the command ends it: a redirection (`2>&1`, `>out`) at once,
        // `;`, `|`, `&&`, `)` or a backquote after what precedes them (`$m;`).
        if word.contains(['<', '>']) || word.starts_with('#') {
            break;
        }
        let (arg, last) = match word.find([';', '|', '&', '`', ')']) {
            Some(0) => break,
            Some(p) => (word.get(..p).unwrap_or(""), true),
            None => (word, false),
        };
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match name {
                "all" => cpus = Cpus::InOrder,
                "processor" | "cpu" => {
                    let v = match value {
                        Some(v) => Some(v),
                        None => {
                            i += 1;
                            args.get(i - 1).copied()
                        }
                    };
                    cpus = Cpus::One(cpu_arg(v.as_ref())?);
                }
                "hexadecimal" | "capital-hexadecimal" | "capital-hex" => radix = Radix::Hex,
                "decimal" | "signed-decimal" => radix = Radix::Signed,
                "unsigned-decimal" | "unsigned" => radix = Radix::Unsigned,
                "octal" => radix = Radix::Octal,
                "c-language" => {}
                "zero-fill" | "zero-pad" => {}
                "raw" => return Err("raw binary output (--raw) cannot be read back".into()),
                "bitfield" => {
                    return Err("bit-field output (--bitfield) is not a whole MSR value".into())
                }
                "" => {
                    reg = args.get(i).copied();
                    break;
                }
                other => return Err(format!("unknown option --{}", excerpt(other))),
            }
            if last {
                break;
            }
            continue;
        }
        if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (k, ch) in cluster.char_indices() {
                match ch {
                    'a' => cpus = Cpus::InOrder,
                    'x' | 'X' => radix = Radix::Hex,
                    'd' => radix = Radix::Signed,
                    'u' => radix = Radix::Unsigned,
                    'o' => radix = Radix::Octal,
                    'c' => {}
                    '0' => {}
                    'r' => return Err("raw binary output (-r) cannot be read back".into()),
                    'f' => return Err("bit-field output (-f) is not a whole MSR value".into()),
                    'p' => {
                        let attached = cluster.get(k + 1..).filter(|s| !s.is_empty());
                        let v = match attached {
                            Some(v) => v,
                            None => {
                                i += 1;
                                args.get(i - 1).copied().ok_or("-p without a CPU number")?
                            }
                        };
                        cpus = Cpus::One(cpu_arg(Some(&v))?);
                        break;
                    }
                    other => return Err(format!("unknown option -{other}")),
                }
            }
            if last {
                break;
            }
            continue;
        }
        if reg.is_some() {
            return Err(format!("more than one register (`{}`)", excerpt(arg)));
        }
        reg = Some(arg);
        if last {
            break;
        }
    }
    let reg = reg.ok_or("no register named")?;
    let msr =
        msr_number(reg).ok_or_else(|| format!("register `{}` is not a number", excerpt(reg)))?;
    Ok((msr, cpus, radix))
}

/// One value as rdmsr printed it in `radix`.
fn parse_value(word: &str, radix: Radix) -> Result<u64, String> {
    let bad = |what: &str| format!("`{}` is not {what}", excerpt(word));
    let w = word.trim_end_matches(',');
    if let Some(inner) = w.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        // `rdmsr -r -c`: the 8 bytes, low first.
        let bytes: Vec<&str> = inner.split(',').map(str::trim).collect();
        if bytes.len() != 8 {
            return Err(bad("8 bytes {0x.., …}"));
        }
        let mut v = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            let b = b
                .strip_prefix("0x")
                .and_then(|h| (h.len() <= 2).then_some(h))
                .and_then(hex_digits)
                .ok_or_else(|| bad("8 bytes {0x.., …}"))?;
            v |= b << (8 * i);
        }
        return Ok(v);
    }
    let hex = |h: &str| hex_digits(h).ok_or_else(|| bad("a 64-bit hex value"));
    let unsigned = |d: &str| {
        if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) {
            d.parse::<u64>().map_err(|_| bad("a 64-bit decimal value"))
        } else {
            Err(bad("a decimal value"))
        }
    };
    let signed = |d: &str| -> Result<u64, String> {
        let (neg, digits) = match d.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, d),
        };
        let m = unsigned(digits)?;
        if !neg {
            return Ok(m);
        }
        // rdmsr -d prints a value with bit 63 set as -(value without bit 63).
        if m >= 1 << 63 {
            return Err(bad("a value rdmsr -d prints"));
        }
        Ok((1 << 63) | m)
    };
    match radix {
        Radix::Auto => {
            if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
                hex(h)
            } else if let Some(d) = w.strip_suffix('U') {
                unsigned(d)
            } else if w.starts_with('-') {
                signed(w)
            } else {
                hex(w)
            }
        }
        Radix::Hex => hex(w
            .strip_prefix("0x")
            .or_else(|| w.strip_prefix("0X"))
            .unwrap_or(w)),
        Radix::Signed => signed(w),
        Radix::Unsigned => unsigned(w.strip_suffix('U').unwrap_or(w)),
        Radix::Octal => {
            let o = w.trim_start_matches('0');
            if o.is_empty() && !w.is_empty() {
                return Ok(0);
            }
            if o.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                u64::from_str_radix(o, 8).map_err(|_| bad("a 64-bit octal value"))
            } else {
                Err(bad("an octal value"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(imp: &Imported, cpu: u32) -> Vec<(u32, u64)> {
        imp.snapshot.msr.as_ref().unwrap().cpus[&cpu]
            .values
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    #[test]
    fn transcript_of_rdmsr_a() {
        let text = "timmy@unicorn:~$ sudo rdmsr -a 0x19a\n8\n8\n8\n8\ntimmy@unicorn:~$ \n";
        let imp = parse_rdmsr(text, "t").unwrap();
        let msr = imp.snapshot.msr.as_ref().unwrap();
        assert_eq!(msr.cpus.len(), 4);
        assert_eq!(values(&imp, 3), [(0x19a, 8)]);
        assert_eq!(msr.selection, "0x19a");
        assert_eq!(imp.snapshot.meta.cpus_online.as_deref(), Some("0-3"));
        let w = imp.warnings.join("\n");
        assert!(w.contains("shell line"), "{w}");
        assert!(w.contains("in the order printed"), "{w}");
    }

    #[test]
    fn a_transcript_that_writes_and_reads_again() {
        // A value that drifted on CPU 0: read, written, read again.
        let text = "$ sudo rdmsr -a 0x38f\nf\n70000000f\n$ sudo wrmsr -a 0x38f 0x70000000f\n\
                    $ sudo rdmsr -a 0x38f\n70000000f\n70000000f\n";
        let imp = parse_rdmsr(text, "t").unwrap();
        assert_eq!(values(&imp, 0), [(0x38f, 0x7_0000_000f)]);
        assert!(imp
            .warnings
            .iter()
            .any(|w| w.contains("given again: 0xf before")));
    }

    #[test]
    fn labelled_forms() {
        let text = "cpu0 0x1a0 0x850089\ncpu 1 0x1a0 850089 (IA32_MISC_ENABLE)\n\
                    cpu2 0x1fc EIO\ncpu3: 0x1fc 0x2c005d\n";
        let imp = parse_rdmsr(text, "t").unwrap();
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        let msr = imp.snapshot.msr.as_ref().unwrap();
        assert_eq!(values(&imp, 1), [(0x1a0, 0x850089)]);
        assert_eq!(msr.cpus[&2].unreadable[&0x1fc], "EIO");
        assert_eq!(values(&imp, 3), [(0x1fc, 0x2c005d)]);
        assert_eq!(msr.selection, "0x1a0,0x1fc");
    }

    #[test]
    fn new_msr_tools_labels_cpus() {
        let text = "rdmsr -a 0x1a0\nCPU 3: 850089\nCPU 1: 850088\n";
        let imp = parse_rdmsr(text, "t").unwrap();
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        assert_eq!(values(&imp, 3), [(0x1a0, 0x850089)]);
        assert_eq!(values(&imp, 1), [(0x1a0, 0x850088)]);
    }

    #[test]
    fn headers_and_loops() {
        // `for m in 0x1a0 0x1fc; do echo "$m: $(rdmsr -a $m)"; done`
        let text = "0x1a0: 850089\n850089\n0x1fc: 2c005d\n2c005f\n# 0x38f\n7000000ff\n\
                    # a comment\nMSR 0xe2: 1e008008 1e008008\n";
        let imp = parse_rdmsr(text, "t").unwrap();
        assert_eq!(
            values(&imp, 1),
            [(0xe2, 0x1e008008), (0x1a0, 0x850089), (0x1fc, 0x2c005f)]
        );
        assert_eq!(values(&imp, 0).len(), 4);
    }

    #[test]
    fn value_variants() {
        for (cmd, out, want) in [
            ("rdmsr -X 0x1a0", "850089", 0x850089u64),
            ("rdmsr -x 0x1a0", "4000850089", 0x40_0085_0089),
            ("rdmsr -0 0x1a0", "0000000000850089", 0x850089),
            ("rdmsr -c 0x1a0", "0x850089", 0x850089),
            ("rdmsr -0X 0x1A0", "00000040008500A9", 0x40_0085_00a9),
            ("rdmsr -u 0x1a0", "8716425", 8_716_425),
            ("rdmsr -u -c 0x1a0", "8716425U", 8_716_425),
            ("rdmsr -d 0x1a0", "8716425", 8_716_425),
            ("rdmsr -d 0x1a0", "-1", (1 << 63) | 1),
            ("rdmsr -o 0x1a0", "41200211", 0o41200211),
            ("rdmsr -o -c 0x1a0", "041200211", 0o41200211),
            ("rdmsr --decimal --processor=2 416", "12", 12),
            ("rdmsr -p2 0640", "c", 0xc),
            ("rdmsr -p 2 0x1a0 2>&1", "c", 0xc),
        ] {
            let imp = parse_rdmsr(&format!("{cmd}\n{out}\n"), "t")
                .unwrap_or_else(|e| panic!("{cmd}: {e}"));
            let msr = imp.snapshot.msr.unwrap();
            let (cpu, c) = msr.cpus.iter().next().unwrap();
            let (reg, v) = c.values.iter().next().unwrap();
            assert_eq!(*reg, 0x1a0, "{cmd}");
            assert_eq!(*v, want, "{cmd}");
            if cmd.contains("-p") || cmd.contains("processor") {
                assert_eq!(*cpu, 2, "{cmd}");
            } else {
                assert_eq!(*cpu, 0, "{cmd}");
            }
        }
        assert_eq!(
            parse_value("{0x89,0x00,0x85,0x00,0x00,0x00,0x00,0x00}", Radix::Auto),
            Ok(0x850089)
        );
        assert_eq!(parse_value("-5", Radix::Auto), Ok((1 << 63) | 5));
        assert_eq!(parse_value("5U", Radix::Auto), Ok(5));
        assert!(parse_value("12345678901234567", Radix::Hex).is_err());
        assert!(parse_value("-9223372036854775808", Radix::Signed).is_err());
        assert!(parse_value("18446744073709551616", Radix::Unsigned).is_err());
        assert!(parse_value("9", Radix::Octal).is_err());
        assert_eq!(parse_value("000", Radix::Octal), Ok(0));
    }

    #[test]
    fn register_numbers_in_every_base() {
        assert_eq!(msr_number("0x1a0"), Some(0x1a0));
        assert_eq!(msr_number("0640"), Some(0o640));
        assert_eq!(msr_number("416"), Some(416));
        assert_eq!(msr_number("0xc0000080"), Some(0xc000_0080));
        assert_eq!(msr_number("0x100000000"), None);
        assert_eq!(msr_number("$m"), None);
        assert_eq!(msr_number("089"), None);
    }

    #[test]
    fn rdmsr_errors_record_unreadable() {
        let text = "rdmsr -a 0x1fc\n2c005d\nrdmsr: CPU 1 cannot read MSR 0x000001fc\n\
                    rdmsr: No CPU 9\n";
        let imp = parse_rdmsr(text, "t").unwrap();
        let msr = imp.snapshot.msr.as_ref().unwrap();
        assert_eq!(msr.cpus[&1].unreadable[&0x1fc], "EIO");
        assert_eq!(values(&imp, 0), [(0x1fc, 0x2c005d)]);
        assert!(imp.warnings.iter().any(|w| w.contains("No CPU 9")));
    }

    #[test]
    fn refused_commands_and_lines() {
        // -f and -r cannot give whole values: their block is ignored, its values refused.
        let e = parse_rdmsr("rdmsr -f 3:0 0x1a0\n9\n", "t").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let e = parse_rdmsr("850089\n", "t").unwrap_err();
        assert!(e.to_string().contains("no MSR named before it"), "{e}");
        let e = parse_rdmsr("# 0x1a0\nhello there\n", "t").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().contains("expected an rdmsr value"), "{e}");
        let e = parse_rdmsr("", "t").unwrap_err();
        assert!(e.to_string().contains("no MSR value found"), "{e}");
        let e = parse_rdmsr("# 0x1a0\n", "t").unwrap_err();
        assert!(e.to_string().contains("no MSR value found"), "{e}");
        let e = parse_rdmsr("cpu0 0x1a0 0x1234567890abcdef0\n", "t").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse_rdmsr("CPU 3: 12\n", "t").unwrap_err();
        assert!(e.to_string().contains("no MSR named"), "{e}");
        let imp = parse_rdmsr("for m in 0x1a0; do rdmsr -a $m; done\n# 0x1a0\n1\n", "t").unwrap();
        assert!(
            imp.warnings[0].contains("rdmsr command ignored"),
            "{:?}",
            imp.warnings
        );
    }

    #[test]
    fn single_cpu_commands_take_one_value() {
        let imp = parse_rdmsr("rdmsr -p 5 0x10\n1\n2\n", "t").unwrap();
        assert_eq!(values(&imp, 5), [(0x10, 1)]);
        assert!(imp.warnings[0].contains("a second value"));
    }

    #[test]
    fn value_count_is_bounded() {
        use std::fmt::Write as _;
        let limit = 1000;
        let mut text = String::new();
        for i in 0..(limit + 5) {
            let _ = writeln!(text, "cpu0 {i:#x} 0");
        }
        let imp = parse_rdmsr_limited(&text, "t", limit).unwrap();
        assert!(imp.warnings.iter().any(|w| w.contains("was not imported")));
        assert_eq!(imp.snapshot.msr.unwrap().cpus[&0].values.len(), limit);
        // Unlabelled values past the highest CPU number are left out with a warning.
        let mut text = String::from("rdmsr -a 0x10\n");
        for _ in 0..(super::super::MAX_CPU as usize + 3) {
            text.push_str("0\n");
        }
        let imp = parse_rdmsr(&text, "t").unwrap();
        assert_eq!(
            imp.snapshot.msr.unwrap().cpus.len(),
            super::super::MAX_CPU as usize + 1
        );
        assert!(imp.warnings.iter().any(|w| w.contains("is beyond")));
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        for text in [
            "\u{0}\u{1}\u{2}",
            "cpu",
            "cpu x y z",
            "0x: 1",
            "MSR",
            "rdmsr",
            "rdmsr -p",
            "rdmsr --cpu",
            "rdmsr -p -1 0x10\n1\n",
            "# 0xffffffffff\n1\n",
            "{0x1,0x2}\n",
            "ÿÿÿ 0x1a0: é",
            &"0 ".repeat(70_000),
        ] {
            assert!(parse_rdmsr(text, "t").is_err(), "{text:?}");
        }
    }
}
