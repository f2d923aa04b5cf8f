//! Files that must be whole or absent after a crash or a power cut: written to a temporary
//! sibling, flushed to disk, renamed over the target, and the directory flushed, so a reader
//! never sees a truncated one under the real name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably, with permissions `mode` (e.g. `0o600`).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Flushes `dir`'s entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes every file and folder under `dir`, and `dir` itself, to disk (a tree about to be
/// renamed into place).
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// The secret kept in `path`, made on first use from 32 bytes of `/dev/urandom` that `encode`
/// turns into text, and written with [`write`] (owner-only): a key that must survive restarts
/// (MLflow's Fernet key, the webhook secret). An existing non-empty file is trusted as it is.
pub fn kept_secret(path: &Path, encode: impl FnOnce(&[u8; 32]) -> String) -> io::Result<String> {
    if let Ok(key) = fs::read_to_string(path)
        && !key.trim().is_empty()
    {
        return Ok(key.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let key = encode(&bytes);
    write(path, key.as_bytes(), 0o600)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_secret_is_made_once_owner_only_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("key");
        let key = kept_secret(&path, |b| b.iter().map(|x| format!("{x:02x}")).collect()).expect("key");
        assert_eq!(key.len(), 64);
        assert_eq!(kept_secret(&path, |_| unreachable!("kept")).expect("again"), key);
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key")], "no temporary file left");
    }

    #[test]
    fn a_write_replaces_the_file_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        write(&path, b"first, longer", 0o644).expect("write");
        write(&path, b"second", 0o644).expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"second");
    }
}
