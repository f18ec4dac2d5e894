//! Fuzz target: `Sdl::parse` must never panic, whatever the input; when it
//! accepts, both output shapes must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(sdl) = gridlease_sdl::Sdl::parse("fuzz.yaml", text) {
        let _ = sdl.groups_akash_json();
        let _ = sdl.manifest_akash_json();
        let _ = sdl.groups_json();
        let _ = sdl.manifest_json();
    }
});
