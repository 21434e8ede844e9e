//! Atomic output: write to a temporary file beside the target, fsync, then rename over it,
//! so that a reader never sees half a file and a crash never destroys the previous one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::FileError;

/// Where an output goes: a file (written atomically) or standard output (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    /// `None` or `-` is standard output.
    pub fn from_arg(arg: Option<&Path>) -> Self {
        match arg {
            None => Output::Stdout,
            Some(p) if p.as_os_str() == "-" => Output::Stdout,
            Some(p) => Output::File(p.to_path_buf()),
        }
    }

    pub fn write(&self, bytes: &[u8]) -> Result<(), FileError> {
        match self {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                match out.write_all(bytes).and_then(|_| out.flush()) {
                    Ok(()) => Ok(()),
                    // `regdrift diff a b | head` is not an error.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    Err(source) => Err(FileError::Write {
                        path: PathBuf::from("<stdout>"),
                        source,
                    }),
                }
            }
            Output::File(path) => write_atomic(path, bytes),
        }
    }
}

/// Write `bytes` to `path` atomically. The file is created with mode 0644 (less the
/// umask): never world-writable. A path that is not a regular file (`/dev/null`, a FIFO,
/// `/dev/stdout`) is written in place: renaming over it would replace the device. A
/// symbolic link is followed, so the link stays and its target is replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => {
            let mut f = OpenOptions::new().write(true).open(path).map_err(err)?;
            return f.write_all(bytes).map_err(err);
        }
        _ => {}
    }
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        if let Ok(target) = fs::canonicalize(path) {
            return write_atomic(&target, bytes);
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| FileError::invalid(path, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        fs::write(&p, b"old contents that are longer").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o002, 0, "never world-writable");
    }

    #[test]
    fn devices_are_written_in_place_not_replaced() {
        // Regression: `-o /dev/null` renamed a regular file over /dev/null.
        write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
        let m = fs::metadata("/dev/null").unwrap();
        assert!(!m.is_file(), "/dev/null is still a device");
    }

    #[test]
    fn symlinks_keep_pointing_at_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn failure_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/out.json");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert!(e.to_string().contains("out.json"));
    }
}
