//! `regdrift show`: a snapshot as text — meta data, what could not be read, MSRs grouped
//! over CPUs with their decoded fields, MTRR ranges with the /proc/mtrr cross-check, and
//! PCI devices decoded like `lspci -vvv`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::decode::mtrr;
use crate::regdb::RegDb;
use crate::report::cpu_list;
use crate::sanitize::inert;
use crate::snapshot::{Bdf, PciDevice, Snapshot};

pub fn render(s: &Snapshot, name: &str) -> String {
    let mut o = String::new();
    let m = &s.meta;
    let _ = writeln!(
        o,
        "snapshot {} ({} version {})",
        inert(name),
        s.format,
        s.version
    );
    let _ = writeln!(o, "  {}", s.describe());
    if let Some(c) = &m.cmdline {
        let _ = writeln!(o, "  cmdline: {}", inert(c));
    }
    if let Some(c) = &m.cpus_online {
        let _ = writeln!(o, "  cpus online: {}", inert(c));
    }
    if let Some(mods) = &m.modules {
        let _ = writeln!(o, "  modules: {}", mods.len());
    }
    let _ = writeln!(o, "  regdrift {}", inert(&m.regdrift_version));
    if !m.problems.is_empty() {
        let _ = writeln!(o, "\nnot read ({}):", m.problems.len());
        for p in &m.problems {
            let _ = writeln!(
                o,
                "  {}: {}{}",
                inert(&p.source),
                p.path
                    .as_deref()
                    .map(|p| format!("{}: ", inert(p)))
                    .unwrap_or_default(),
                inert(&p.reason)
            );
        }
    }
    if let Some(msr) = &s.msr {
        let db = RegDb::active();
        let _ = writeln!(
            o,
            "\nMSRs ({}), {} CPUs: {}",
            inert(&msr.selection),
            msr.cpus.len(),
            cpu_list(&msr.cpus.keys().copied().collect::<Vec<_>>())
        );
        // index -> value -> cpus
        let mut by_index: BTreeMap<u32, BTreeMap<Option<u64>, Vec<u32>>> = BTreeMap::new();
        for (&cpu, c) in &msr.cpus {
            for (&i, &v) in &c.values {
                by_index
                    .entry(i)
                    .or_default()
                    .entry(Some(v))
                    .or_default()
                    .push(cpu);
            }
            for &i in c.unreadable.keys() {
                by_index
                    .entry(i)
                    .or_default()
                    .entry(None)
                    .or_default()
                    .push(cpu);
            }
        }
        let mut unreadable: BTreeMap<Vec<u32>, Vec<u32>> = BTreeMap::new();
        for (i, groups) in &by_index {
            let readable: Vec<_> = groups.iter().filter(|(v, _)| v.is_some()).collect();
            if readable.is_empty() {
                if let Some(cpus) = groups.get(&None) {
                    unreadable.entry(cpus.clone()).or_default().push(*i);
                }
                continue;
            }
            let asym = groups.len() > 1;
            for (v, cpus) in groups {
                let where_ = if cpus.len() == msr.cpus.len() {
                    String::new()
                } else {
                    format!("  cpus {}", cpu_list(cpus))
                };
                let Some(v) = v else {
                    let _ = writeln!(o, "  {i:#010x} {:<32} unreadable{where_}", db.msr_name(*i));
                    continue;
                };
                let vol = db
                    .msr(*i)
                    .and_then(|d| d.volatile)
                    .map(|_| "  (volatile)")
                    .unwrap_or("");
                let _ = writeln!(
                    o,
                    "  {i:#010x} {:<32} {v:#018x}{where_}{}{vol}",
                    db.msr_name(*i),
                    if asym { "  ! CPUs differ" } else { "" }
                );
                let fields: Vec<String> = db
                    .decode_msr(*i, *v)
                    .into_iter()
                    .filter(|f| f.value != 0 || f.meaning.is_some())
                    .map(|f| match f.meaning {
                        Some(m) => format!("{}={}", f.name, m),
                        None if f.mask.count_ones() == 1 => format!("{}+", f.name),
                        None => format!("{}={:#x}", f.name, f.value),
                    })
                    .collect();
                if !fields.is_empty() {
                    let opts = textwrap::Options::new(80)
                        .initial_indent("      ")
                        .subsequent_indent("      ");
                    for l in textwrap::wrap(&fields.join(" "), opts) {
                        let _ = writeln!(o, "{l}");
                    }
                }
            }
        }
        for (cpus, list) in unreadable {
            let _ = writeln!(
                o,
                "  unreadable on cpus {}: {} MSRs ({}{})",
                cpu_list(&cpus),
                list.len(),
                list.iter()
                    .take(6)
                    .map(|i| format!("{i:#x}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if list.len() > 6 { ", ..." } else { "" }
            );
        }
    }
    render_mtrr(&mut o, s);
    if let Some(pci) = &s.pci {
        let _ = writeln!(o, "\nPCI: {} devices", pci.devices.len());
        let devices: Vec<_> = pci.devices.iter().collect();
        for block in render_devices(&devices) {
            o.push('\n');
            o.push_str(&block);
        }
    }
    o
}

/// Each device's block, in order; a big machine's devices are decoded by a few threads.
fn render_devices(devices: &[(&Bdf, &PciDevice)]) -> Vec<String> {
    let render = |part: &[(&Bdf, &PciDevice)]| -> Vec<String> {
        part.iter()
            .map(|(bdf, dev)| crate::export::pci_show::render_device(**bdf, dev))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(devices.len().div_ceil(64))
        .max(1);
    if threads == 1 {
        return render(devices);
    }
    let chunk = devices.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .chunks(chunk)
            .map(|part| s.spawn(move || render(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn render_mtrr(o: &mut String, s: &Snapshot) {
    let states: Vec<(u32, mtrr::MtrrState)> = mtrr::cpu_states(s).into_iter().collect();
    let proc_text = s.mtrr.as_ref().and_then(|m| m.proc_mtrr.as_deref());
    if states.is_empty() && proc_text.is_none() {
        return;
    }
    let _ = writeln!(o, "\nMTRRs");
    // Group CPUs with identical state.
    let mut groups: Vec<(Vec<u32>, &mtrr::MtrrState)> = Vec::new();
    for (cpu, st) in &states {
        match groups.iter_mut().find(|(_, g)| *g == st) {
            Some((cpus, _)) => cpus.push(*cpu),
            None => groups.push((vec![*cpu], st)),
        }
    }
    for (cpus, st) in &groups {
        let _ = writeln!(
            o,
            "  cpus {}: {} default {}, {} variable ranges, fixed ranges {}{}",
            cpu_list(cpus),
            if st.enabled { "enabled," } else { "DISABLED," },
            mtrr::type_name(st.default_type),
            st.vcnt,
            if st.fixed_enabled { "on" } else { "off" },
            if groups.len() > 1 {
                "  ! CPUs differ"
            } else {
                ""
            }
        );
        for v in &st.variable {
            let _ = writeln!(o, "    reg{:02} {}", v.reg, v.describe());
        }
        if !st.missing.is_empty() {
            let _ = writeln!(o, "    {} MTRR MSRs unreadable", st.missing.len());
        }
    }
    if let Some(text) = proc_text {
        match mtrr::parse_proc_mtrr(text) {
            Ok(lines) => {
                let _ = writeln!(o, "  /proc/mtrr: {} entries", lines.len());
                if let Some((_, st)) = states.first() {
                    let d = mtrr::cross_check(st, &lines);
                    if d.is_empty() {
                        let _ = writeln!(o, "    agrees with the MSRs");
                    }
                    for w in d {
                        let _ = writeln!(o, "    ! {}", inert(&w));
                    }
                } else {
                    for l in lines {
                        let _ = writeln!(
                            o,
                            "    reg{:02}: base={:#x} size={} count={}: {}",
                            l.reg,
                            l.base,
                            mtrr::human_size(l.size),
                            l.count,
                            inert(&l.type_name)
                        );
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(o, "  /proc/mtrr not understood: {e}");
            }
        }
    }
}
