//! Records what NVML reports on this machine, in the form of the fixtures under
//! `tests/fixtures/nvml/` (`<stem>.json`), and what the provider makes of it
//! (`<stem>.expected.json`): `cargo run -p gridlease-provider --example record_nvml -- DIR STEM`.
//! Without a GPU it prints why none was found and exits 1.

use std::process::ExitCode;

use gridlease_provider::inventory::{GpuDetection, detect_gpus, map_nvml_device, record_nvml};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(stem)) = (args.next(), args.next()) else {
        eprintln!("usage: record_nvml DIR STEM");
        return ExitCode::from(2);
    };
    let recording = match record_nvml() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no recording: {e}");
            return ExitCode::FAILURE;
        }
    };
    let devices: Vec<_> = recording.devices.iter().map(map_nvml_device).collect();
    let write = |name: String, value: &dyn erased::Json| {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, value.pretty() + "\n").map(|()| path)
    };
    for (name, value) in [
        (format!("{stem}.json"), &recording as &dyn erased::Json),
        (format!("{stem}.expected.json"), &devices),
    ] {
        match write(name, value) {
            Ok(path) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("cannot write: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match detect_gpus() {
        GpuDetection::Found(d) => println!("detect_gpus: {} gpu(s): {d:?}", d.len()),
        other => println!("detect_gpus: {other:?}"),
    }
    ExitCode::SUCCESS
}

mod erased {
    /// Pretty JSON of any serializable value behind one trait object.
    pub trait Json {
        fn pretty(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}
