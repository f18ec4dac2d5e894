//! `gridlease sdl …`: check SDL files, print their group specs and manifests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use gridlease_sdl::Sdl;

#[derive(Debug, Subcommand)]
pub enum SdlCommand {
    /// Validate SDL files: one line per problem; exit 0 only if all are valid.
    Check {
        /// SDL files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the on-chain group specs an SDL file derives.
    Groups(DeriveArgs),
    /// Print the manifest the provider receives.
    Manifest(DeriveArgs),
}

#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// SDL file.
    file: PathBuf,
    /// Output encoding.
    #[arg(long, value_enum, default_value_t = Output::Json)]
    output: Output,
    /// JSON shape: gridlease's own, or exactly Akash's (`group-specs.json`, `manifest.json`).
    #[arg(long, value_enum, default_value_t = Format::Gridlease)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    /// Pretty-printed JSON.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// gridlease's JSON shape (base units, snake_case).
    Gridlease,
    /// Akash's JSON shape.
    Akash,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs an `sdl` subcommand and returns the process exit code.
pub fn run(cmd: SdlCommand) -> Result<ExitCode> {
    match cmd {
        SdlCommand::Check { files } => check(&files),
        SdlCommand::Groups(args) => derive(&args, |sdl, format| match format {
            Format::Gridlease => sdl.groups_json(),
            Format::Akash => sdl.groups_akash_json(),
        }),
        SdlCommand::Manifest(args) => derive(&args, |sdl, format| match format {
            Format::Gridlease => sdl.manifest_json(),
            Format::Akash => sdl.manifest_akash_json(),
        }),
    }
}

fn check(files: &[PathBuf]) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let mut all_valid = true;
    for file in files {
        let name = file.display().to_string();
        let text = match read(file) {
            Ok(t) => t,
            Err(e) => {
                writeln!(stdout, "{name}: {e:#}")?;
                all_valid = false;
                continue;
            }
        };
        match Sdl::parse(&name, &text) {
            Ok(sdl) => {
                for w in sdl.warnings() {
                    eprintln!("warning: {w}");
                }
            }
            Err(errors) => {
                all_valid = false;
                for e in &errors.errors {
                    writeln!(stdout, "{e}")?;
                }
            }
        }
    }
    Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn derive(
    args: &DeriveArgs,
    render: impl Fn(&Sdl, Format) -> serde_json::Value,
) -> Result<ExitCode> {
    let name = args.file.display().to_string();
    let text = read(&args.file)?;
    let sdl = match Sdl::parse(&name, &text) {
        Ok(sdl) => sdl,
        Err(errors) => {
            for e in &errors.errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in sdl.warnings() {
        eprintln!("warning: {w}");
    }
    let Output::Json = args.output;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &render(&sdl, args.format))?;
    writeln!(stdout)?;
    Ok(ExitCode::SUCCESS)
}
