//! Files the daemon must never lose half of: written to a temporary file in the same folder,
//! flushed to disk, renamed over the old one and the folder flushed too, so that after a crash
//! or a power loss the path holds either the old bytes or the new ones, never a prefix of
//! either (and never a zero-length file).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be written durably.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path} durably ({step}): {source}")]
pub struct DurableWriteError {
    pub path: PathBuf,
    /// What was being done: `create the folder`, `write`, `fsync`, `rename`, `fsync the folder`.
    pub step: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically and durably, readable and writable by the owner only
/// (`mode`, e.g. `0o600`). Creates the parent folder (mode `0o700`) when it is missing.
pub fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DurableWriteError> {
    let fail = |step: &'static str| {
        move |source| DurableWriteError { path: path.to_owned(), step, source }
    };
    let (dir, tmp) = staged(path, ".tmp").map_err(fail("create the folder"))?;
    write_flushed(&tmp, bytes, mode).map_err(|(step, e)| fail(step)(e))?;
    std::fs::rename(&tmp, path).map_err(fail("rename"))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail("fsync the folder"))
}

/// Like [`write_durably`], but never over an existing file: `AlreadyExists` (step `link`)
/// when `path` is there. The bytes are written and flushed under a temporary name of this
/// process, then linked to `path` in one step, so `path` is whole or absent.
pub fn create_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DurableWriteError> {
    let fail = |step: &'static str| {
        move |source| DurableWriteError { path: path.to_owned(), step, source }
    };
    let (dir, tmp) =
        staged(path, &format!(".{}.new", std::process::id())).map_err(fail("create the folder"))?;
    let linked = write_flushed(&tmp, bytes, mode)
        .map_err(|(step, e)| fail(step)(e))
        .and_then(|()| std::fs::hard_link(&tmp, path).map_err(fail("link")));
    let _ = std::fs::remove_file(&tmp);
    linked?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail("fsync the folder"))
}

/// The folder of `path` (created, mode `0o700`, when missing) and the temporary file next to
/// it whose name is `path`'s with `suffix`.
fn staged<'a>(path: &'a Path, suffix: &str) -> std::io::Result<(&'a Path, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    Ok((dir, dir.join(name)))
}

/// Writes `bytes` to `tmp` readable by the owner only (`mode`) and flushes them to disk.
fn write_flushed(
    tmp: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), (&'static str, std::io::Error)> {
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| ("create the temporary file", e))?;
    // `mode` only applies to a file that did not exist: a leftover temporary file keeps its
    // old permissions unless they are set again.
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| ("chmod", e))?;
    file.write_all(bytes).map_err(|e| ("write", e))?;
    file.sync_all().map_err(|e| ("fsync", e))
}

/// Removes `path` (a missing file is fine) and flushes its folder, so the removal survives a
/// crash.
pub fn remove_durably(path: &Path) -> Result<(), DurableWriteError> {
    let fail = |step: &'static str| {
        move |source| DurableWriteError { path: path.to_owned(), step, source }
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail("remove")(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail("fsync the folder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("records").join("a.json");
        write_durably(&path, b"first", 0o600).expect("write");
        write_durably(&path, b"second", 0o600).expect("overwrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode =
            std::fs::metadata(path.parent().expect("parent")).expect("meta").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["a.json"], "no temporary file is left behind");
    }

    #[test]
    fn create_never_overwrites_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        create_durably(&path, b"first", 0o600).expect("create");
        let e = create_durably(&path, b"second", 0o600).expect_err("exists");
        assert_eq!(e.source.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["key.json"], "no temporary file is left behind");
    }

    #[test]
    fn a_leftover_temporary_file_does_not_leak_its_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        std::fs::write(dir.path().join("a.json.tmp"), b"junk").expect("leftover");
        std::fs::set_permissions(
            dir.path().join("a.json.tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        write_durably(&path, b"x", 0o600).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn removing_a_missing_file_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        remove_durably(&dir.path().join("nope")).expect("missing is fine");
        let path = dir.path().join("a");
        write_durably(&path, b"x", 0o600).expect("write");
        remove_durably(&path).expect("remove");
        assert!(!path.exists());
    }
}
