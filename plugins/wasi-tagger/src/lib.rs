//! A logwasm plugin (ABI v1, through logwasm_sdk) built for wasm32-wasi: in `init` it reads a
//! list of words with Rust's std (`std::fs::read_to_string`) from the file named by the option
//! `words_file`, which must lie under a directory the transform preopens (`wasi = true`,
//! `wasi_preopens = [...]`). Each line then becomes `{"message": <line>, "tags": [<words the line
//! contains>]}`, in the list's order.
//!
//! The list: one word per line; blank lines and lines starting with `#` are skipped. A missing
//! option or a file the host will not open refuses the options, so the transform does not start:
//! the error names the path and the host's refusal (e.g. "Capabilities insufficient").

use logwasm_sdk::{export_plugin, Output, Plugin};
use serde_json::{json, Value};

struct Tagger {
    words: Vec<String>,
}

impl Plugin for Tagger {
    fn init(options: &str) -> Result<Self, String> {
        let options: Value = serde_json::from_str(options).map_err(|e| format!("options are not JSON: {e}"))?;
        let path = options
            .get("words_file")
            .and_then(Value::as_str)
            .ok_or_else(|| String::from("option \"words_file\" (a file under a WASI preopen) is required"))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read words_file \"{path}\": {e}"))?;
        let words: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|w| !w.is_empty() && !w.starts_with('#'))
            .map(String::from)
            .collect();
        // Goes to the host through WASI fd_write (stderr): captured, not printed by the agent.
        eprintln!("wasi_tagger: {} words from {path}", words.len());
        Ok(Tagger { words })
    }

    fn process(&mut self, line: &[u8]) -> Output {
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(_) => return Output::Error(String::from("line is not UTF-8")),
        };
        let tags: Vec<&str> = self.words.iter().filter(|w| text.contains(w.as_str())).map(String::as_str).collect();
        Output::Emit(json!({ "message": text, "tags": tags }).to_string().into_bytes())
    }
}

export_plugin!(Tagger);

// The WASI reactor model by hand. rustc 1.63 links a wasm32-wasi cdylib with no `_initialize`, so
// wasm-ld wraps every export in a call to the C constructors: wasi-libc then registers the
// preopens again on each call, leaking their names (about 26 bytes a call, measured) until the
// heap hits heap_memory_size. Exporting `_initialize` makes the module a reactor: the host calls
// it once per instance, before anything else, and the exports are left unwrapped.
extern "C" {
    fn __wasm_call_ctors();
}

#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the host calls `_initialize` once, before any other export (docs/plugin-abi.md).
    unsafe { __wasm_call_ctors() }
}
