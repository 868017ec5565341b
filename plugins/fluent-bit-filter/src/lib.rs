//! A filter in the style of Fluent Bit's `examples/filter_rust` (filter_wasm, JSON event format),
//! built for wasm32-wasi as Fluent Bit's filters usually are. It is what logwasm's
//! `abi = "fluent-bit"` must run unmodified:
//!
//! `rust_filter(tag, tag_len, time_sec, time_nsec, record, record_len) -> *const u8`, returning a
//! NUL-terminated JSON object that replaces the record. Fluent Bit's documented return values:
//! an empty string (or NULL) drops the record.
//!
//! Behaviour, by the record's fields: `"level": "debug"` is dropped (empty string, and a line on
//! stderr through WASI `fd_write`); `"level": "trace"` is dropped by returning NULL;
//! `"message": "panic"` panics (a trap); `"message": "array"` returns a JSON array (not a record);
//! any other record comes back with `tag`, `time` (`sec.nsec`) and `"lang": "Rust"` added.
//!
//! Unlike the upstream example, the output lives in a static buffer until the next call: the
//! example returns a pointer into a `String` that is freed on return.

use serde_json::{json, Value};
use std::ffi::CString;
use std::os::raw::c_char;
use std::slice;

static mut OUTPUT: Option<CString> = None;

fn respond(text: String) -> *const u8 {
    // A NUL inside the JSON text cannot happen (serde_json escapes it); fall back to "" anyway.
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

#[no_mangle]
pub extern "C" fn rust_filter(tag: *const c_char, tag_len: u32, time_sec: u32, time_nsec: u32, record: *const c_char, record_len: u32) -> *const u8 {
    // SAFETY: the host passes buffers of the given lengths.
    let tag = unsafe { slice::from_raw_parts(tag as *const u8, tag_len as usize) };
    let record = unsafe { slice::from_raw_parts(record as *const u8, record_len as usize) };
    let tag = String::from_utf8_lossy(tag);
    let mut value: Value = match serde_json::from_slice(record) {
        Ok(value) => value,
        Err(_) => return respond(String::new()),
    };
    match value.get("level").and_then(Value::as_str) {
        Some("debug") => {
            eprintln!("rust_filter: dropping a debug record");
            return respond(String::new());
        }
        Some("trace") => return std::ptr::null(),
        _ => {}
    }
    match value.get("message").and_then(Value::as_str) {
        Some("panic") => panic!("asked to panic"),
        Some("array") => return respond(json!([1, 2, 3]).to_string()),
        _ => {}
    }
    if let Some(map) = value.as_object_mut() {
        map.insert("tag".into(), Value::String(tag.into_owned()));
        map.insert("time".into(), Value::String(format!("{time_sec}.{time_nsec:09}")));
        map.insert("lang".into(), Value::String("Rust".into()));
    }
    respond(value.to_string())
}
