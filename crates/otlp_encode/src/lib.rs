//! The per-record work of logwasm's OTLP/protobuf encoder (src/sinks/opentelemetry/encode.ts,
//! `BatchEncoder.encode`, default mapping), compiled to wasm32-unknown-unknown. Internal: its ABI
//! is src/sinks/opentelemetry/wasm-encoder.ts's, not the plugin ABI.
//!
//! For a whole batch (line bytes and offsets) it writes every record as a complete
//! `ScopeLogs.log_records` entry, exactly the bytes the JS path writes. The batch constants (record
//! attributes and observed time) come in prebuilt from JS. A record it does not handle the same way
//! for sure is *refused*: nothing is written for it, its index is listed, and JS encodes it. It
//! refuses what transcode.ts refuses (invalid JSON, duplicate keys, digit-leading keys, deep
//! nesting) and more: invalid UTF-8, lone surrogates, non-finite numbers, escaped or unusual
//! timestamp, level and trace fields. Every length prefix is the minimal varint, as Writer.end()
//! leaves them, so only field order and content have to match.

use std::alloc::{alloc as sys_alloc, dealloc as sys_dealloc, Layout};

/// Nesting beyond this is refused (transcode.ts MAX_DEPTH).
const MAX_DEPTH: u32 = 64;

// Tags (field number << 3 | wire type), as in encode.ts.
const TAG_LOG_RECORD: u8 = 0x12;
const TAG_TIME: u8 = 0x09;
const TAG_SEVERITY_NUMBER: u8 = 0x10;
const TAG_SEVERITY_TEXT: u8 = 0x1a;
const TAG_BODY: u8 = 0x2a;
const TAG_FLAGS: u8 = 0x45;
const TAG_TRACE_ID: u8 = 0x4a;
const TAG_SPAN_ID: u8 = 0x52;
const TAG_KEY: u8 = 0x0a;
const TAG_VALUE: u8 = 0x12;
const TAG_STRING: u8 = 0x0a;
const TAG_BOOL: u8 = 0x10;
const TAG_INT: u8 = 0x18;
const TAG_DOUBLE: u8 = 0x21;
const TAG_ARRAY: u8 = 0x2a;
const TAG_KVLIST: u8 = 0x32;
const TAG_VALUES: u8 = 0x0a;

/// Captured top-level fields: timestamp, ts, time, level, severity, then the three trace fields.
const SLOT_LEVEL: usize = 3;
const SLOT_SEVERITY: usize = 4;
const SLOT_TRACE_ID: usize = 5;
const SLOT_SPAN_ID: usize = 6;
const SLOT_TRACE_FLAGS: usize = 7;
const SLOTS: usize = 8;

/// Why a record is refused; only the fact is reported.
struct Refuse;
type Step<T> = Result<T, Refuse>;

#[derive(Clone, Copy)]
enum Captured {
    None,
    /// An unescaped string, at `[start, end)` of the line.
    Raw(usize, usize),
    /// A number: its value, and the integer itself when the token was one of at most 15 digits.
    Number(f64, Option<i64>),
    /// Anything that needs JS to decide (an escaped string).
    Other,
}

struct Encoder {
    /// The records; while one is written, `buf` is its base pointer with room reserved past `len`.
    out: Vec<u8>,
    buf: *mut u8,
    offsets: Vec<u32>,
    refused: Vec<u32>,
    /// Hashes of the keys of the objects being read, innermost last, for the duplicate check.
    hashes: Vec<u64>,
    trace_fields: [Vec<u8>; 3],
    /// Bit `n` set: a trace field name is `n` bytes long (a cheap test before comparing).
    trace_lengths: u64,
    /// The hash bits (as members() takes them) of every watched top-level key: most keys are ruled out by one test.
    watched_bits: u64,
    captured: [Captured; SLOTS],
    /// fast_rfc3339()'s cache: the date part of the last valid time and its seconds.
    minute: Option<([u8; 16], i64)>,
    /// The last level string (up to 16 ASCII bytes) and its severity number.
    level: ([u8; 16], usize, u32),
    objects: u32,
    texts: u32,
}

/// What `result()` points to: out_ptr, out_len, offsets_ptr, refused_ptr, refused_count, objects, texts.
static mut RESULT: [u32; 8] = [0; 8];
static mut ENCODER: Option<Encoder> = None;

fn encoder() -> &'static mut Encoder {
    // SAFETY: wasm32-unknown-unknown is single-threaded and the exports never re-enter.
    unsafe {
        if ENCODER.is_none() {
            ENCODER = Some(Encoder {
                out: Vec::with_capacity(1 << 20),
                buf: std::ptr::null_mut(),
                offsets: Vec::new(),
                refused: Vec::new(),
                hashes: Vec::new(),
                trace_fields: [b"trace_id".to_vec(), b"span_id".to_vec(), b"trace_flags".to_vec()],
                trace_lengths: (1 << 8) | (1 << 7) | (1 << 11),
                watched_bits: 0,
                captured: [Captured::None; SLOTS],
                minute: None,
                level: ([0; 16], usize::MAX, 0),
                objects: 0,
                texts: 0,
            });
        }
        let e = ENCODER.as_mut().unwrap_unchecked();
        if e.watched_bits == 0 {
            e.watch();
        }
        e
    }
}

/// Allocates `len` bytes (alignment 8) for the host. Returns 0 when `len <= 0` or memory is out.
#[no_mangle]
pub extern "C" fn alloc(len: i32) -> i32 {
    if len <= 0 {
        return 0;
    }
    match Layout::from_size_align(len as usize, 8) {
        // SAFETY: the layout has a non-zero size; a null result (out of memory) is returned as 0.
        Ok(layout) => unsafe { sys_alloc(layout) as i32 },
        Err(_) => 0,
    }
}

#[no_mangle]
pub extern "C" fn dealloc(ptr: i32, len: i32) {
    if ptr == 0 || len <= 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(len as usize, 8) {
        // SAFETY: the host passes back a pointer and length it got from `alloc`.
        unsafe { sys_dealloc(ptr as *mut u8, layout) }
    }
}

/// Address of the result area (see RESULT).
#[no_mangle]
pub extern "C" fn result() -> i32 {
    // SAFETY: taking the address of a static does not read or write it.
    unsafe { std::ptr::addr_of!(RESULT) as i32 }
}

/// The mapping's trace field names, back to back at `ptr` (lengths `a`, `b`, `c`; 0 turns a rule off).
///
/// # Safety
/// `ptr` must point to `a + b + c` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn configure(ptr: i32, a: i32, b: i32, c: i32) -> i32 {
    if a < 0 || b < 0 || c < 0 {
        return 1;
    }
    let total = (a + b + c) as usize;
    let names: &[u8] = if total == 0 { &[] } else { std::slice::from_raw_parts(ptr as *const u8, total) };
    let (a, b) = (a as usize, b as usize);
    let e = encoder();
    e.trace_fields = [names[..a].to_vec(), names[a..a + b].to_vec(), names[a + b..].to_vec()];
    e.trace_lengths = e.trace_fields.iter().filter(|name| !name.is_empty()).fold(0, |bits, name| bits | (1u64 << name.len().min(63)));
    e.watch();
    0
}

/// Encodes `count` lines, line `i` at `data[offsets[i], offsets[i + 1])`, as LogRecord entries.
/// `tail` is what ends every record: the batch's record attributes, then the observed time field
/// (its last 8 bytes are the observed time). Record offsets are written relative to `base`.
/// `json` = 0: every line is text (the batch's format is not json). Returns 0, or 1 for bad arguments.
///
/// # Safety
/// The pointers must point to the readable areas their lengths describe.
#[no_mangle]
pub unsafe extern "C" fn encode_batch(
    data_ptr: i32,
    data_len: i32,
    offsets_ptr: i32,
    count: i32,
    tail_ptr: i32,
    tail_len: i32,
    base: i32,
    json: i32,
) -> i32 {
    if data_len < 0 || count < 0 || tail_len < 9 || base < 0 {
        return 1;
    }
    let data: &[u8] = if data_len == 0 { &[] } else { std::slice::from_raw_parts(data_ptr as *const u8, data_len as usize) };
    let offsets = std::slice::from_raw_parts(offsets_ptr as *const u32, count as usize + 1);
    let tail = std::slice::from_raw_parts(tail_ptr as *const u8, tail_len as usize);
    for i in 0..count as usize {
        if offsets[i] > offsets[i + 1] || offsets[i + 1] as usize > data.len() {
            return 1;
        }
    }
    let e = encoder();
    e.encode(data, offsets, tail, base as u32, json != 0);
    RESULT = [
        e.out.as_ptr() as u32,
        e.out.len() as u32,
        e.offsets.as_ptr() as u32,
        e.refused.as_ptr() as u32,
        e.refused.len() as u32,
        e.objects,
        e.texts,
        0,
    ];
    0
}

#[inline]
fn varint_size(mut value: u64) -> usize {
    let mut size = 1;
    while value >= 0x80 {
        value >>= 7;
        size += 1;
    }
    size
}

/// The output cursor's writes. Every record reserves room for its worst case first
/// (`record_bound`), so they need no capacity checks: the position stays in a register.
#[inline(always)]
fn put(buf: *mut u8, at: usize, byte: u8) {
    // SAFETY: `at` is within the room reserved for the record being written.
    unsafe { *buf.add(at) = byte }
}

#[inline(always)]
fn put_varint(buf: *mut u8, mut at: usize, mut value: u64) -> usize {
    while value >= 0x80 {
        put(buf, at, (value as u8 & 0x7f) | 0x80);
        value >>= 7;
        at += 1;
    }
    put(buf, at, value as u8);
    at + 1
}

#[inline(always)]
fn put_bytes(buf: *mut u8, at: usize, bytes: &[u8]) -> usize {
    // SAFETY: within the reserved room; the source is never the output buffer.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.add(at), bytes.len()) }
    at + bytes.len()
}

/// The bytes written at `[from, to)`.
#[inline(always)]
fn written<'a>(buf: *mut u8, from: usize, to: usize) -> &'a [u8] {
    // SAFETY: written by this record, and not written again while the slice is in use.
    unsafe { std::slice::from_raw_parts(buf.add(from), to - from) }
}

/// Room a record of a `length`-byte line may need. The body is at most ~4.4 times the line (an
/// array of `-1` items: 3 bytes in, a 10-byte varint plus four bytes of tags out), its length
/// prefixes grow by at most 3% (only a container of 128 bytes or more needs a longer one), the
/// level text is at most the line, the time and trace fields take 9 + 28 + 5.
fn record_bound(length: usize, tail: usize) -> usize {
    length * 7 + tail + 256
}

/// Lines longer than this are left to JS: the room reserved for one (7 times its length) stays in
/// the instance's memory for good, which must stay small.
const MAX_LINE: usize = 1 << 20;

/// Writes the minimal length prefix of `[at + reserve, end)` at `at`, moving the content when the
/// prefix needs another size; returns where the content now ends.
#[inline(always)]
fn end(buf: *mut u8, at: usize, reserve: usize, end: usize) -> usize {
    let length = end - at - reserve;
    if reserve == 1 && length < 0x80 {
        put(buf, at, length as u8);
        return end;
    }
    if reserve == 2 && (0x80..0x4000).contains(&length) {
        put(buf, at, (length as u8 & 0x7f) | 0x80);
        put(buf, at + 1, (length >> 7) as u8);
        return end;
    }
    end_moving(buf, at, reserve, length)
}

#[cold]
#[inline(never)]
fn end_moving(buf: *mut u8, at: usize, reserve: usize, length: usize) -> usize {
    let size = varint_size(length as u64);
    // SAFETY: a move within the record's reserved room (record_bound counts the growth).
    unsafe { std::ptr::copy(buf.add(at + reserve), buf.add(at + size), length) }
    put_varint(buf, at, length as u64);
    at + size + length
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is `"`, `\\` or a control byte (the classic SWAR tests;
/// a byte above a flagged one may be flagged falsely, so only the lowest flag is exact).
#[inline(always)]
fn stops(word: u64) -> u64 {
    let quote = word ^ (ONES * b'"' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    ((quote.wrapping_sub(ONES) & !quote) | (backslash.wrapping_sub(ONES) & !backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGHS
}

/// Copies the plain run of a string's content from `line[p..]` to `buf[at..]`; returns where it
/// stopped in the line (at `"`, `\`, a control byte or the end) and where the copy ends.
#[inline(always)]
fn copy_plain(line: &[u8], mut p: usize, buf: *mut u8, mut at: usize) -> (usize, usize) {
    // Eight bytes at a time: each word is stored whole (bytes past the run are overwritten by what
    // follows; record_bound leaves the slack), and the run ends at the first byte flagged.
    while p + 8 <= line.len() {
        // SAFETY: `p + 8 <= line.len()`.
        let word = u64::from_le_bytes(unsafe { *(line.as_ptr().add(p) as *const [u8; 8]) });
        // SAFETY: within the record's reserved room (record_bound's slack covers the 7 extra bytes).
        unsafe { (buf.add(at) as *mut [u8; 8]).write_unaligned(word.to_le_bytes()) };
        let found = stops(word);
        if found != 0 {
            let n = (found.trailing_zeros() / 8) as usize;
            return (p + n, at + n);
        }
        at += 8;
        p += 8;
    }
    while p < line.len() {
        let c = line[p];
        if STOP[c as usize] {
            break;
        }
        put(buf, at, c);
        at += 1;
        p += 1;
    }
    (p, at)
}

/// A 64-bit hash of a key's bytes, read a word at a time (the key as decoded, so that escaped and
/// plain spellings of one key collide).
#[inline(always)]
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        // SAFETY: a chunk of exactly 8 bytes.
        let word = u64::from_le_bytes(unsafe { *(chunk.as_ptr() as *const [u8; 8]) });
        hash = (hash ^ word).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    let mut last = 0u64;
    let mut i = 0;
    if rest.len() >= 4 {
        last = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        i = 4;
    }
    if rest.len() - i >= 2 {
        last |= (u16::from_le_bytes([rest[i], rest[i + 1]]) as u64) << (i * 8);
        i += 2;
    }
    if rest.len() > i {
        last |= (rest[i] as u64) << (i * 8);
    }
    hash = (hash ^ last).wrapping_mul(K);
    hash ^ (hash >> 32)
}

/// The first position at or after `p` that is not JSON whitespace.
#[inline(always)]
fn skip_blanks(line: &[u8], mut p: usize) -> usize {
    while p < line.len() && line[p] <= b' ' && is_blank(line[p]) {
        p += 1;
    }
    p
}

/// Whether every byte is ASCII, eight at a time.
fn is_ascii(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let mut any = 0u64;
    for chunk in &mut chunks {
        // SAFETY: a chunk of exactly 8 bytes.
        any |= u64::from_le_bytes(unsafe { *(chunk.as_ptr() as *const [u8; 8]) });
    }
    for &c in chunks.remainder() {
        any |= c as u64;
    }
    any & HIGHS == 0
}

#[inline]
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n' || c == b'\r'
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Bytes that end the plain run of a string: `"`, `\` and control bytes.
static STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

impl Encoder {
    /// The hash bits of the watched keys (the timestamp and level fields, the trace fields).
    fn watch(&mut self) {
        let fixed: [&[u8]; 5] = [b"timestamp", b"ts", b"time", b"level", b"severity"];
        let mut bits = 0u64;
        for name in fixed.iter().copied().chain(self.trace_fields.iter().map(|name| name.as_slice())) {
            bits |= 1u64 << (key_hash(name) >> 58);
        }
        self.watched_bits = bits;
    }

    fn encode(&mut self, data: &[u8], offsets: &[u32], tail: &[u8], base: u32, json: bool) {
        let count = offsets.len() - 1;
        // One check for the whole batch (nearly always ASCII); otherwise each line is checked.
        let ascii = is_ascii(data);
        self.out.clear();
        self.offsets.clear();
        self.refused.clear();
        self.objects = 0;
        self.texts = 0;
        for i in 0..count {
            let start = self.out.len();
            self.offsets.push(base + start as u32);
            let line = &data[offsets[i] as usize..offsets[i + 1] as usize];
            let bound = record_bound(line.len(), tail.len());
            let done = if line.len() > MAX_LINE || !(ascii || std::str::from_utf8(line).is_ok()) {
                Err(Refuse)
            } else {
                self.out.reserve(bound);
                self.buf = self.out.as_mut_ptr();
                let mut brace = 0;
                while brace < line.len() && (line[brace] == b' ' || line[brace] == b'\t') {
                    brace += 1;
                }
                if json && brace < line.len() && line[brace] == b'{' {
                    self.object_record(line, brace, tail, start).map(|end| (end, true))
                } else {
                    Ok((self.text_record(line, tail, start), false))
                }
            };
            match done {
                Ok((end, object)) => {
                    // record_bound() is an argument, not a check: should a record ever outgrow it,
                    // trap (the host then encodes the batch in JS and stops using this instance).
                    if end - start > bound {
                        panic!("record outgrew record_bound");
                    }
                    // SAFETY: `[start, end)` was written, within the room reserved.
                    unsafe { self.out.set_len(end) };
                    if object {
                        self.objects += 1;
                    } else {
                        self.texts += 1;
                    }
                }
                Err(Refuse) => self.refused.push(i as u32),
            }
        }
        self.offsets.push(base + self.out.len() as u32);
    }

    /// A line that is not a JSON object: the observed time as its time, the line as a string body.
    fn text_record(&mut self, line: &[u8], tail: &[u8], start: usize) -> usize {
        let buf = self.buf;
        put(buf, start, TAG_LOG_RECORD);
        let record = start + 1;
        let mut at = record + 2;
        put(buf, at, TAG_TIME);
        at = put_bytes(buf, at + 1, &tail[tail.len() - 8..]);
        put(buf, at, TAG_BODY);
        at = put_varint(buf, at + 1, (line.len() + 1 + varint_size(line.len() as u64)) as u64);
        put(buf, at, TAG_STRING);
        at = put_varint(buf, at + 1, line.len() as u64);
        at = put_bytes(buf, at, line);
        at = put_bytes(buf, at, tail);
        end(buf, record, 2, at)
    }

    /// A JSON object line as transcodeRecord() writes it: body, time, severity, trace context, tail.
    fn object_record(&mut self, line: &[u8], brace: usize, tail: &[u8], start: usize) -> Step<usize> {
        self.captured = [Captured::None; SLOTS];
        self.hashes.clear();
        let buf = self.buf;
        put(buf, start, TAG_LOG_RECORD);
        let record = start + 1;
        put(buf, start + 3, TAG_BODY);
        let body = start + 4;
        put(buf, start + 6, TAG_KVLIST);
        let list = start + 7;
        let mut reader = Reader { line, pos: brace };
        let at = self.members(&mut reader, 0, start + 9)?;
        reader.skip_blanks();
        if reader.pos != line.len() {
            return Err(Refuse);
        }
        let at = end(buf, list, 2, at);
        let mut at = end(buf, body, 2, at);
        put(buf, at, TAG_TIME);
        at = match self.event_time(line)? {
            Some(nanos) => put_bytes(buf, at + 1, &nanos.to_le_bytes()),
            None => put_bytes(buf, at + 1, &tail[tail.len() - 8..]),
        };
        at = self.severity(line, at)?;
        at = self.trace_context(line, at)?;
        at = put_bytes(buf, at, tail);
        Ok(end(buf, record, 2, at))
    }

    /// At `{`: the members as `KeyValueList.values` entries, from `at`; returns where they end.
    /// The common member (a plain key, then a plain string or any other value) is read here with
    /// the line position in a local; escapes and nested values go through string() and value().
    fn members(&mut self, r: &mut Reader, depth: u32, mut at: usize) -> Step<usize> {
        if depth > MAX_DEPTH {
            return Err(Refuse);
        }
        let line = r.line;
        let buf = self.buf;
        let mut p = skip_blanks(line, r.pos + 1);
        if line.get(p) == Some(&b'}') {
            r.pos = p + 1;
            return Ok(at);
        }
        let first_hash = self.hashes.len();
        let mut seen = 0u64;
        loop {
            if line.get(p) != Some(&b'"') {
                return Err(Refuse);
            }
            put(buf, at, TAG_VALUES);
            let entry = at + 1;
            put(buf, at + 2, TAG_KEY);
            let key_prefix = at + 3;
            let key_start = at + 4;
            let (stop, mut key_end) = copy_plain(line, p + 1, buf, key_start);
            match line.get(stop) {
                Some(b'"') => p = stop + 1,
                Some(b'\\') => {
                    r.pos = p;
                    key_end = self.string(r, key_start)?.0;
                    p = r.pos;
                }
                _ => return Err(Refuse),
            }
            let key = written(buf, key_start, key_end);
            // Integer-like keys would be reordered by a JS object: refused, as transcode.ts does.
            if !key.is_empty() && key[0].is_ascii_digit() {
                return Err(Refuse);
            }
            // Duplicates by a 64-bit hash: a collision of two different keys is refused too, which is safe.
            let hash = key_hash(key);
            let bit = 1u64 << (hash >> 58);
            if seen & bit != 0 && self.hashes[first_hash..].contains(&hash) {
                return Err(Refuse);
            }
            seen |= bit;
            self.hashes.push(hash);
            let slot = if depth == 0 && self.watched_bits & bit != 0 { self.slot_of(key) } else { None };
            at = end(buf, key_prefix, 1, key_end);

            if line.get(p) != Some(&b':') {
                p = skip_blanks(line, p);
                if line.get(p) != Some(&b':') {
                    return Err(Refuse);
                }
            }
            p = skip_blanks(line, p + 1);
            put(buf, at, TAG_VALUE);
            let value = at + 1;
            let c = line.get(p).copied().unwrap_or(0);
            if c.is_ascii_digit() && c != b'0' {
                // A plain positive integer of up to 15 digits (exact as a double): written here.
                let mut q = p;
                let mut v = 0u64;
                while q < line.len() && line[q].is_ascii_digit() && q - p < 16 {
                    v = v * 10 + (line[q] - b'0') as u64;
                    q += 1;
                }
                let next = line.get(q).copied().unwrap_or(0);
                if q - p <= 15 && !next.is_ascii_digit() && next != b'.' && next != b'e' && next != b'E' {
                    if let Some(slot) = slot {
                        self.captured[slot] = Captured::Number(v as f64, Some(v as i64));
                    }
                    put(buf, at + 2, TAG_INT);
                    at = put_varint(buf, at + 3, v);
                    p = q;
                } else {
                    r.pos = p;
                    at = self.value(r, depth + 1, slot, at + 2)?;
                    p = r.pos;
                }
            } else if c == b'"' {
                put(buf, at + 2, TAG_STRING);
                let (stop, content_end) = copy_plain(line, p + 1, buf, at + 4);
                if line.get(stop) == Some(&b'"') {
                    if let Some(slot) = slot {
                        self.captured[slot] = Captured::Raw(p + 1, stop);
                    }
                    p = stop + 1;
                    at = end(buf, at + 3, 1, content_end);
                } else {
                    r.pos = p;
                    at = self.value(r, depth + 1, slot, at + 2)?;
                    p = r.pos;
                }
            } else {
                r.pos = p;
                at = self.value(r, depth + 1, slot, at + 2)?;
                p = r.pos;
            }
            at = end(buf, value, 1, at);
            at = end(buf, entry, 1, at);
            p = skip_blanks(line, p);
            match line.get(p) {
                Some(b',') => p = skip_blanks(line, p + 1),
                Some(b'}') => {
                    r.pos = p + 1;
                    self.hashes.truncate(first_hash);
                    return Ok(at);
                }
                _ => return Err(Refuse),
            }
        }
    }

    /// The capture slot of a top-level key, if it is watched.
    #[inline]
    fn slot_of(&self, key: &[u8]) -> Option<usize> {
        match key {
            b"timestamp" => return Some(0),
            b"ts" => return Some(1),
            b"time" => return Some(2),
            b"level" => return Some(SLOT_LEVEL),
            b"severity" => return Some(SLOT_SEVERITY),
            _ => {}
        }
        if self.trace_lengths & (1u64 << key.len().min(63)) == 0 {
            return None;
        }
        self.trace_fields.iter().position(|name| !name.is_empty() && name.as_slice() == key).map(|k| SLOT_TRACE_ID + k)
    }

    /// At `[`: the items as `ArrayValue.values` entries, from `at`; returns where they end.
    fn items(&mut self, r: &mut Reader, depth: u32, mut at: usize) -> Step<usize> {
        if depth > MAX_DEPTH {
            return Err(Refuse);
        }
        r.pos += 1;
        r.skip_blanks();
        if r.peek() == Some(b']') {
            r.pos += 1;
            return Ok(at);
        }
        let buf = self.buf;
        loop {
            put(buf, at, TAG_VALUES);
            let item = at + 1;
            at = self.value(r, depth + 1, None, at + 2)?;
            at = end(buf, item, 1, at);
            r.skip_blanks();
            match r.peek() {
                Some(b',') => {
                    r.pos += 1;
                    r.skip_blanks();
                }
                Some(b']') => {
                    r.pos += 1;
                    return Ok(at);
                }
                _ => return Err(Refuse),
            }
        }
    }

    /// An AnyValue's content for the JSON value at the reader, from `at`; captured into `slot` if given.
    fn value(&mut self, r: &mut Reader, depth: u32, slot: Option<usize>, at: usize) -> Step<usize> {
        let buf = self.buf;
        match r.peek() {
            Some(b'"') => {
                put(buf, at, TAG_STRING);
                let start = r.pos + 1;
                let (content_end, escaped) = self.string(r, at + 2)?;
                if let Some(slot) = slot {
                    self.captured[slot] = if escaped { Captured::Other } else { Captured::Raw(start, r.pos - 1) };
                }
                Ok(end(buf, at + 1, 1, content_end))
            }
            Some(b'{') => {
                put(buf, at, TAG_KVLIST);
                let content_end = self.members(r, depth, at + 2)?;
                Ok(end(buf, at + 1, 1, content_end))
            }
            Some(b'[') => {
                put(buf, at, TAG_ARRAY);
                let content_end = self.items(r, depth, at + 2)?;
                Ok(end(buf, at + 1, 1, content_end))
            }
            Some(b't') => {
                r.literal(b"true")?;
                put(buf, at, TAG_BOOL);
                put(buf, at + 1, 1);
                Ok(at + 2)
            }
            Some(b'f') => {
                r.literal(b"false")?;
                put(buf, at, TAG_BOOL);
                put(buf, at + 1, 0);
                Ok(at + 2)
            }
            // null: an empty AnyValue.
            Some(b'n') => r.literal(b"null").map(|_| at),
            _ => self.number(r, slot, at),
        }
    }

    /// A JSON number by the OTel rule: integers in int64 range as int_value, others as double_value.
    fn number(&mut self, r: &mut Reader, slot: Option<usize>, at: usize) -> Step<usize> {
        let line = r.line;
        let start = r.pos;
        let mut pos = start;
        let negative = line.get(pos) == Some(&b'-');
        if negative {
            pos += 1;
        }
        let first = *line.get(pos).ok_or(Refuse)?;
        if !first.is_ascii_digit() {
            return Err(Refuse);
        }
        // Every digit as one mantissa, exact while there are at most 15 significant ones.
        let mut mantissa: u64 = 0;
        let mut significant = 0u32;
        if first == b'0' {
            pos += 1;
        } else {
            while pos < line.len() && line[pos].is_ascii_digit() {
                if significant < 19 {
                    mantissa = mantissa * 10 + (line[pos] - b'0') as u64;
                }
                significant += 1;
                pos += 1;
            }
        }
        let integer_digits = significant;
        let mut fraction_digits = 0u32;
        if line.get(pos) == Some(&b'.') {
            pos += 1;
            let fraction = pos;
            while pos < line.len() && line[pos].is_ascii_digit() {
                let d = line[pos] - b'0';
                if significant > 0 || d != 0 {
                    significant += 1;
                }
                if significant < 19 {
                    mantissa = mantissa * 10 + d as u64;
                }
                pos += 1;
            }
            fraction_digits = (pos - fraction) as u32;
            if fraction_digits == 0 {
                return Err(Refuse);
            }
        }
        let mut exponent = false;
        if matches!(line.get(pos), Some(b'e') | Some(b'E')) {
            exponent = true;
            pos += 1;
            if matches!(line.get(pos), Some(b'+') | Some(b'-')) {
                pos += 1;
            }
            let digits = pos;
            while pos < line.len() && line[pos].is_ascii_digit() {
                pos += 1;
            }
            if pos == digits {
                return Err(Refuse);
            }
        }
        r.pos = pos;
        let small_integer = !exponent && fraction_digits == 0 && integer_digits <= 15;
        let value: f64 = if small_integer {
            let m = mantissa as f64;
            if negative {
                -m
            } else {
                m
            }
        } else if !exponent && significant <= 15 && fraction_digits <= 22 {
            // An exact mantissa divided by an exact power of ten: one correctly rounded operation.
            let m = mantissa as f64 / POWERS_OF_TEN[fraction_digits as usize];
            if negative {
                -m
            } else {
                m
            }
        } else {
            // SAFETY: the token is ASCII (checked above byte by byte).
            let text = unsafe { std::str::from_utf8_unchecked(&line[start..pos]) };
            text.parse::<f64>().map_err(|_| Refuse)?
        };
        if !value.is_finite() {
            return Err(Refuse);
        }
        if let Some(slot) = slot {
            let integer = if small_integer { Some(if negative { -(mantissa as i64) } else { mantissa as i64 }) } else { None };
            self.captured[slot] = Captured::Number(value, integer);
        }
        let buf = self.buf;
        if value.fract() == 0.0 && value >= -9_223_372_036_854_775_808.0 && value < 9_223_372_036_854_775_808.0 {
            put(buf, at, TAG_INT);
            Ok(put_varint(buf, at + 1, value as i64 as u64))
        } else {
            put(buf, at, TAG_DOUBLE);
            Ok(put_bytes(buf, at + 1, &value.to_le_bytes()))
        }
    }

    /// At `"`: the string's content (escapes decoded) written from `at`. Returns where it ends and
    /// whether it had escapes.
    fn string(&mut self, r: &mut Reader, mut at: usize) -> Step<(usize, bool)> {
        let line = r.line;
        let buf = self.buf;
        let (mut pos, end) = copy_plain(line, r.pos + 1, buf, at);
        at = end;
        let c = *line.get(pos).ok_or(Refuse)?;
        if c == b'"' {
            r.pos = pos + 1;
            return Ok((at, false));
        }
        if c != b'\\' {
            return Err(Refuse);
        }
        loop {
            let c = *line.get(pos).ok_or(Refuse)?;
            match c {
                b'"' => {
                    r.pos = pos + 1;
                    return Ok((at, true));
                }
                b'\\' => {
                    let kind = *line.get(pos + 1).ok_or(Refuse)?;
                    pos += 2;
                    let byte = match kind {
                        b'"' | b'\\' | b'/' => kind,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => {
                            let unit = hex4(line, pos)?;
                            pos += 4;
                            let code = if (0xd800..0xdc00).contains(&unit) {
                                // A pair, or refused: a lone surrogate is left to JS.
                                if line.get(pos) != Some(&b'\\') || line.get(pos + 1) != Some(&b'u') {
                                    return Err(Refuse);
                                }
                                let low = hex4(line, pos + 2)?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(Refuse);
                                }
                                pos += 6;
                                0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                            } else if (0xdc00..0xe000).contains(&unit) {
                                return Err(Refuse);
                            } else {
                                unit
                            };
                            at = put_utf8(buf, at, code);
                            continue;
                        }
                        _ => return Err(Refuse),
                    };
                    put(buf, at, byte);
                    at += 1;
                }
                c if c < 0x20 => return Err(Refuse),
                c => {
                    put(buf, at, c);
                    at += 1;
                    pos += 1;
                }
            }
        }
    }

    /// The event time in nanoseconds from the timestamp fields (eventTime()'s rules); None: the observed time.
    fn event_time(&mut self, line: &[u8]) -> Step<Option<u64>> {
        for slot in 0..3 {
            match self.captured[slot] {
                Captured::None => continue,
                Captured::Other => return Err(Refuse),
                Captured::Raw(start, end) => match fast_rfc3339(&line[start..end], &mut self.minute) {
                    Shape::Time(seconds, nanos) => return Ok(Some(hr_nanos(seconds, nanos))),
                    Shape::Invalid => continue,
                    Shape::Other => return Err(Refuse),
                },
                Captured::Number(value, integer) => {
                    if !(value > 0.0) {
                        continue;
                    }
                    // Whole seconds or milliseconds: the float steps of fromEpochNumber() are exact there.
                    match integer {
                        Some(v) if v < 100_000_000_000 => return Ok(Some(hr_nanos(v, 0))),
                        Some(v) if v < 100_000_000_000_000 => return Ok(Some(hr_nanos(v / 1000, (v % 1000) as u64 * 1_000_000))),
                        _ => return Err(Refuse),
                    }
                }
            }
        }
        Ok(None)
    }

    /// severity_number and severity_text from the first level field (severityOf()'s rules), from `at`.
    fn severity(&mut self, line: &[u8], mut at: usize) -> Step<usize> {
        let captured = match self.captured[SLOT_LEVEL] {
            Captured::None => self.captured[SLOT_SEVERITY],
            other => other,
        };
        let buf = self.buf;
        let mut digits = [0u8; 24];
        let (number, text): (u32, &[u8]) = match captured {
            Captured::None => return Ok(at),
            Captured::Other => return Err(Refuse),
            Captured::Raw(start, end) => {
                let text = &line[start..end];
                let (last, last_length, last_number) = &mut self.level;
                if text.len() == *last_length && *text == last[..text.len()] {
                    (*last_number, text)
                } else {
                    if !text.is_ascii() {
                        return Err(Refuse);
                    }
                    let number = severity_of_name(text);
                    if text.len() <= last.len() {
                        last[..text.len()].copy_from_slice(text);
                        *last_length = text.len();
                        *last_number = number;
                    }
                    (number, text)
                }
            }
            Captured::Number(_, integer) => {
                let value = integer.ok_or(Refuse)?;
                let number = severity_of_number(value);
                (number, if number != 0 { SEVERITY_NAMES[((number - 1) / 4) as usize] } else { decimal(value, &mut digits) })
            }
        };
        if number != 0 {
            put(buf, at, TAG_SEVERITY_NUMBER);
            at = put_varint(buf, at + 1, number as u64);
        }
        if !text.is_empty() {
            put(buf, at, TAG_SEVERITY_TEXT);
            at = put_varint(buf, at + 1, text.len() as u64);
            at = put_bytes(buf, at, text);
        }
        Ok(at)
    }

    /// trace_id, span_id and flags from the trace fields that are valid (writeTraceContext()'s rules), from `at`.
    fn trace_context(&mut self, line: &[u8], mut at: usize) -> Step<usize> {
        let buf = self.buf;
        for (slot, tag, size) in [(SLOT_TRACE_ID, TAG_TRACE_ID, 16usize), (SLOT_SPAN_ID, TAG_SPAN_ID, 8)] {
            match self.captured[slot] {
                Captured::Raw(start, end) if end - start == size * 2 => {
                    let mut bytes = [0u8; 16];
                    let mut valid = true;
                    for (i, byte) in bytes.iter_mut().enumerate().take(size) {
                        match (hex_digit(line[start + i * 2]), hex_digit(line[start + i * 2 + 1])) {
                            (Some(high), Some(low)) => *byte = high * 16 + low,
                            _ => valid = false,
                        }
                    }
                    if valid && bytes[..size].iter().any(|&b| b != 0) {
                        put(buf, at, tag);
                        put(buf, at + 1, size as u8);
                        at = put_bytes(buf, at + 2, &bytes[..size]);
                    }
                }
                Captured::Other => return Err(Refuse),
                _ => {}
            }
        }
        let flags = match self.captured[SLOT_TRACE_FLAGS] {
            Captured::None => 0,
            Captured::Other => return Err(Refuse),
            Captured::Raw(start, end) => {
                if end - start == 2 {
                    match (hex_digit(line[start]), hex_digit(line[start + 1])) {
                        (Some(high), Some(low)) => (high * 16 + low) as u32,
                        _ => 0,
                    }
                } else {
                    0
                }
            }
            Captured::Number(_, integer) => match integer.ok_or(Refuse)? {
                v @ 0..=255 => v as u32,
                _ => 0,
            },
        };
        if flags != 0 {
            put(buf, at, TAG_FLAGS);
            at = put_bytes(buf, at + 1, &flags.to_le_bytes());
        }
        Ok(at)
    }
}

struct Reader<'a> {
    line: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    #[inline]
    fn skip_blanks(&mut self) {
        self.pos = skip_blanks(self.line, self.pos);
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        if self.line.len() - self.pos >= word.len() && &self.line[self.pos..self.pos + word.len()] == word {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Refuse)
        }
    }
}

static POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21,
    1e22,
];

fn hex4(line: &[u8], at: usize) -> Step<u32> {
    if at + 4 > line.len() {
        return Err(Refuse);
    }
    let mut value = 0u32;
    for &c in &line[at..at + 4] {
        value = value * 16 + hex_digit(c).ok_or(Refuse)? as u32;
    }
    Ok(value)
}

fn put_utf8(buf: *mut u8, at: usize, code: u32) -> usize {
    if code < 0x80 {
        put(buf, at, code as u8);
        at + 1
    } else if code < 0x800 {
        put_bytes(buf, at, &[0xc0 | (code >> 6) as u8, 0x80 | (code & 0x3f) as u8])
    } else if code < 0x10000 {
        put_bytes(buf, at, &[0xe0 | (code >> 12) as u8, 0x80 | ((code >> 6) & 0x3f) as u8, 0x80 | (code & 0x3f) as u8])
    } else {
        put_bytes(
            buf,
            at,
            &[0xf0 | (code >> 18) as u8, 0x80 | ((code >> 12) & 0x3f) as u8, 0x80 | ((code >> 6) & 0x3f) as u8, 0x80 | (code & 0x3f) as u8],
        )
    }
}

/// Seconds and nanoseconds as the 64-bit nanosecond count writeHrTime() writes (modulo 2^64).
fn hr_nanos(seconds: i64, nanos: u64) -> u64 {
    (seconds as u64).wrapping_mul(1_000_000_000).wrapping_add(nanos)
}

enum Shape {
    /// Seconds since the epoch (positive) and nanoseconds.
    Time(i64, u64),
    /// The shape, but not a valid time: the next timestamp field is tried.
    Invalid,
    /// Not the fast shape: JS's general parser decides.
    Other,
}

fn digits2(text: &[u8], at: usize) -> i64 {
    match (text.get(at), text.get(at + 1)) {
        (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => ((a - b'0') * 10 + (b - b'0')) as i64,
        _ => -1,
    }
}

const MONTH_DAYS: [i64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// mapping.ts fastRfc3339(), step for step, with its cache: consecutive lines mostly share their
/// minute, so the date part (`YYYY-MM-DDTHH:MM`) of the last valid time is remembered with its
/// seconds since the epoch, and a line with the same 16 bytes only reads the rest.
fn fast_rfc3339(text: &[u8], minute: &mut Option<([u8; 16], i64)>) -> Shape {
    let end = text.len();
    if end < 20 {
        return Shape::Other;
    }
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&text[..16]);
    let cached = match minute {
        Some((bytes, seconds)) if *bytes == prefix => Some(*seconds),
        _ => None,
    };
    let base = match cached {
        Some(seconds) => {
            if text[16] != b':' || digits2(text, 17) < 0 {
                return Shape::Other;
            }
            seconds
        }
        None => {
            if text[4] != b'-' || text[7] != b'-' {
                return Shape::Other;
            }
            let t = text[10];
            if (t != b'T' && t != b't' && t != b' ') || text[13] != b':' || text[16] != b':' {
                return Shape::Other;
            }
            let century = digits2(text, 0);
            let yy = digits2(text, 2);
            let month = digits2(text, 5);
            let day = digits2(text, 8);
            let hour = digits2(text, 11);
            let minute_of_hour = digits2(text, 14);
            if century < 19 || yy < 0 || month < 0 || day < 0 || hour < 0 || minute_of_hour < 0 || digits2(text, 17) < 0 {
                return Shape::Other;
            }
            let year = century * 100 + yy;
            if year < 1970 {
                return Shape::Other;
            }
            // The rest must have the shape before the date is judged (null before undefined, as in JS).
            if rfc3339_rest(text).is_none() {
                return Shape::Other;
            }
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            if !(1..=12).contains(&month) {
                return Shape::Invalid;
            }
            let month_days = if month == 2 && leap { 29 } else { MONTH_DAYS[(month - 1) as usize] };
            if day < 1 || day > month_days || hour > 23 || minute_of_hour > 59 {
                return Shape::Invalid;
            }
            let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute_of_hour * 60;
            *minute = Some((prefix, seconds));
            seconds
        }
    };
    let (nanos, offset_minutes) = match rfc3339_rest(text) {
        Some(rest) => rest,
        None => return Shape::Other,
    };
    let seconds = base - offset_minutes * 60 + digits2(text, 17).min(59); // A leap second reads as :59.
    if seconds > 0 {
        Shape::Time(seconds, nanos)
    } else {
        Shape::Invalid
    }
}

/// What follows the seconds: an optional fraction (nanoseconds, digits past the ninth ignored),
/// then `Z` or an offset `±HH:MM`/`±HHMM` (in minutes) ending the text. None: not this shape.
fn rfc3339_rest(text: &[u8]) -> Option<(u64, i64)> {
    let end = text.len();
    let mut at = 19;
    let mut nanos: u64 = 0;
    if text[at] == b'.' || text[at] == b',' {
        at += 1;
        let first = at;
        let mut scale: u64 = 100_000_000;
        while at < end && text[at].is_ascii_digit() {
            nanos += (text[at] - b'0') as u64 * scale;
            scale /= 10;
            at += 1;
        }
        if at == first {
            return None;
        }
    }
    match text.get(at) {
        Some(b'Z') | Some(b'z') => {
            if at + 1 != end {
                return None;
            }
            Some((nanos, 0))
        }
        Some(&zone) if zone == b'+' || zone == b'-' => {
            if at + 5 > end {
                return None;
            }
            let oh = digits2(text, at + 1);
            let colon = if text[at + 3] == b':' { 1 } else { 0 };
            if at + 5 + colon != end {
                return None;
            }
            let om = digits2(text, at + 3 + colon);
            if oh < 0 || om < 0 {
                return None;
            }
            Some((nanos, (if zone == b'-' { -1 } else { 1 }) * (oh * 60 + om)))
        }
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), as Date.UTC counts them.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const SEVERITY_NAMES: [&[u8]; 6] = [b"TRACE", b"DEBUG", b"INFO", b"WARN", b"ERROR", b"FATAL"];

/// severityFromText()'s number for an ASCII level string: its name in any case, or a numeric string.
fn severity_of_name(text: &[u8]) -> u32 {
    let mut lower = [0u8; 16];
    if text.len() <= lower.len() {
        for (i, &c) in text.iter().enumerate() {
            lower[i] = c.to_ascii_lowercase();
        }
        let number = match &lower[..text.len()] {
            b"trace" => 1,
            b"debug" => 5,
            b"info" | b"information" | b"informational" => 9,
            b"notice" => 10,
            b"warn" | b"warning" => 13,
            b"err" | b"error" => 17,
            b"crit" | b"critical" => 18,
            b"alert" => 19,
            b"fatal" | b"emerg" | b"emergency" | b"panic" => 21,
            _ => 0,
        };
        if number != 0 {
            return number;
        }
    }
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    // Number() of a digit string: leading zeros do not count; anything over 60 maps to nothing.
    let digits = &text[text.iter().position(|&c| c != b'0').unwrap_or(text.len())..];
    if digits.len() > 2 {
        return 0;
    }
    severity_of_number(digits.iter().fold(0i64, |value, &c| value * 10 + (c - b'0') as i64))
}

/// severityFromNumber(): pino/bunyan levels 10-60, else an OTLP SeverityNumber 1-24, else 0.
fn severity_of_number(value: i64) -> u32 {
    if (10..=60).contains(&value) && value % 10 == 0 {
        return (1 + (value / 10 - 1) * 4) as u32;
    }
    if (1..=24).contains(&value) {
        return value as u32;
    }
    0
}

/// `value` in decimal, as String() writes an integer below 2^53.
fn decimal(value: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut at = buf.len();
    let mut v = value.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}
