//! The byte codec of recording payloads: LEB128 varints, zigzag for signed values,
//! length-prefixed strings. Decoding never trusts a count or a length: each is checked
//! against the bytes that remain before anything is allocated.

use crate::error::ParseError;

/// Appends encoded values to a buffer.
pub(crate) struct Enc<'a>(pub &'a mut Vec<u8>);

impl Enc<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    pub fn opt_u8(&mut self, v: Option<u8>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u8(v);
            }
        }
    }
}

/// Reads encoded values from a payload, refusing anything that runs past its end.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn err(&self, what: impl std::fmt::Display) -> ParseError {
        ParseError::new(format!("{what} (payload byte {})", self.pos))
    }

    pub fn u8(&mut self) -> Result<u8, ParseError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("payload ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u(&mut self) -> Result<u64, ParseError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                self.pos = start;
                return Err(self.err("number does not fit in 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.pos = start;
        Err(self.err("number longer than 10 bytes"))
    }

    pub fn i(&mut self) -> Result<i64, ParseError> {
        let z = self.u()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub fn u32(&mut self) -> Result<u32, ParseError> {
        let v = self.u()?;
        u32::try_from(v).map_err(|_| self.err(format!("{v} does not fit in 32 bits")))
    }

    pub fn u16(&mut self) -> Result<u16, ParseError> {
        let v = self.u()?;
        u16::try_from(v).map_err(|_| self.err(format!("{v} does not fit in 16 bits")))
    }

    /// A count of elements that each take at least `min_bytes` bytes: refused when the
    /// payload cannot hold that many, so a hostile count never allocates.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, ParseError> {
        let n = self.u()?;
        let max = self.remaining() / min_bytes.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.err(format!(
                "count {n} is more than the {} bytes left can hold",
                self.remaining()
            ))),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], ParseError> {
        let n = self.count(1)?;
        let out = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| self.err("payload ends early"))?;
        self.pos += n;
        Ok(out)
    }

    pub fn str(&mut self) -> Result<&'a str, ParseError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| self.err(format!("string is not UTF-8: {e}")))
    }

    pub fn opt_str(&mut self) -> Result<Option<&'a str>, ParseError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            t => Err(self.err(format!("bad option tag {t}"))),
        }
    }

    pub fn opt_u8(&mut self) -> Result<Option<u8>, ParseError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.u8().map(Some),
            t => Err(self.err(format!("bad option tag {t}"))),
        }
    }

    /// The payload must be used up exactly.
    pub fn finish(&self) -> Result<(), ParseError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.err(format!("{} unexpected bytes at the end", self.remaining())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        let vals = [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ];
        let ints = [0i64, -1, 1, i64::MIN, i64::MAX, -300];
        let mut buf = Vec::new();
        let mut e = Enc(&mut buf);
        for v in vals {
            e.u(v);
        }
        for v in ints {
            e.i(v);
        }
        e.str("ahci");
        e.opt_str(None);
        e.opt_u8(Some(48));
        let mut d = Dec::new(&buf);
        for v in vals {
            assert_eq!(d.u().unwrap(), v);
        }
        for v in ints {
            assert_eq!(d.i().unwrap(), v);
        }
        assert_eq!(d.str().unwrap(), "ahci");
        assert_eq!(d.opt_str().unwrap(), None);
        assert_eq!(d.opt_u8().unwrap(), Some(48));
        d.finish().unwrap();
    }

    #[test]
    fn hostile_input_is_refused() {
        // 11 continuation bytes.
        let mut d = Dec::new(&[0x80; 11]);
        assert!(d.u().unwrap_err().what.contains("longer than 10 bytes"));
        // 2^70 does not fit.
        let mut d = Dec::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(d.u().unwrap_err().what.contains("64 bits"));
        // A string claiming 4 GiB in a 6-byte payload.
        let mut d = Dec::new(&[0x80, 0x80, 0x80, 0x80, 0x10, b'x']);
        assert!(d.str().unwrap_err().what.contains("count 4294967296"));
        let mut d = Dec::new(&[5]);
        assert!(d.count(1).is_err());
        assert!(Dec::new(&[]).u8().is_err());
        let mut d = Dec::new(&[1, 0]);
        d.u8().unwrap();
        assert!(d.finish().unwrap_err().what.contains("1 unexpected"));
    }
}
