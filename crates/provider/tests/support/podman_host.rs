//! The podman host the podman suites run against (shared by the driver's tests and the
//! end-to-end test in the CLI crate): the API socket (a loud skip outside CI, a failure in CI
//! when it is missing), and the test image built locally from the host's static busybox with
//! `podman import`, since there is no registry to pull from.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use gridlease_provider::driver::podman::PodmanDriver;

pub const DEFAULT_SOCKET: &str = "/run/podman/podman.sock";
/// Bump the tag when the image's content changes.
pub const TEST_IMAGE: &str = "localhost/gridlease-test/busybox:3";
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "mkdir", "rm", "touch", "ls", "httpd", "wget", "nslookup", "sed",
    "tail", "timeout",
];

/// The socket to test against, `None` when podman is missing outside CI; an error when it is
/// missing in CI.
pub async fn podman_socket_or_skip() -> anyhow::Result<Option<String>> {
    let socket =
        std::env::var("GRIDLEASE_PODMAN_SOCKET").unwrap_or_else(|_| DEFAULT_SOCKET.to_owned());
    let problem = if Command::new("podman").arg("--version").output().is_err() {
        Some("the `podman` command is not installed".to_owned())
    } else {
        match PodmanDriver::connect(&socket).await {
            Ok(_) => None,
            Err(err) => Some(format!("the podman api does not answer: {err}")),
        }
    };
    let Some(problem) = problem else {
        return Ok(Some(socket));
    };
    if std::env::var_os("CI").is_some() {
        bail!("{problem}; CI must run the podman driver test: run .ci/podman-setup first");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPED: podman driver test: {problem}.\n\
         !! Run .ci/podman-setup (needs root) to test the podman driver for real.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    );
    Ok(None)
}

/// Builds the test image from the host's static busybox unless it exists.
pub fn ensure_test_image() -> anyhow::Result<()> {
    if Command::new("podman")
        .args(["image", "exists", TEST_IMAGE])
        .status()
        .context("run podman image exists")?
        .success()
    {
        return Ok(());
    }
    let busybox = static_busybox()?;
    let root = tempfile::tempdir()?;
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    for dir in ["tmp", "etc", "www"] {
        std::fs::create_dir_all(root.path().join(dir))?;
    }
    std::fs::copy(&busybox, bin.join("busybox"))
        .with_context(|| format!("copy {}", busybox.display()))?;
    for applet in BUSYBOX_APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let archive = root.path().join("rootfs.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&archive)
        .args(["./bin", "./tmp", "./etc", "./www"])
        .status()
        .context("run tar")?;
    ensure!(tar.success(), "tar failed building the test image");
    let archive = archive.to_str().context("temp path is not utf-8")?;
    podman(&["import", "--change", "CMD=[\"/bin/sh\"]", archive, TEST_IMAGE])?;
    Ok(())
}

/// A statically linked busybox from the host (`busybox-static` on Debian).
pub fn static_busybox() -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("GRIDLEASE_TEST_BUSYBOX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/bin/busybox", "/usr/bin/busybox"].map(PathBuf::from))
        .collect();
    for candidate in &candidates {
        if candidate.is_file() && !has_program_interpreter(candidate)? {
            return Ok(candidate.clone());
        }
    }
    bail!(
        "no static busybox at {candidates:?} to build the test image from: \
         run .ci/podman-setup or `apt-get install busybox-static`"
    )
}

/// Whether an ELF64 little-endian file asks for a dynamic loader (has a PT_INTERP header).
pub fn has_program_interpreter(path: &Path) -> anyhow::Result<bool> {
    let elf = std::fs::read(path)?;
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at =
        |at: usize| elf.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    ensure!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a little-endian ELF64 file",
        path.display()
    );
    let table = usize::try_from(u64_at(0x20).context("short elf header")?)?;
    let entry_size = usize::from(u16_at(0x36).context("short elf header")?);
    let entries = usize::from(u16_at(0x38).context("short elf header")?);
    const PT_INTERP: u32 = 3;
    for index in 0..entries {
        let kind = u32_at(table + index * entry_size).context("short program header")?;
        if kind == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Runs podman and returns its trimmed stdout; an error with its stderr when it fails.
pub fn podman(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("podman")
        .args(args)
        .output()
        .with_context(|| format!("run podman {args:?}"))?;
    ensure!(
        output.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
