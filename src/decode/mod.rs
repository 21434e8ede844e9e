//! Decoders: bytes and values in, named fields out. No IO here.

pub mod msr;
pub mod mtrr;
pub mod pci;

use serde::Serialize;

/// One decoded bit field of a register value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    /// `C1E_ENABLE`, `MSIX.Enable`, `PA3`…
    pub name: String,
    /// The field's bits within the register.
    pub mask: u64,
    /// The field's value, shifted down to bit 0.
    pub value: u64,
    /// What the value means (`WC`, `D3hot`, `enabled`), when the field has named values.
    pub meaning: Option<String>,
}

impl Field {
    /// `25`, or `7:0` for a field of several bits.
    pub fn bits(&self) -> String {
        bit_range(self.mask)
    }
}

/// A mask written as a bit range: `25`, `7:0`, or a list for a mask with holes.
pub fn bit_range(mask: u64) -> String {
    if mask == 0 {
        return String::from("-");
    }
    let lo = mask.trailing_zeros();
    let hi = 63 - mask.leading_zeros();
    let contiguous = (mask >> lo).count_ones() == hi - lo + 1;
    if hi == lo {
        format!("{lo}")
    } else if contiguous {
        format!("{hi}:{lo}")
    } else {
        let mut bits = Vec::new();
        for b in (0..64).rev() {
            if mask & (1 << b) != 0 {
                bits.push(b.to_string());
            }
        }
        bits.join(",")
    }
}

/// The value of the bits in `mask`, shifted down.
pub fn extract(value: u64, mask: u64) -> u64 {
    if mask == 0 {
        0
    } else {
        (value & mask) >> mask.trailing_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(bit_range(1 << 25), "25");
        assert_eq!(bit_range(0xff), "7:0");
        assert_eq!(bit_range(0x6000000), "26:25");
        assert_eq!(bit_range(0x5), "2,0");
        assert_eq!(extract(0x440001, 1 << 22), 1);
        assert_eq!(extract(0xabcd, 0xff0), 0xbc);
    }
}
