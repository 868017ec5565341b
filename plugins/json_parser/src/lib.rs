//! json_parser: a logwasm plugin, ABI v1 (see docs/plugin-abi.md).
//!
//! A line that parses as a JSON object is rewritten as compact JSON with three fields added:
//! `user_id` (copied from `metadata.user.id`), `session_id` (from `metadata.session.id`), each only
//! when present and copied as is, whatever its JSON type, and `log_size_bytes`, the input line's
//! length in bytes. Keys keep the input's order; added keys go last unless the object already had
//! that key, which is then overwritten in place. Any other line (not UTF-8, not JSON, JSON but not
//! an object, nested deeper than serde_json's limit of 128) passes through byte for byte.
//!
//! Nothing here may panic on user data: with `panic = "abort"` a panic is a wasm trap, which the
//! host counts as a failure and answers by re-instantiating the module.

use serde_json::{Map, Value};
use std::alloc::{alloc as raw_alloc, dealloc as raw_dealloc, Layout};

/// Where the output of the last `process_log` call is: read by the host after each call.
#[repr(C, align(8))]
struct ResultArea {
    ptr: u32,
    len: u32,
}

static mut RESULT: ResultArea = ResultArea { ptr: 0, len: 0 };

/// The output buffer, reused by every call; the host copies out of it before the next call.
static mut OUTPUT: Vec<u8> = Vec::new();

#[no_mangle]
pub extern "C" fn logwasm_abi_version() -> i32 {
    1
}

/// Address of the result area: two little-endian u32, output pointer then output length.
#[no_mangle]
pub extern "C" fn logwasm_result() -> i32 {
    // SAFETY: taking the address of a static does not read or write it.
    unsafe { std::ptr::addr_of!(RESULT) as i32 }
}

/// Allocates `len` bytes for the host (alignment 1). Returns 0 when `len <= 0` or memory is out.
#[no_mangle]
pub extern "C" fn alloc(len: i32) -> i32 {
    if len <= 0 {
        return 0;
    }
    match Layout::from_size_align(len as usize, 1) {
        // SAFETY: the layout has a non-zero size; a null result (out of memory) is returned as 0.
        Ok(layout) => unsafe { raw_alloc(layout) as i32 },
        Err(_) => 0,
    }
}

/// Frees what `alloc(len)` returned. Ignores 0 and non-positive lengths.
#[no_mangle]
pub extern "C" fn dealloc(ptr: i32, len: i32) {
    if ptr == 0 || len <= 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(len as usize, 1) {
        // SAFETY: the host passes back a pointer and length it got from `alloc`.
        unsafe { raw_dealloc(ptr as *mut u8, layout) }
    }
}

/// Processes the line at `ptr..ptr+len`. Always status 0 (emit): a line it cannot rewrite is
/// emitted unchanged by pointing the result area at the input itself, which costs no copy.
///
/// # Safety
/// `ptr..ptr+len` must be readable guest memory (the host's input buffer from `alloc`).
#[no_mangle]
pub unsafe extern "C" fn process_log(ptr: i32, len: i32) -> i32 {
    if len < 0 || (ptr == 0 && len > 0) {
        let message: &'static [u8] = b"process_log: invalid input pointer or length";
        RESULT.ptr = message.as_ptr() as u32;
        RESULT.len = message.len() as u32;
        return 2;
    }
    let input: &[u8] = if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr as *const u8, len as usize)
    };
    let output = &mut *std::ptr::addr_of_mut!(OUTPUT);
    output.clear();
    if rewrite(input, output) {
        RESULT.ptr = output.as_ptr() as u32;
        RESULT.len = output.len() as u32;
    } else {
        RESULT.ptr = ptr as u32;
        RESULT.len = len as u32;
    }
    0
}

/// Writes the rewritten line into `output`; false means "pass the input through unchanged".
fn rewrite(input: &[u8], output: &mut Vec<u8>) -> bool {
    let text = match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(_) => return false,
    };
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        _ => return false,
    };
    let user_id = nested_id(&object, "user");
    let session_id = nested_id(&object, "session");
    if let Some(value) = user_id {
        object.insert("user_id".to_owned(), value);
    }
    if let Some(value) = session_id {
        object.insert("session_id".to_owned(), value);
    }
    object.insert("log_size_bytes".to_owned(), Value::from(input.len() as u64));
    if serde_json::to_writer(&mut *output, &object).is_err() {
        output.clear();
        return false;
    }
    true
}

/// `metadata.<section>.id`, cloned, when every step exists and is an object.
fn nested_id(object: &Map<String, Value>, section: &str) -> Option<Value> {
    object.get("metadata")?.as_object()?.get(section)?.as_object()?.get("id").cloned()
}
