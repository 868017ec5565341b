//! json_parser: a logwasm plugin, ABI v1 (see docs/plugin-abi.md).
//!
//! A line that is one JSON object (strict RFC 8259, UTF-8) is emitted as that object's own bytes
//! with fields added before its closing `}`: `user_id` (copied from `metadata.user.id`),
//! `session_id` (from `metadata.session.id`), each only when present, copied as written whatever
//! its JSON type, and `log_size_bytes`, the input line's length in bytes. Nothing inside the object
//! is re-serialized: values, escapes, numbers, whitespace and duplicate keys stay byte for byte.
//! Whitespace around the object (a trailing `\r`, say) is not emitted. An added field replaces any
//! member of the same name (every occurrence of it is removed), so the output never holds two
//! `log_size_bytes`; a `user_id`/`session_id` the plugin does not add is left alone. When a key
//! repeats, the last one counts for finding the ids (`metadata`, `user`, `session`, `id`), as in
//! JSON.parse and serde_json. Any other line (not UTF-8, not JSON, JSON but not an object, trailing
//! bytes, a lone UTF-16 surrogate escape, arrays/objects nested 128 deep) passes through unchanged.
//!
//! Why not parse into a tree: building serde_json `Value`s and writing them back cost ~6 µs for a
//! 210-byte line in wasm; validating in one pass and copying the object costs a fraction of that.
//!
//! Nothing here may panic on user data: with `panic = "abort"` a panic is a wasm trap, which the
//! host counts as a failure and answers by re-instantiating the module. The scanner reads bytes
//! through `get` (never an index that can be out of range) and nests without recursion.

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

/// The records of the last `process_batch` call, reused by every call like `OUTPUT`.
static mut BATCH_OUTPUT: Vec<u8> = Vec::new();

/// ABI v1 `process_batch`: the input is `count + 1` little-endian u32 offsets (relative to the
/// data after them) then the lines back to back; the output is one record per line, in order,
/// `[u32 status][u32 len][len bytes]`, each exactly what `process_log` gives for that line
/// (status 0, the rewritten line or the line itself). One call per batch saves the host's
/// per-line call, copy-in and result-area read. Status 2 (a malformed layout, or no memory for
/// the records) makes the host redo the batch line by line through `process_log`.
///
/// # Safety
/// `ptr..ptr+len` must be readable guest memory (the host's input buffer from `alloc`).
#[no_mangle]
pub unsafe extern "C" fn process_batch(ptr: i32, len: i32, count: i32) -> i32 {
    let records = batch_records(batch_input(ptr, len), count, &mut *std::ptr::addr_of_mut!(BATCH_OUTPUT), &mut *std::ptr::addr_of_mut!(OUTPUT));
    batch_answer(records, b"process_batch: malformed batch layout or out of memory")
}

/// The input of a batch call (an empty one for a null pointer or a non-positive length).
///
/// # Safety
/// `ptr..ptr+len` must be readable guest memory.
unsafe fn batch_input<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if len <= 0 || ptr == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr as *const u8, len as usize)
    }
}

/// Points the result area at a batch call's output (status 0), or at `message` (status 2).
///
/// # Safety
/// Writes the `RESULT` static; the guest is single-threaded.
unsafe fn batch_answer(output: Option<&[u8]>, message: &'static [u8]) -> i32 {
    let (bytes, status) = match output {
        Some(bytes) => (bytes, 0),
        None => (message, 2),
    };
    RESULT.ptr = bytes.as_ptr() as u32;
    RESULT.len = bytes.len() as u32;
    status
}

/// A batch call's input split into the count, its `count + 1` u32 offsets and the data; None when
/// the input is shorter than the offsets (or `count` is negative).
fn batch_layout(input: &[u8], count: i32) -> Option<(usize, &[u8], &[u8])> {
    let count = usize::try_from(count).ok()?;
    let header_len = count.checked_add(1)?.checked_mul(4)?;
    Some((count, input.get(..header_len)?, input.get(header_len..)?))
}

/// Offset `i` of a batch's little-endian u32 offsets.
fn header_offset(header: &[u8], i: usize) -> Option<usize> {
    let bytes = header.get(4 * i..4 * i + 4)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
}

/// Fills `records` with one record per line of the batch layout in `input`; None when the
/// layout does not hold together or memory runs out (never a trap: `try_reserve`, `get`).
fn batch_records<'a>(input: &[u8], count: i32, records: &'a mut Vec<u8>, line_out: &mut Vec<u8>) -> Option<&'a [u8]> {
    let (count, header, data) = batch_layout(input, count)?;
    let offset = |i: usize| header_offset(header, i);
    records.clear();
    // The rewrite adds a few dozen bytes per object line: enough for most batches at once.
    records.try_reserve(data.len() + data.len() / 4 + 8 * count + 64).ok()?;
    let mut start = offset(0)?;
    for i in 0..count {
        let end = offset(i + 1)?;
        let line = data.get(start..end)?;
        line_out.clear();
        let record: &[u8] = if rewrite(line, line_out) { line_out } else { line };
        records.try_reserve(8 + record.len()).ok()?;
        records.extend_from_slice(&0u32.to_le_bytes());
        records.extend_from_slice(&(record.len() as u32).to_le_bytes());
        records.extend_from_slice(record);
        start = end;
    }
    Some(records)
}

/// The result area of the last `process_batch_packed` call, reused by every call like `OUTPUT`.
static mut PACKED_OUTPUT: Vec<u8> = Vec::new();

/// ABI v1 `process_batch_packed`: the input of `process_batch`; the output is one area,
/// `[u32 statuses[count]] [u32 offsets[count + 1]] [data]` (little-endian, offsets relative to
/// the data, `offsets[0] = 0`), record i being `data[offsets[i]..offsets[i+1]]`, each exactly
/// what `process_log` gives for that line. Every status is 0 here, so the host takes the data
/// and the offsets in one copy each (docs/plugin-abi.md says why this shape). Each line is
/// rewritten straight into the area, with no copy through `OUTPUT`. Status 2 as for
/// `process_batch`.
///
/// # Safety
/// `ptr..ptr+len` must be readable guest memory (the host's input buffer from `alloc`).
#[no_mangle]
pub unsafe extern "C" fn process_batch_packed(ptr: i32, len: i32, count: i32) -> i32 {
    let area = packed_records(batch_input(ptr, len), count, &mut *std::ptr::addr_of_mut!(PACKED_OUTPUT));
    batch_answer(area, b"process_batch_packed: malformed batch layout or out of memory")
}

/// Fills `area` with the packed result for the batch layout in `input`; None when the layout
/// does not hold together or memory runs out (never a trap: `try_reserve`, `get`).
fn packed_records<'a>(input: &[u8], count: i32, area: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let (count, header, data) = batch_layout(input, count)?;
    let offset = |i: usize| header_offset(header, i);
    // Statuses (all 0: this plugin always emits) then offsets; the data starts after them.
    let data_at = count.checked_mul(8)?.checked_add(4)?;
    let offsets_at = count.checked_mul(4)?;
    area.clear();
    // The rewrite adds a few dozen bytes per object line: enough for most batches at once.
    area.try_reserve(data_at + data.len() + data.len() / 4 + 64).ok()?;
    area.resize(data_at, 0);
    let mut start = offset(0)?;
    for i in 0..count {
        let end = offset(i + 1)?;
        let line = data.get(start..end)?;
        if !rewrite(line, area) {
            area.try_reserve(line.len()).ok()?;
            area.extend_from_slice(line);
        }
        let written = u32::try_from(area.len() - data_at).ok()?;
        let at = offsets_at + 4 * (i + 1);
        area.get_mut(at..at + 4)?.copy_from_slice(&written.to_le_bytes());
        start = end;
    }
    Some(area)
}

/// Appends the rewritten line to `output`; false means "pass the input through unchanged", and
/// then `output` is as it was.
fn rewrite(input: &[u8], output: &mut Vec<u8>) -> bool {
    let start = output.len();
    // No separate UTF-8 check: bytes of 0x80 and above are valid JSON only inside strings, and
    // `string` checks them there (so a line that is not an object is never checked at all).
    let mut scanner = Scanner { bytes: input, pos: 0 };
    let top = match scanner.top_object() {
        Ok(top) => top,
        Err(Invalid) => return false,
    };
    let user_id = top.user_id.and_then(|span| span.of(input));
    let session_id = top.session_id.and_then(|span| span.of(input));
    let mut replaced = LOG_SIZE_BYTES;
    if user_id.is_some() {
        replaced |= USER_ID;
    }
    if session_id.is_some() {
        replaced |= SESSION_ID;
    }
    let object = match input.get(top.open..top.close) {
        Some(object) => object,
        None => return false,
    };
    // Added bytes: keys and punctuation (44) and the size (at most 20 digits).
    let extra = 80 + user_id.map_or(0, <[u8]>::len) + session_id.map_or(0, <[u8]>::len);
    // Out of memory passes the line through instead of trapping (`reserve` would abort), and no
    // push below reallocates.
    if output.try_reserve(object.len() + extra).is_err() {
        return false;
    }
    let has_members = if top.reserved & replaced == 0 {
        output.extend_from_slice(object);
        top.has_members
    } else {
        match copy_without(input, top.open, replaced, output) {
            Ok(kept) => kept,
            Err(Invalid) => {
                output.truncate(start);
                return false;
            }
        }
    };
    let mut separator: &[u8] = if has_members { b"," } else { b"" };
    if let Some(value) = user_id {
        output.extend_from_slice(separator);
        output.extend_from_slice(b"\"user_id\":");
        output.extend_from_slice(value);
        separator = b",";
    }
    if let Some(value) = session_id {
        output.extend_from_slice(separator);
        output.extend_from_slice(b"\"session_id\":");
        output.extend_from_slice(value);
        separator = b",";
    }
    output.extend_from_slice(separator);
    output.extend_from_slice(b"\"log_size_bytes\":");
    push_decimal(output, input.len());
    output.push(b'}');
    true
}

/// Copies the object that starts at `open` (already validated) into `output` without its closing
/// `}` and without the members whose key is one of `replaced`. A removed member goes with one of
/// the separators (`,` and whitespace) next to it; all other bytes stay as they are. Returns
/// whether any member was kept, which decides if the added fields need a leading comma.
fn copy_without(input: &[u8], open: usize, replaced: u8, output: &mut Vec<u8>) -> Result<bool, Invalid> {
    let mut scanner = Scanner { bytes: input, pos: open + 1 };
    scanner.whitespace();
    output.extend_from_slice(input.get(open..scanner.pos).ok_or(Invalid)?);
    let mut kept = false;
    // End of the previous member's value: the bytes from there to the next key are its separator.
    let mut previous_end: Option<usize> = None;
    if scanner.peek()? != b'}' {
        loop {
            let key_start = scanner.pos;
            let name = scanner.key()?;
            scanner.value(1)?;
            let value_end = scanner.pos;
            if reserved_bit(name) & replaced == 0 {
                if kept {
                    if let Some(end) = previous_end {
                        output.extend_from_slice(input.get(end..key_start).ok_or(Invalid)?);
                    }
                }
                output.extend_from_slice(input.get(key_start..value_end).ok_or(Invalid)?);
                kept = true;
            }
            previous_end = Some(value_end);
            scanner.whitespace();
            if scanner.peek()? == b',' {
                scanner.pos += 1;
                scanner.whitespace();
            } else {
                break;
            }
        }
    }
    // Whitespace between the last member and `}`, as in the input.
    let close = scanner.pos;
    if let Some(end) = previous_end {
        output.extend_from_slice(input.get(end..close).ok_or(Invalid)?);
    }
    Ok(kept)
}

/// Appends `value` in decimal without going through `core::fmt`.
fn push_decimal(output: &mut Vec<u8>, mut value: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    output.extend_from_slice(digits.get(start..).unwrap_or(&[]));
}

/// The line is not one strict JSON object: pass it through.
#[derive(Debug, Clone, Copy)]
struct Invalid;

type Scan<T> = Result<T, Invalid>;

/// serde_json (and so the previous version of this plugin) refuses the 128th nested array or
/// object, the top-level object counting as the first; nesting up to this many passes.
const MAX_NESTING: u32 = 127;

/// Keys the plugin writes, as bits, so that members with those names can be removed.
const USER_ID: u8 = 1;
const SESSION_ID: u8 = 2;
const LOG_SIZE_BYTES: u8 = 4;

/// `start..end` of a value in the input.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of(self, input: &[u8]) -> Option<&[u8]> {
        input.get(self.start..self.end)
    }
}

/// What one pass over the top-level object found.
struct TopObject {
    /// Offsets of its `{` and its closing `}`.
    open: usize,
    close: usize,
    has_members: bool,
    /// Which of `user_id`, `session_id`, `log_size_bytes` it already has, as bits.
    reserved: u8,
    user_id: Option<Span>,
    session_id: Option<Span>,
}

/// The keys the plugin looks for, by name; any other key is `Other`. A name says nothing about
/// where the key is: `user` at the top level is only `Other` to the caller there.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Name {
    Metadata,
    User,
    Session,
    Id,
    UserId,
    SessionId,
    LogSizeBytes,
    Other,
}

/// Every Name at the index of its code (`name as u32`, as `key_step` returns it).
const NAME_BY_CODE: [Name; 8] = [Name::Metadata, Name::User, Name::Session, Name::Id, Name::UserId, Name::SessionId, Name::LogSizeBytes, Name::Other];
const _: () = {
    let mut code = 0;
    while code < NAME_BY_CODE.len() {
        assert!(NAME_BY_CODE[code] as usize == code, "NAME_BY_CODE must list the names in declaration order");
        code += 1;
    }
};

fn name_of_code(code: u32) -> Name {
    NAME_BY_CODE.get(code as usize).copied().unwrap_or(Name::Other)
}

/// Every name but `Other` with its text, for keys written with escapes.
const NAMES: [(&[u8], Name); 7] = [
    (b"metadata", Name::Metadata),
    (b"user", Name::User),
    (b"session", Name::Session),
    (b"id", Name::Id),
    (b"user_id", Name::UserId),
    (b"session_id", Name::SessionId),
    (b"log_size_bytes", Name::LogSizeBytes),
];

/// Bytes that end the fast run through a string: `"`, `\`, control characters and non-ASCII.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    byte = 0x80;
    while byte < 0x100 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` (little-endian) that is `"`, `\`, below 0x20 or from 0x80
/// up. The classic SWAR tests (`x - 0x01.. & !x & 0x80..` finds a zero byte) can also flag a byte
/// above a flagged one, through the borrow, but never one below, so the lowest flag is exact.
fn string_stops(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote_zero = quote.wrapping_sub(ONES) & !quote;
    let backslash_zero = backslash.wrapping_sub(ONES) & !backslash;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote_zero | backslash_zero | control | word) & HIGH_BITS
}

/// What a scanning step that is not inlined hands back, in one integer so that it comes back in
/// a register: the position it stopped at (low 32 bits) and a value (high 32 bits), or
/// STEP_FAILED (the line is not valid).
type Step = u64;
const STEP_FAILED: Step = u64::MAX;

/// `body` run on a scanner of its own from `pos`, its outcome packed as a Step.
#[inline(always)]
fn step_with(bytes: &[u8], pos: usize, body: impl FnOnce(&mut Scanner) -> Scan<u32>) -> Step {
    let mut scanner = Scanner { bytes, pos };
    match (body(&mut scanner), u32::try_from(scanner.pos)) {
        (Ok(value), Ok(pos)) if pos != u32::MAX => (u64::from(value) << 32) | u64::from(pos),
        _ => STEP_FAILED,
    }
}

// The scanning steps a line calls more than once (or rarely), each compiled once rather than
// inlined at every call site; each takes the position by value (see `Scanner::run`).

#[inline(never)]
fn key_step(bytes: &[u8], pos: usize) -> Step {
    step_with(bytes, pos, |scanner| scanner.key_body().map(|name| name as u32))
}

#[inline(never)]
fn skip_key_step(bytes: &[u8], pos: usize) -> Step {
    step_with(bytes, pos, |scanner| scanner.skip_key_body().map(|_| 0))
}

#[inline(never)]
fn utf8_run_step(bytes: &[u8], pos: usize) -> Step {
    step_with(bytes, pos, |scanner| scanner.utf8_run_body().map(|_| 0))
}

#[inline(never)]
fn hex4_step(bytes: &[u8], pos: usize) -> Step {
    step_with(bytes, pos, |scanner| scanner.hex4_body())
}

#[inline(never)]
fn number_step(bytes: &[u8], pos: usize) -> Step {
    step_with(bytes, pos, |scanner| scanner.number_body().map(|_| 0))
}

#[inline(never)]
fn container_step(bytes: &[u8], pos: usize, depth: u32) -> Step {
    step_with(bytes, pos, |scanner| scanner.container_body(depth).map(|_| 0))
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Runs `step` (a function that is not inlined) from `pos` and moves to where it stopped;
    /// returns its value. The position goes in and comes back by value: a scanner passed to a
    /// call by reference lives in memory (in wasm, on the shadow stack in linear memory) rather
    /// than in registers, and every access to it in the caller is then a load or a store.
    #[inline(always)]
    fn run(&mut self, step: impl FnOnce(&[u8], usize) -> Step) -> Scan<u32> {
        let outcome = step(self.bytes, self.pos);
        if outcome == STEP_FAILED {
            return Err(Invalid);
        }
        self.pos = (outcome & 0xffff_ffff) as usize;
        Ok((outcome >> 32) as u32)
    }

    fn peek(&self) -> Scan<u8> {
        self.bytes.get(self.pos).copied().ok_or(Invalid)
    }

    fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.peek()? != byte {
            return Err(Invalid);
        }
        self.pos += 1;
        Ok(())
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The whole line: optional whitespace, one object, optional whitespace, end.
    fn top_object(&mut self) -> Scan<TopObject> {
        self.whitespace();
        let open = self.pos;
        self.expect(b'{')?;
        let mut top = TopObject { open, close: open, has_members: false, reserved: 0, user_id: None, session_id: None };
        self.whitespace();
        if self.peek()? == b'}' {
            top.close = self.pos;
        } else {
            top.has_members = true;
            loop {
                let name = self.key()?;
                if name == Name::Metadata {
                    // The last `metadata` counts, even when it is not an object.
                    top.user_id = None;
                    top.session_id = None;
                    if self.peek()? == b'{' {
                        self.metadata(&mut top)?;
                    } else {
                        self.value(1)?;
                    }
                } else {
                    top.reserved |= reserved_bit(name);
                    self.value(1)?;
                }
                self.whitespace();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.whitespace();
                    }
                    b'}' => {
                        top.close = self.pos;
                        break;
                    }
                    _ => return Err(Invalid),
                }
            }
        }
        self.pos += 1;
        self.whitespace();
        if self.pos != self.bytes.len() {
            return Err(Invalid);
        }
        Ok(top)
    }

    /// `metadata`'s object (nesting 2): finds the last `user` and `session` members.
    fn metadata(&mut self, top: &mut TopObject) -> Scan<()> {
        self.expect(b'{')?;
        self.whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let name = self.key()?;
            if name == Name::User || name == Name::Session {
                let id = if self.peek()? == b'{' { self.section_id()? } else { self.value(2).map(|_| None)? };
                if name == Name::User {
                    top.user_id = id;
                } else {
                    top.session_id = id;
                }
            } else {
                self.value(2)?;
            }
            if self.close_or_next(b'}')? {
                return Ok(());
            }
        }
    }

    /// `user`'s or `session`'s object (nesting 3): the span of its last `id` value.
    fn section_id(&mut self) -> Scan<Option<Span>> {
        self.expect(b'{')?;
        self.whitespace();
        let mut id = None;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(id);
        }
        loop {
            let name = self.key()?;
            let start = self.pos;
            self.value(3)?;
            if name == Name::Id {
                id = Some(Span { start, end: self.pos });
            }
            if self.close_or_next(b'}')? {
                return Ok(id);
            }
        }
    }

    /// After a member or element: skips whitespace and a `,` (false) or the closing byte (true).
    fn close_or_next(&mut self, close: u8) -> Scan<bool> {
        self.whitespace();
        let byte = self.peek()?;
        self.pos += 1;
        if byte == b',' {
            self.whitespace();
            Ok(false)
        } else if byte == close {
            Ok(true)
        } else {
            Err(Invalid)
        }
    }

    /// A member's `"key" :` and the whitespace after the colon; returns what the key names.
    #[inline(always)]
    fn key(&mut self) -> Scan<Name> {
        self.run(key_step).map(name_of_code)
    }

    #[inline(always)]
    fn key_body(&mut self) -> Scan<Name> {
        let start = self.pos + 1;
        let escaped = self.string()?;
        let name = name_of(self.bytes.get(start..self.pos - 1).unwrap_or(&[]), escaped);
        self.colon()?;
        Ok(name)
    }

    /// A key nested in a value, whose name does not matter.
    #[inline(always)]
    fn skip_key(&mut self) -> Scan<()> {
        self.run(skip_key_step).map(|_| ())
    }

    #[inline(always)]
    fn skip_key_body(&mut self) -> Scan<()> {
        self.string()?;
        self.colon()
    }

    /// The `:` after a key and the whitespace around it.
    #[inline(always)]
    fn colon(&mut self) -> Scan<()> {
        // Compact JSON (`"key":value`) takes the first branch.
        if let Some(b':') = self.bytes.get(self.pos) {
            self.pos += 1;
        } else {
            self.whitespace();
            self.expect(b':')?;
        }
        self.whitespace();
        Ok(())
    }

    /// A string from its opening quote; returns whether it holds an escape.
    #[inline(always)]
    fn string(&mut self) -> Scan<bool> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            self.skip_plain_string_bytes()?;
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0x80..=0xff => self.utf8_run()?,
                _ => return Err(Invalid), // a raw control character
            }
        }
    }

    /// A run of bytes from 0x80 up inside a string. Every byte of a multi-byte UTF-8 character is
    /// from 0x80 up and every ASCII byte is a whole character, so such a run must consist of whole
    /// characters: checking each run checks the string.
    #[inline(always)]
    fn utf8_run(&mut self) -> Scan<()> {
        self.run(utf8_run_step).map(|_| ())
    }

    #[inline(always)]
    fn utf8_run_body(&mut self) -> Scan<()> {
        let rest = self.bytes.get(self.pos..).ok_or(Invalid)?;
        let length = rest.iter().position(|&b| b < 0x80).unwrap_or(rest.len());
        std::str::from_utf8(rest.get(..length).ok_or(Invalid)?).map_err(|_| Invalid)?;
        self.pos += length;
        Ok(())
    }

    /// Moves to the next `"`, `\`, control character or non-ASCII byte (invalid when there is
    /// none). Eight bytes at a time while they hold none of those: strings are most of a line.
    #[inline(always)]
    fn skip_plain_string_bytes(&mut self) -> Scan<()> {
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let word = match <[u8; 8]>::try_from(chunk) {
                Ok(bytes) => u64::from_le_bytes(bytes),
                Err(_) => break,
            };
            let stops = string_stops(word);
            if stops != 0 {
                // The lowest flagged byte is always a real stop (see string_stops).
                self.pos += (stops.trailing_zeros() / 8) as usize;
                return Ok(());
            }
            self.pos += 8;
        }
        let rest = self.bytes.get(self.pos..).ok_or(Invalid)?;
        self.pos += rest.iter().position(|&b| STRING_STOP[b as usize]).ok_or(Invalid)?;
        Ok(())
    }

    /// One escape from its backslash. A `\u` high surrogate must be followed by a `\u` low
    /// surrogate and a low one must not stand alone, as serde_json requires for a UTF-8 string.
    fn escape(&mut self) -> Scan<()> {
        self.pos += 1;
        let byte = self.peek()?;
        self.pos += 1;
        match byte {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => match self.hex4()? {
                0xD800..=0xDBFF => {
                    self.expect(b'\\')?;
                    self.expect(b'u')?;
                    match self.hex4()? {
                        0xDC00..=0xDFFF => Ok(()),
                        _ => Err(Invalid),
                    }
                }
                0xDC00..=0xDFFF => Err(Invalid),
                _ => Ok(()),
            },
            _ => Err(Invalid),
        }
    }

    #[inline(always)]
    fn hex4(&mut self) -> Scan<u32> {
        self.run(hex4_step)
    }

    #[inline(always)]
    fn hex4_body(&mut self) -> Scan<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Invalid)?;
        let mut value = 0;
        for &digit in digits {
            value = value << 4 | hex_value(digit).ok_or(Invalid)?;
        }
        self.pos += 4;
        Ok(value)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; what follows is the caller's check.
    #[inline(always)]
    fn number(&mut self) -> Scan<()> {
        self.run(number_step).map(|_| ())
    }

    #[inline(always)]
    fn number_body(&mut self) -> Scan<()> {
        if self.peek()? == b'-' {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return Err(Invalid),
        }
        if let Some(b'.') = self.bytes.get(self.pos) {
            self.pos += 1;
            self.digits_required()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            self.digits_required()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn digits_required(&mut self) -> Scan<()> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            return Err(Invalid);
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if !self.bytes.get(self.pos..self.pos + word.len()).map_or(false, |bytes| same_bytes(bytes, word)) {
            return Err(Invalid);
        }
        self.pos += word.len();
        Ok(())
    }

    /// Validates one value of any kind, `depth` arrays/objects deep. Scalars, most of a log line's
    /// values, are handled here, inline; arrays and objects in `container`.
    #[inline(always)]
    fn value(&mut self, depth: u32) -> Scan<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => self.container(depth),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// Validates an array or object, `depth` arrays/objects deep, without recursion: a bit per
    /// open container (set for an object) is enough state, as nesting stops at MAX_NESTING.
    #[inline(always)]
    fn container(&mut self, depth: u32) -> Scan<()> {
        self.run(|bytes, pos| container_step(bytes, pos, depth)).map(|_| ())
    }

    #[inline(always)]
    fn container_body(&mut self, depth: u32) -> Scan<()> {
        let mut objects: u128 = 0;
        let mut open: u32 = 0;
        loop {
            // A value starts here.
            match self.peek()? {
                byte @ (b'{' | b'[') => {
                    if depth + open >= MAX_NESTING {
                        return Err(Invalid);
                    }
                    let object = byte == b'{';
                    if object {
                        objects |= 1 << open;
                    } else {
                        objects &= !(1 << open);
                    }
                    open += 1;
                    self.pos += 1;
                    self.whitespace();
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.pos += 1;
                        open -= 1;
                    } else {
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // A value ended: close containers until one has a next element.
            loop {
                if open == 0 {
                    return Ok(());
                }
                let object = objects & (1 << (open - 1)) != 0;
                if self.close_or_next(if object { b'}' } else { b']' })? {
                    open -= 1;
                } else {
                    if object {
                        self.skip_key()?;
                    }
                    break;
                }
            }
        }
    }
}

/// The bit of a key the plugin writes (see `copy_without`), 0 for any other.
fn reserved_bit(name: Name) -> u8 {
    match name {
        Name::UserId => USER_ID,
        Name::SessionId => SESSION_ID,
        Name::LogSizeBytes => LOG_SIZE_BYTES,
        _ => 0,
    }
}

/// What the raw (validated) key text `raw` names. Keys are compared as lengths first, since most
/// keys of a line differ from every wanted name in length; escaped keys are decoded as compared.
fn name_of(raw: &[u8], escaped: bool) -> Name {
    if escaped {
        return NAMES.iter().find(|(text, _)| escaped_key_is(raw, text)).map_or(Name::Other, |&(_, name)| name);
    }
    match raw.len() {
        2 if same_bytes(raw, b"id") => Name::Id,
        4 if same_bytes(raw, b"user") => Name::User,
        7 if same_bytes(raw, b"session") => Name::Session,
        7 if same_bytes(raw, b"user_id") => Name::UserId,
        8 if same_bytes(raw, b"metadata") => Name::Metadata,
        10 if same_bytes(raw, b"session_id") => Name::SessionId,
        14 if same_bytes(raw, b"log_size_bytes") => Name::LogSizeBytes,
        _ => Name::Other,
    }
}

/// `a == b` for the short byte strings here (keys, literals), as integer loads (the last one may
/// overlap the one before). In wasm, `==` on slices is a call to compiler_builtins' byte-by-byte
/// `memcmp`: LLVM expands a comparison of known length into loads for x86, not for wasm.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len >= 8 {
        // Whole words, then the last word (which may overlap the one before it).
        let mut at = 0;
        while at + 8 < len {
            if word::<8>(a, at) != word::<8>(b, at) {
                return false;
            }
            at += 8;
        }
        return word::<8>(a, len - 8) == word::<8>(b, len - 8);
    }
    if len >= 4 {
        return word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, len - 4) == word::<4>(b, len - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// The `N` bytes of `bytes` at `at` as a little-endian integer (0 past the end: callers compare
/// equal-length strings, so both sides read the same bytes).
#[inline(always)]
fn word<const N: usize>(bytes: &[u8], at: usize) -> u64 {
    let mut value = 0u64;
    if let Some(chunk) = bytes.get(at..at + N) {
        if let Ok(array) = <[u8; N]>::try_from(chunk) {
            for (i, byte) in array.iter().enumerate() {
                value |= u64::from(*byte) << (8 * i);
            }
        }
    }
    value
}

/// Whether the raw key text `raw`, which holds escapes (`"us\u0065r"`), means the ASCII name
/// `want`: each escape is decoded as it is compared.
fn escaped_key_is(raw: &[u8], want: &[u8]) -> bool {
    let mut at = 0;
    for &expected in want {
        let byte = match raw.get(at) {
            Some(&byte) => byte,
            None => return false,
        };
        let (decoded, width) = if byte != b'\\' {
            (u32::from(byte), 1)
        } else {
            match raw.get(at + 1) {
                Some(b'"') => (u32::from(b'"'), 2),
                Some(b'\\') => (u32::from(b'\\'), 2),
                Some(b'/') => (u32::from(b'/'), 2),
                Some(b'b') => (0x08, 2),
                Some(b'f') => (0x0c, 2),
                Some(b'n') => (u32::from(b'\n'), 2),
                Some(b'r') => (u32::from(b'\r'), 2),
                Some(b't') => (u32::from(b'\t'), 2),
                Some(b'u') => match raw.get(at + 2..at + 6) {
                    Some(hex) => {
                        let mut value = 0;
                        for &digit in hex {
                            match hex_value(digit) {
                                Some(d) => value = value << 4 | d,
                                None => return false,
                            }
                        }
                        (value, 6)
                    }
                    None => return false,
                },
                _ => return false,
            }
        };
        // `want` is ASCII, so a decoded character past 0x7f (or a surrogate) never matches.
        if decoded != u32::from(expected) {
            return false;
        }
        at += width;
    }
    at == raw.len()
}

fn hex_value(digit: u8) -> Option<u32> {
    match digit {
        b'0'..=b'9' => Some(u32::from(digit - b'0')),
        b'a'..=b'f' => Some(u32::from(digit - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(digit - b'A' + 10)),
        _ => None,
    }
}
