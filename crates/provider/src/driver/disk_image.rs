//! Disk volumes with a hard size: each one is a sparse file holding an ext4 filesystem that the
//! runtime loop-mounts (podman's local volume driver with `type=ext4,device=FILE,o=loop`). A
//! replica that fills it gets `ENOSPC`, whatever it writes; the host's disk is never touched
//! beyond the file's size.
//!
//! The file is sized so that the filesystem offers at least the leased bytes to files: ext4
//! keeps 2 to 15 % for its journal, inode tables and group descriptors, so the file is grown
//! by what the first `mkfs` kept for itself and made again. Needs `mkfs.ext4`, `dumpe2fs` and
//! `debugfs` (e2fsprogs) on the provider's host.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DriverError;

/// The filesystem the runtime mounts.
pub const FS_TYPE: &str = "ext4";
/// The smallest file `mkfs.ext4` accepts with room for a few files.
const MIN_FILE_BYTES: u64 = 1 << 20;
/// How many times the file is grown before giving up (one is nearly always enough).
const SIZING_ROUNDS: usize = 4;

/// The image file of volume `name` under `dir`.
pub fn image_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.ext4"))
}

/// Creates (or replaces) the image of a volume offering at least `usable_bytes` to files, and
/// returns the file's size. The file is sparse: only what the filesystem and the replica
/// write takes space on the host.
pub fn create(path: &Path, usable_bytes: u64) -> Result<u64, DriverError> {
    if usable_bytes == 0 {
        return Err(DriverError::Runtime(format!(
            "volume image {}: a disk volume of 0 bytes cannot be bounded",
            path.display()
        )));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| io_error("create the volume directory", dir, e))?;
    }
    let mut size = usable_bytes.max(MIN_FILE_BYTES);
    for _ in 0..SIZING_ROUNDS {
        write_sparse(path, size)?;
        run(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0", "-L", "gridlease"]).arg(path))?;
        let free = free_bytes(path)?;
        if free >= usable_bytes {
            // `lost+found` is ext4's; tenants' programs that want an empty directory (a
            // database's data directory) would refuse the volume with it there.
            run(Command::new("debugfs").args(["-w", "-R", "rmdir lost+found"]).arg(path))?;
            return Ok(size);
        }
        // What ext4 kept for itself, an eighth more and 64 KiB: one more round nearly always
        // ends it.
        let missing = usable_bytes - free;
        size = (missing / 8)
            .checked_add(missing)
            .and_then(|grow| grow.checked_add(64 << 10))
            .and_then(|grow| size.checked_add(grow))
            .ok_or_else(|| {
                DriverError::Runtime(format!("a disk volume of {usable_bytes} bytes is too large"))
            })?;
    }
    Err(DriverError::Runtime(format!(
        "volume image {}: could not size a filesystem offering {usable_bytes} bytes",
        path.display()
    )))
}

/// Deletes the image of a volume; a missing one is not an error.
pub fn remove(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove the volume image", path, e)),
    }
}

/// A sparse file of `size` bytes, readable and writable by its owner only.
fn write_sparse(path: &Path, size: u64) -> Result<(), DriverError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("create the volume image", path, e))?;
    file.set_len(size).map_err(|e| io_error("size the volume image", path, e))
}

/// Bytes the filesystem in `path` offers to files (free blocks times block size, no blocks
/// reserved: `mkfs -m 0`).
fn free_bytes(path: &Path) -> Result<u64, DriverError> {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(path))?;
    parse_free_bytes(&out).ok_or_else(|| {
        DriverError::Runtime(format!(
            "dumpe2fs {}: no `Free blocks` and `Block size` in its output",
            path.display()
        ))
    })
}

/// `Free blocks` × `Block size` from `dumpe2fs -h`.
fn parse_free_bytes(header: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        header.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().parse().ok()).flatten()
        })
    };
    field("Free blocks")?.checked_mul(field("Block size")?)
}

/// Runs a tool of e2fsprogs and returns what it printed; a missing tool or a failure is an
/// error naming the tool and what it said.
fn run(command: &mut Command) -> Result<String, DriverError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|e| {
        DriverError::Runtime(if e.kind() == ErrorKind::NotFound {
            format!(
                "`{program}` is not installed: the podman driver needs e2fsprogs for disk volumes"
            )
        } else {
            format!("run `{program}`: {e}")
        })
    })?;
    if !output.status.success() {
        return Err(DriverError::Runtime(format!(
            "`{program}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> DriverError {
    DriverError::Runtime(format!("{action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from `dumpe2fs -h` (e2fsprogs 1.47) of a 64 MiB image.
    const HEADER: &str = "Filesystem volume name:   gridlease\nBlock count:              \
                          16384\nReserved block count:     0\nFree blocks:              \
                          14006\nFree inodes:              16373\nBlock size:               \
                          4096\n";

    #[test]
    fn free_bytes_from_dumpe2fs_header() {
        assert_eq!(parse_free_bytes(HEADER), Some(14006 * 4096));
        assert_eq!(parse_free_bytes("Block size: 4096\n"), None);
        assert_eq!(parse_free_bytes("Free blocks: x\nBlock size: 4096\n"), None);
        assert_eq!(
            parse_free_bytes(&format!("Free blocks: {}\nBlock size: 4096\n", u64::MAX)),
            None
        );
    }

    /// Runs where e2fsprogs is installed (CI installs it with podman); says so where it is not.
    #[test]
    fn the_image_offers_at_least_the_leased_bytes() {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "CI must have e2fsprogs installed");
            eprintln!("SKIPPED: mkfs.ext4 is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for usable in [1u64, 100 << 10, 16 << 20, 64 << 20, 1 << 30] {
            let path = image_path(dir.path(), "v");
            let size = create(&path, usable).unwrap();
            let free = free_bytes(&path).unwrap();
            assert!(free >= usable, "{usable}: only {free} bytes free in a {size}-byte file");
            // Not much more than asked: the overhead plus a little.
            assert!(size <= usable.max(MIN_FILE_BYTES) * 6 / 5 + (1 << 20), "{usable}: {size}");
            let on_disk =
                std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&path).unwrap()) * 512;
            assert!(on_disk < size.max(64 << 20), "{usable}: not sparse: {on_disk} of {size}");
        }
        assert!(create(&image_path(dir.path(), "zero"), 0).is_err());
        remove(&image_path(dir.path(), "v")).unwrap();
        remove(&image_path(dir.path(), "v")).unwrap();
    }
}
