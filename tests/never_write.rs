//! regdrift never writes to hardware: the code that reads MSR devices, CPUID devices and
//! PCI config files opens them read-only, and nothing else in the crate opens a file for
//! writing except the output writers and the test fixture builder.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines that can open or change a file for writing.
const WRITE_APIS: [&str; 10] = [
    "OpenOptions",
    "fs::write(",
    "File::create",
    "O_WRONLY",
    "O_RDWR",
    "write_at(",
    "write_all_at(",
    "set_permissions",
    "wrmsr",
    "libc::pwrite",
];

/// Files allowed to write: outputs (atomically), recordings (append-only), fixtures that
/// tests and generators build, and exports.
fn allowed(path: &str) -> bool {
    path.ends_with("src/atomic.rs")
        || path.contains("src/fixture/")
        || path.contains("src/record/")
        || path.contains("src/tui/")
}

#[test]
fn only_output_code_opens_files_for_writing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 10);
    let mut offenders = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let text = fs::read_to_string(f).unwrap();
        // Unit tests inside a file may build fixtures.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            if WRITE_APIS.iter().any(|api| l.contains(api)) && !allowed(&rel) {
                offenders.push(format!("{rel}:{}: {}", n + 1, l));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "write paths outside the output code:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn hardware_is_opened_read_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/capture"), &mut files);
    for f in files {
        let whole = fs::read_to_string(&f).unwrap();
        // Unit tests at the end of a file build their own fixture files.
        let text = whole.split("#[cfg(test)]").next().unwrap();
        for api in WRITE_APIS {
            assert!(
                !text.contains(api),
                "{} mentions {api}: capture must only read",
                f.display()
            );
        }
        for (n, line) in text.lines().enumerate() {
            if line.contains("File::open") || line.contains("fs::File::open") {
                // File::open is read-only by definition; anything else must not appear.
                continue;
            }
            assert!(
                !line.contains(".write(true)") && !line.contains(".append(true)"),
                "{}:{}: {line}",
                f.display(),
                n + 1
            );
        }
    }
}
