//! regdrift: find the hardware state a kexec reboot leaves behind.
//!
//! Data flows one way: sources (read-only) → [`capture`] or [`import`] → [`snapshot`] →
//! [`diff`] (with [`decode`], [`regdb`], [`owners`]) → [`export`] and the TUI.

pub mod atomic;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod diff;
pub mod error;
pub mod export;
pub mod fixture;
pub mod import;
pub mod owners;
pub mod pciids;
pub mod record;
pub mod regdb;
pub mod report;
pub mod sanitize;
pub mod snapshot;
pub mod tui;
