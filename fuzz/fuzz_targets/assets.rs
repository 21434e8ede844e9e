//! The register database and owner table loaders on arbitrary TOML.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(db) = regdrift::regdb::RegDb::from_toml(text) {
        for d in db.known_msrs() {
            let _ = db.decode_msr(d.index, u64::MAX);
            let _ = db.volatile_mask(d.index);
        }
    }
    if let Ok(o) = regdrift::owners::OwnerDb::from_toml(text) {
        let _ = o.for_msr(0x1fc, 2);
        let _ = o.for_pci("pcie.lnkctl", 3);
    }
});
