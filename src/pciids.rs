//! PCI vendor, device, subsystem and class names from the pci.ids database that the
//! `pci-ids` crate embeds at build time (no file or network access at run time).

use pci_ids::{Device, FromId, Subclass, Vendor};

/// The vendor's name (`Intel Corporation`).
pub fn vendor_name(vendor: u16) -> Option<&'static str> {
    Vendor::from_id(vendor).map(|v| v.name())
}

/// The device's name (`Wi-Fi 6 AX201`).
pub fn device_name(vendor: u16, device: u16) -> Option<&'static str> {
    Device::from_vid_pid(vendor, device).map(|d| d.name())
}

/// The name of a subsystem (a board built around the device), as pci.ids lists it under
/// the device.
pub fn subsystem_name(
    vendor: u16,
    device: u16,
    subsystem_vendor: u16,
    subsystem_device: u16,
) -> Option<&'static str> {
    Device::from_vid_pid(vendor, device)?
        .subsystems()
        .find(|s| s.subvendor() == subsystem_vendor && s.subdevice() == subsystem_device)
        .map(|s| s.name())
}

/// The name of a class code (`0x010802`: class, subclass, programming interface), at the
/// level lspci prints it: the subclass name (`Non-Volatile memory controller`), or the
/// class name when the subclass is not listed.
pub fn class_name(class: u32) -> Option<&'static str> {
    let (c, s) = ((class >> 16) as u8, (class >> 8) as u8);
    match Subclass::from_cid_sid(c, s) {
        Some(sub) => Some(sub.name()),
        None => pci_ids::Class::from_id(c).map(|k| k.name()),
    }
}

/// The name of the programming interface of a class code (`NVM Express`), when listed.
pub fn prog_if_name(class: u32) -> Option<&'static str> {
    let (c, s, p) = ((class >> 16) as u8, (class >> 8) as u8, class as u8);
    Subclass::from_cid_sid(c, s)?
        .prog_ifs()
        .find(|i| i.id() == p)
        .map(|i| i.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_pci_ids() {
        assert_eq!(vendor_name(0x8086), Some("Intel Corporation"));
        assert_eq!(vendor_name(0x144d), Some("Samsung Electronics Co Ltd"));
        assert_eq!(device_name(0x8086, 0xa0f0), Some("Wi-Fi 6 AX201"));
        assert_eq!(
            device_name(0x144d, 0xa808),
            Some("NVMe SSD Controller SM981/PM981/PM983")
        );
        assert_eq!(device_name(0x8086, 0x0000), None);
        assert_eq!(vendor_name(0xfff0), None);
        assert_eq!(class_name(0x010802), Some("Non-Volatile memory controller"));
        assert_eq!(prog_if_name(0x010802), Some("NVM Express"));
        assert_eq!(class_name(0x060400), Some("PCI bridge"));
        assert_eq!(prog_if_name(0x0c0330), Some("XHCI"));
        assert_eq!(class_name(0xfe0000), None);
        assert_eq!(
            subsystem_name(0x144d, 0xa808, 0x144d, 0xa801),
            Some("SSD 970 EVO/PRO")
        );
    }
}
