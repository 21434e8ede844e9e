//! `regdrift explore`: the interactive TUI (ratatui + crossterm). A live machine (or a
//! second snapshot) side by side with a baseline: a navigator of CPUs/MSRs, MTRRs and
//! PCI devices with the divergences marked, the diverging bits lit, the fields decoded
//! and the likely owners named.
//!
//! Shape: [`model`] (data, built off the UI thread) → [`app`] (state, `Action`,
//! `update`) → [`ui`] (rendering, a pure function of the app). [`worker`] captures and
//! loads on its own thread and sends typed messages; [`term`] owns the terminal.

pub mod app;
pub mod keymap;
pub mod model;
pub mod search;
pub mod tree;
pub mod ui;
pub mod view;
