//! logwasm_sdk: write a logwasm plugin (ABI v1, docs/plugin-abi.md) in safe Rust.
//!
//! ```ignore
//! use logwasm_sdk::{export_plugin, Output, Plugin};
//!
//! struct Upper;
//! impl Plugin for Upper {
//!     fn init(_options: &str) -> Result<Self, String> { Ok(Upper) }
//!     fn process(&mut self, line: &[u8]) -> Output { Output::Emit(line.to_ascii_uppercase()) }
//! }
//! export_plugin!(Upper);
//! ```
//!
//! The macro exports the whole ABI: `alloc`/`dealloc`, `init` (options JSON), `process_log`,
//! `process_batch`, `process_batch_packed`, `logwasm_result` and `logwasm_abi_version`. The SDK
//! owns every buffer the host reads: output is moved into a static buffer that lives until the
//! next call, so a plugin cannot hand the host a pointer into freed memory (the bug of the sketch
//! ABI v1 replaced).
//! Build with `panic = "abort"`: a panic is a trap, which the host isolates to the one line.

/// What a plugin does with one line.
pub enum Output {
    /// Pass the input line through unchanged (no copy).
    Keep,
    /// Replace the line with these bytes (must be UTF-8, or the host fails the line).
    Emit(Vec<u8>),
    /// Replace the line with several records. A record must not contain `\n`.
    Many(Vec<Vec<u8>>),
    /// Filter the line out on purpose.
    Drop,
    /// The plugin could not process this line; the host applies its failure policy.
    Error(String),
}

/// A plugin: built once per instance from the transform's `options` (JSON text, `{}` when
/// none), then called once per line.
pub trait Plugin: Sized {
    /// Reads the options; `Err` refuses them and the transform does not start.
    fn init(options: &str) -> Result<Self, String>;
    /// Processes one line. `line` is not guaranteed to be UTF-8.
    fn process(&mut self, line: &[u8]) -> Output;
}

/// Exports the ABI for a type implementing [`Plugin`]. Use once per crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        static mut __LOGWASM_STATE: Option<$plugin> = None;

        #[no_mangle]
        pub extern "C" fn logwasm_abi_version() -> i32 {
            $crate::rt::ABI_VERSION
        }
        #[no_mangle]
        pub extern "C" fn logwasm_result() -> i32 {
            $crate::rt::result_ptr()
        }
        #[no_mangle]
        pub extern "C" fn alloc(len: i32) -> i32 {
            $crate::rt::alloc(len)
        }
        #[no_mangle]
        pub extern "C" fn dealloc(ptr: i32, len: i32) {
            $crate::rt::dealloc(ptr, len)
        }
        #[no_mangle]
        pub extern "C" fn init(ptr: i32, len: i32) -> i32 {
            // SAFETY: wasm is single-threaded and the host calls one export at a time; the host
            // passes a block it got from `alloc` with at least `len` bytes.
            unsafe { $crate::rt::init(&mut *::std::ptr::addr_of_mut!(__LOGWASM_STATE), ptr, len) }
        }
        #[no_mangle]
        pub extern "C" fn process_log(ptr: i32, len: i32) -> i32 {
            // SAFETY: as for `init`.
            unsafe { $crate::rt::process_log(&mut *::std::ptr::addr_of_mut!(__LOGWASM_STATE), ptr, len) }
        }
        #[no_mangle]
        pub extern "C" fn process_batch(ptr: i32, len: i32, count: i32) -> i32 {
            // SAFETY: as for `init`.
            unsafe { $crate::rt::process_batch(&mut *::std::ptr::addr_of_mut!(__LOGWASM_STATE), ptr, len, count) }
        }
        #[no_mangle]
        pub extern "C" fn process_batch_packed(ptr: i32, len: i32, count: i32) -> i32 {
            // SAFETY: as for `init`.
            unsafe { $crate::rt::process_batch_packed(&mut *::std::ptr::addr_of_mut!(__LOGWASM_STATE), ptr, len, count) }
        }
    };
}

/// The ABI glue behind `export_plugin!`. Not for plugin authors.
#[doc(hidden)]
pub mod rt {
    use super::{Output, Plugin};
    use std::alloc::{alloc as raw_alloc, dealloc as raw_dealloc, Layout};

    pub const ABI_VERSION: i32 = 1;
    const STATUS_EMIT: i32 = 0;
    const STATUS_DROP: i32 = 1;
    const STATUS_ERROR: i32 = 2;
    const STATUS_EMIT_MANY: i32 = 3;

    #[repr(C, align(8))]
    struct ResultArea {
        ptr: u32,
        len: u32,
    }

    static mut RESULT: ResultArea = ResultArea { ptr: 0, len: 0 };
    /// Output of the last call; the host copies it out before the next call.
    static mut OUT: Vec<u8> = Vec::new();

    pub fn result_ptr() -> i32 {
        // SAFETY: taking the address of a static reads nothing.
        unsafe { std::ptr::addr_of!(RESULT) as i32 }
    }

    pub fn alloc(len: i32) -> i32 {
        if len <= 0 {
            return 0;
        }
        match Layout::from_size_align(len as usize, 1) {
            // SAFETY: non-zero size; null (out of memory) is returned as 0.
            Ok(layout) => unsafe { raw_alloc(layout) as i32 },
            Err(_) => 0,
        }
    }

    pub fn dealloc(ptr: i32, len: i32) {
        if ptr == 0 || len <= 0 {
            return;
        }
        if let Ok(layout) = Layout::from_size_align(len as usize, 1) {
            // SAFETY: the host passes back what `alloc(len)` returned.
            unsafe { raw_dealloc(ptr as *mut u8, layout) }
        }
    }

    unsafe fn set_result(ptr: *const u8, len: usize) {
        RESULT.ptr = ptr as u32;
        RESULT.len = len as u32;
    }

    unsafe fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
        if len <= 0 || ptr == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(ptr as *const u8, len as usize)
        }
    }

    /// Moves `bytes` into the output buffer and points the result area at it.
    unsafe fn emit_owned(bytes: Vec<u8>, status: i32) -> i32 {
        OUT = bytes;
        set_result(OUT.as_ptr(), OUT.len());
        status
    }

    /// Status and payload of one output, as `process_log` and `process_batch` records share them.
    fn encode<'a>(output: &'a Output, line: &'a [u8], joined: &'a mut Vec<u8>) -> (i32, &'a [u8]) {
        match output {
            Output::Keep => (STATUS_EMIT, line),
            Output::Emit(bytes) => (STATUS_EMIT, bytes.as_slice()),
            Output::Drop => (STATUS_DROP, &[]),
            Output::Error(message) => (STATUS_ERROR, message.as_bytes()),
            Output::Many(records) => {
                if records.is_empty() {
                    return (STATUS_DROP, &[]);
                }
                if records.len() == 1 {
                    return (STATUS_EMIT, records[0].as_slice());
                }
                joined.clear();
                for record in records {
                    if record.contains(&b'\n') {
                        joined.clear();
                        joined.extend_from_slice(b"a record of Output::Many contains a newline");
                        return (STATUS_ERROR, joined.as_slice());
                    }
                    joined.extend_from_slice(record);
                    joined.push(b'\n');
                }
                (STATUS_EMIT_MANY, joined.as_slice())
            }
        }
    }

    fn ensure<P: Plugin>(state: &mut Option<P>) -> Result<&mut P, String> {
        if state.is_none() {
            *state = Some(P::init("{}")?);
        }
        match state.as_mut() {
            Some(plugin) => Ok(plugin),
            None => Err(String::from("plugin not initialized")),
        }
    }

    pub unsafe fn init<P: Plugin>(state: &mut Option<P>, ptr: i32, len: i32) -> i32 {
        let text = match std::str::from_utf8(input(ptr, len)) {
            Ok(text) => text,
            Err(_) => return emit_owned(b"options are not UTF-8".to_vec(), STATUS_ERROR),
        };
        match P::init(text) {
            Ok(plugin) => {
                *state = Some(plugin);
                STATUS_EMIT
            }
            Err(message) => emit_owned(message.into_bytes(), STATUS_ERROR),
        }
    }

    pub unsafe fn process_log<P: Plugin>(state: &mut Option<P>, ptr: i32, len: i32) -> i32 {
        let line = input(ptr, len);
        let plugin = match ensure(state) {
            Ok(plugin) => plugin,
            Err(message) => return emit_owned(message.into_bytes(), STATUS_ERROR),
        };
        let output = plugin.process(line);
        match output {
            // The input stays valid until the host's next call: pass it through without a copy.
            Output::Keep => {
                set_result(line.as_ptr(), line.len());
                STATUS_EMIT
            }
            Output::Emit(bytes) => emit_owned(bytes, STATUS_EMIT),
            Output::Error(message) => emit_owned(message.into_bytes(), STATUS_ERROR),
            other => {
                let mut joined = Vec::new();
                let (status, payload) = encode(&other, line, &mut joined);
                let owned = payload.to_vec();
                emit_owned(owned, status)
            }
        }
    }

    /// A batch call's input split into its `count + 1` offsets and its data, with the count as a
    /// usize; the error message when the layout cannot hold that many offsets.
    fn batch_layout(all: &[u8], count: i32) -> Result<(usize, &[u8], &[u8]), &'static [u8]> {
        let count = usize::try_from(count).map_err(|_| &b"negative count"[..])?;
        match count.checked_add(1).and_then(|n| n.checked_mul(4)) {
            Some(header) if header <= all.len() => {
                let (offsets, data) = all.split_at(header);
                Ok((count, offsets, data))
            }
            _ => Err(b"batch shorter than its offsets"),
        }
    }

    /// Offset `i` of a batch's little-endian u32 offsets.
    fn batch_offset(offsets: &[u8], i: usize) -> usize {
        let b = &offsets[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// Line `i` of a batch; None when its offsets decrease or run past the data.
    fn batch_line<'a>(offsets: &[u8], data: &'a [u8], i: usize) -> Option<&'a [u8]> {
        data.get(batch_offset(offsets, i)..batch_offset(offsets, i + 1))
    }

    /// What both batch exports start with: the input's layout and the plugin, or the error status
    /// already emitted.
    unsafe fn batch_call<'a, P: Plugin>(state: &'a mut Option<P>, ptr: i32, len: i32, count: i32) -> Result<(usize, &'a [u8], &'a [u8], &'a mut P), i32> {
        let (count, offsets, data) = batch_layout(input(ptr, len), count).map_err(|message| emit_owned(message.to_vec(), STATUS_ERROR))?;
        let plugin = ensure(state).map_err(|message| emit_owned(message.into_bytes(), STATUS_ERROR))?;
        Ok((count, offsets, data, plugin))
    }

    /// Both batch exports: runs the plugin on each line of the input, in order, and hands `record`
    /// the output buffer (made by `start` from the line count and the data's length), the line's
    /// index, the line count, the status and the payload. Emits the buffer (status 0) or the first
    /// error (a malformed layout, a plugin that failed to start, offsets out of range).
    unsafe fn batch<P: Plugin>(
        state: &mut Option<P>,
        ptr: i32,
        len: i32,
        count: i32,
        start: impl FnOnce(usize, usize) -> Vec<u8>,
        mut record: impl FnMut(&mut Vec<u8>, usize, usize, i32, &[u8]),
    ) -> i32 {
        let (count, offsets, data, plugin) = match batch_call(state, ptr, len, count) {
            Ok(call) => call,
            Err(status) => return status,
        };
        let mut out = start(count, data.len());
        let mut joined = Vec::new();
        for i in 0..count {
            let line = match batch_line(offsets, data, i) {
                Some(line) => line,
                None => return emit_owned(b"batch offsets out of range".to_vec(), STATUS_ERROR),
            };
            let output = plugin.process(line);
            let (status, payload) = encode(&output, line, &mut joined);
            record(&mut out, i, count, status, payload);
        }
        emit_owned(out, STATUS_EMIT)
    }

    pub unsafe fn process_batch<P: Plugin>(state: &mut Option<P>, ptr: i32, len: i32, count: i32) -> i32 {
        batch(
            state,
            ptr,
            len,
            count,
            |count, bytes| Vec::with_capacity(bytes + 8 * count + 64),
            |records, _, _, status, payload| {
                records.extend_from_slice(&(status as u32).to_le_bytes());
                records.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                records.extend_from_slice(payload);
            },
        )
    }

    /// `process_batch_packed`: the input of `process_batch`; the output is one area,
    /// `[u32 statuses[count]] [u32 offsets[count + 1]] [data]`, which the host takes in one copy
    /// of the offsets and one of the data when every status is 0 (docs/plugin-abi.md).
    pub unsafe fn process_batch_packed<P: Plugin>(state: &mut Option<P>, ptr: i32, len: i32, count: i32) -> i32 {
        // Statuses at 0.., offsets at `4 * count`.., data at `8 * count + 4`..; the input's offsets
        // (`4 * count + 4` bytes) fit in memory, so twice them does in usize.
        batch(
            state,
            ptr,
            len,
            count,
            |count, bytes| {
                // The last call's buffer is reused: the host copied out of it before this call.
                let mut area = std::mem::take(&mut *std::ptr::addr_of_mut!(OUT));
                area.clear();
                area.reserve(8 * count + 4 + bytes + 64);
                area.resize(8 * count + 4, 0);
                area
            },
            |area, i, count, status, payload| {
                area[4 * i..4 * i + 4].copy_from_slice(&(status as u32).to_le_bytes());
                area.extend_from_slice(payload);
                let written = (area.len() - (8 * count + 4)) as u32;
                let at = 4 * count + 4 * (i + 1);
                area[at..at + 4].copy_from_slice(&written.to_le_bytes());
            },
        )
    }
}
