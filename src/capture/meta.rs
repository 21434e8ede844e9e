//! Snapshot meta data: kernel release, command line, boot id, host name, modules, online
//! CPUs. Each is optional: a missing file is recorded as a problem, never fatal.

use std::fs;
use std::io::Read;
use std::path::Path;

use procfs_core::FromBufRead;

use crate::snapshot::{Meta, Problem};

fn read_line(root: &Path, rel: &str, meta: &mut Meta) -> Option<String> {
    let path = root.join(rel);
    let mut s = String::new();
    match fs::File::open(&path).and_then(|f| f.take(1 << 16).read_to_string(&mut s)) {
        Ok(_) => Some(s.trim_end_matches(['\n', '\0']).to_string()),
        Err(e) => {
            meta.problems
                .push(Problem::new("meta", Some(&path), format!("missing: {e}")));
            None
        }
    }
}

pub fn fill(root: &Path, meta: &mut Meta) {
    meta.kernel_release = read_line(root, "proc/sys/kernel/osrelease", meta);
    meta.cmdline = read_line(root, "proc/cmdline", meta);
    meta.boot_id = read_line(root, "proc/sys/kernel/random/boot_id", meta);
    meta.hostname = read_line(root, "proc/sys/kernel/hostname", meta);
    meta.cpus_online = read_line(root, "sys/devices/system/cpu/online", meta);
    let path = root.join("proc/modules");
    match fs::File::open(&path) {
        Ok(f) => match procfs_core::KernelModules::from_buf_read(std::io::BufReader::new(f)) {
            Ok(m) => {
                let mut names: Vec<String> = m.0.into_keys().collect();
                names.sort();
                meta.modules = Some(names);
            }
            Err(e) => meta.problems.push(Problem::new(
                "meta",
                Some(&path),
                format!("unreadable: {e}"),
            )),
        },
        Err(e) => meta
            .problems
            .push(Problem::new("meta", Some(&path), format!("missing: {e}"))),
    }
    meta.captured_at =
        Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
}
