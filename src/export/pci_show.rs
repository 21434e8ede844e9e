//! A PCI device as text for `show` (an lspci -vvv-like block).

use crate::snapshot::{Bdf, PciDevice};

pub fn render_device(bdf: Bdf, dev: &PciDevice) -> String {
    format!(
        "{bdf} [{:04x}:{:04x}] class {:06x} rev {:02x}{}: {} bytes of config space\n",
        dev.vendor,
        dev.device,
        dev.class,
        dev.revision,
        dev.driver
            .as_deref()
            .map(|d| format!(", driver {}", crate::sanitize::inert(d)))
            .unwrap_or_default(),
        dev.config.len()
    )
}
