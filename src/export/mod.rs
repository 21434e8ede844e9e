pub mod pci_show;
