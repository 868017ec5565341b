//! A filter in the style of Fluent Bit's `filter_wasm` (`Function_Name wasi_reader`), built for
//! wasm32-wasi, that touches files with Rust's std, as a filter reading a GeoIP database or a
//! lookup table would. It is the guest of logwasm's `wasi_preopens` tests: each record's `log`
//! field is a command, and the reply replaces the record.
//!
//! - `read PATH`: `{"read":"<the file's text>"}` (`std::fs::read_to_string`)
//! - `len PATH`: `{"len":N}` (`std::fs::metadata`)
//! - `write PATH TEXT`: `{"wrote":"PATH"}` (`std::fs::write`)
//!
//! Any I/O error replies `{"error":"<the error>"}`: the host's refusals show up there.

use std::ffi::CString;
use std::os::raw::c_char;
use std::slice;

static mut OUTPUT: Option<CString> = None;

fn respond(text: String) -> *const u8 {
    let c = CString::new(text).unwrap_or_default();
    // SAFETY: wasm is single-threaded; the host copies the string before the next call.
    unsafe {
        OUTPUT = Some(c);
        match &OUTPUT {
            Some(s) => s.as_ptr() as *const u8,
            None => std::ptr::null(),
        }
    }
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `log` field of `{"log":"..."}` as the host wraps a plain line (no escapes expected).
fn command(record: &str) -> Option<&str> {
    let start = record.find("\"log\":\"")? + 7;
    let end = record.rfind("\"}")?;
    record.get(start..end)
}

fn run(cmd: &str) -> String {
    let mut parts = cmd.splitn(3, ' ');
    let (verb, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let reply = match verb {
        "read" => std::fs::read_to_string(path).map(|text| format!("{{\"read\":{}}}", quote(&text))),
        "len" => std::fs::metadata(path).map(|m| format!("{{\"len\":{}}}", m.len())),
        "write" => std::fs::write(path, parts.next().unwrap_or("")).map(|()| format!("{{\"wrote\":{}}}", quote(path))),
        _ => return format!("{{\"error\":{}}}", quote(&format!("unknown command {cmd}"))),
    };
    reply.unwrap_or_else(|error| format!("{{\"error\":{}}}", quote(&error.to_string())))
}

#[no_mangle]
pub extern "C" fn wasi_reader(_tag: *const c_char, _tag_len: u32, _sec: u32, _nsec: u32, record: *const c_char, record_len: u32) -> *const u8 {
    // SAFETY: the host passes a buffer of the given length.
    let record = unsafe { slice::from_raw_parts(record as *const u8, record_len as usize) };
    let record = String::from_utf8_lossy(record);
    match command(&record) {
        Some(cmd) => respond(run(cmd)),
        None => respond(format!("{{\"error\":{}}}", quote("no log field"))),
    }
}
