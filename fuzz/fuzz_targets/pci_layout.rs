//! The PCI capability walker and field decoders on arbitrary config bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = &data[..data.len().min(4096)];
    let layout = regdrift::decode::pci::layout(config);
    for reg in &layout.regs {
        assert!(reg.offset as usize + reg.width as usize <= config.len());
        if let Some(v) = regdrift::decode::pci::reg_value(reg, config) {
            let _ = regdrift::decode::pci::decode_reg(reg, v);
        }
    }
    for off in 0..config.len() as u16 {
        let _ = layout.reg_at(off);
        let _ = layout.cap_at(off);
    }
});
