// json-parser-as: json_parser (plugins/json_parser, Rust) rewritten in AssemblyScript, passing the
// same golden fixtures (plugins/json_parser/fixtures/README.md has the rules). logwasm ABI v1:
// docs/plugin-abi.md. Built by scripts/build-plugins.sh with the npm `assemblyscript` compiler:
//   npx asc plugins/json-parser-as/assembly/index.ts --runtime incremental --use abort= -O3 ...
//
// A line that is one strict JSON object is emitted as its own bytes with `user_id` (copied from
// metadata.user.id), `session_id` (metadata.session.id) and `log_size_bytes` spliced in before the
// closing brace; existing members of those names are removed with one adjacent separator. Any
// other line passes through unchanged. Everything works on raw bytes in linear memory: no
// strings, no garbage.

const STATUS_EMIT: i32 = 0;
/** serde_json's recursion limit: the 128th nested array or object makes the line pass through. */
const MAX_NESTING: i32 = 128;

// Contexts: where a value sits on the way to metadata.user.id / metadata.session.id.
const CTX_OTHER: i32 = 0;
const CTX_TOP: i32 = 1;
const CTX_METADATA: i32 = 2;
const CTX_USER: i32 = 3;
const CTX_SESSION: i32 = 4;

// Key codes (after decoding escapes).
const KEY_OTHER: i32 = 0;
const KEY_METADATA: i32 = 1;
const KEY_USER: i32 = 2;
const KEY_SESSION: i32 = 3;
const KEY_ID: i32 = 4;
const KEY_USER_ID: i32 = 5;
const KEY_SESSION_ID: i32 = 6;
const KEY_LOG_SIZE_BYTES: i32 = 7;

/** The result area: output pointer then length, two little-endian u32. */
const RESULT: usize = memory.data(8);
/** Decoded key, when it is short enough to be one of ours. */
const KEY: usize = memory.data(16);

let pos: usize = 0;
let end: usize = 0;
let userStart: isize = -1;
let userEnd: usize = 0;
let sessionStart: isize = -1;
let sessionEnd: usize = 0;

/** Top-level members: key start, value end, key code; three i32 each. */
let members: usize = 0;
let membersCap: i32 = 0;
let memberCount: i32 = 0;

let out: usize = 0;
let outCap: usize = 0;
let outLen: usize = 0;

export function logwasm_abi_version(): i32 {
  return 1;
}

export function logwasm_result(): i32 {
  return <i32>RESULT;
}

export function alloc(len: i32): i32 {
  if (len <= 0) return 0;
  return <i32>heap.alloc(<usize>len);
}

export function dealloc(ptr: i32, len: i32): void {
  if (ptr == 0 || len <= 0) return;
  heap.free(<usize>ptr);
}

export function process_log(ptr: i32, len: i32): i32 {
  if (!rewrite(<usize>ptr, <usize>len)) {
    store<u32>(RESULT, <u32>ptr);
    store<u32>(RESULT, <u32>len, 4);
  } else {
    store<u32>(RESULT, <u32>out);
    store<u32>(RESULT, <u32>outLen, 4);
  }
  return STATUS_EMIT;
}

function rewrite(start: usize, len: usize): bool {
  pos = start;
  end = start + len;
  whitespace();
  if (pos >= end || load<u8>(pos) != 0x7b) return false;
  const open = pos;
  memberCount = 0;
  userStart = -1;
  sessionStart = -1;
  if (!object(CTX_TOP, 1)) return false;
  const close = pos - 1;
  whitespace();
  if (pos != end) return false;

  const addUser = userStart >= 0;
  const addSession = sessionStart >= 0;
  outLen = 0;
  reserve(len + 80 + (addUser ? userEnd - <usize>userStart : 0) + (addSession ? sessionEnd - <usize>sessionStart : 0));
  const firstKey: usize = memberCount > 0 ? <usize>load<i32>(members) : close;
  copy(open, firstKey);
  let kept = false;
  let previousEnd: usize = 0;
  for (let i = 0; i < memberCount; i++) {
    const at = members + <usize>i * 12;
    const keyStart = <usize>load<i32>(at);
    const valueEnd = <usize>load<i32>(at, 4);
    const code = load<i32>(at, 8);
    const replaced = code == KEY_LOG_SIZE_BYTES || (code == KEY_USER_ID && addUser) || (code == KEY_SESSION_ID && addSession);
    if (!replaced) {
      if (kept) copy(previousEnd, keyStart);
      copy(keyStart, valueEnd);
      kept = true;
    }
    previousEnd = valueEnd;
  }
  if (memberCount > 0) copy(previousEnd, close);
  let first = !kept;
  if (addUser) {
    if (!first) byte(0x2c);
    ascii('"user_id":');
    copy(<usize>userStart, userEnd);
    first = false;
  }
  if (addSession) {
    if (!first) byte(0x2c);
    ascii('"session_id":');
    copy(<usize>sessionStart, sessionEnd);
    first = false;
  }
  if (!first) byte(0x2c);
  ascii('"log_size_bytes":');
  decimal(len);
  byte(0x7d);
  return true;
}

function whitespace(): void {
  while (pos < end) {
    const c = load<u8>(pos);
    if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) pos++;
    else break;
  }
}

function value(ctx: i32, depth: i32): bool {
  if (pos >= end) return false;
  const c = load<u8>(pos);
  if (c == 0x7b) return object(ctx, depth + 1);
  if (c == 0x5b) return array(depth + 1);
  if (c == 0x22) return scanString();
  if (c == 0x74) return literal('true');
  if (c == 0x66) return literal('false');
  if (c == 0x6e) return literal('null');
  return number();
}

function object(ctx: i32, depth: i32): bool {
  if (depth >= MAX_NESTING) return false;
  pos++;
  whitespace();
  if (pos < end && load<u8>(pos) == 0x7d) {
    pos++;
    return true;
  }
  while (true) {
    if (pos >= end || load<u8>(pos) != 0x22) return false;
    const keyStart = pos;
    if (!scanString()) return false;
    const code = keyCode(keyStart + 1, pos - 1);
    whitespace();
    if (pos >= end || load<u8>(pos) != 0x3a) return false;
    pos++;
    whitespace();
    let child = CTX_OTHER;
    // When a key repeats, the last one counts (as in JSON.parse): entering a value forgets what
    // an earlier duplicate found below it.
    if (ctx == CTX_TOP && code == KEY_METADATA) {
      child = CTX_METADATA;
      userStart = -1;
      sessionStart = -1;
    } else if (ctx == CTX_METADATA && code == KEY_USER) {
      child = CTX_USER;
      userStart = -1;
    } else if (ctx == CTX_METADATA && code == KEY_SESSION) {
      child = CTX_SESSION;
      sessionStart = -1;
    }
    const valueStart = pos;
    const isObject = pos < end && load<u8>(pos) == 0x7b;
    if (!value(isObject ? child : CTX_OTHER, depth)) return false;
    if (code == KEY_ID && ctx == CTX_USER) {
      userStart = <isize>valueStart;
      userEnd = pos;
    } else if (code == KEY_ID && ctx == CTX_SESSION) {
      sessionStart = <isize>valueStart;
      sessionEnd = pos;
    }
    if (ctx == CTX_TOP) addMember(keyStart, pos, code);
    whitespace();
    if (pos >= end) return false;
    const c = load<u8>(pos);
    if (c == 0x2c) {
      pos++;
      whitespace();
      continue;
    }
    if (c == 0x7d) {
      pos++;
      return true;
    }
    return false;
  }
  return false;
}

function array(depth: i32): bool {
  if (depth >= MAX_NESTING) return false;
  pos++;
  whitespace();
  if (pos < end && load<u8>(pos) == 0x5d) {
    pos++;
    return true;
  }
  while (true) {
    if (!value(CTX_OTHER, depth)) return false;
    whitespace();
    if (pos >= end) return false;
    const c = load<u8>(pos);
    if (c == 0x2c) {
      pos++;
      whitespace();
      continue;
    }
    if (c == 0x5d) {
      pos++;
      return true;
    }
    return false;
  }
  return false;
}

function literal(word: string): bool {
  const n = <usize>word.length;
  if (end - pos < n) return false;
  for (let i: usize = 0; i < n; i++) {
    if (<i32>load<u8>(pos + i) != word.charCodeAt(<i32>i)) return false;
  }
  pos += n;
  return true;
}

function isDigit(c: u32): bool {
  return c >= 0x30 && c <= 0x39;
}

/** Strict JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
function number(): bool {
  if (pos < end && load<u8>(pos) == 0x2d) pos++;
  if (pos >= end) return false;
  const first = load<u8>(pos);
  if (first == 0x30) {
    pos++;
  } else if (first >= 0x31 && first <= 0x39) {
    while (pos < end && isDigit(load<u8>(pos))) pos++;
  } else {
    return false;
  }
  if (pos < end && load<u8>(pos) == 0x2e) {
    pos++;
    if (pos >= end || !isDigit(load<u8>(pos))) return false;
    while (pos < end && isDigit(load<u8>(pos))) pos++;
  }
  if (pos < end && (load<u8>(pos) == 0x65 || load<u8>(pos) == 0x45)) {
    pos++;
    if (pos < end && (load<u8>(pos) == 0x2b || load<u8>(pos) == 0x2d)) pos++;
    if (pos >= end || !isDigit(load<u8>(pos))) return false;
    while (pos < end && isDigit(load<u8>(pos))) pos++;
  }
  return true;
}

function hex4(at: usize): i32 {
  if (end - at < 4) return -1;
  let value = 0;
  for (let i: usize = 0; i < 4; i++) {
    const c = <i32>load<u8>(at + i);
    let digit = -1;
    if (c >= 0x30 && c <= 0x39) digit = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) digit = c - 0x61 + 10;
    else if (c >= 0x41 && c <= 0x46) digit = c - 0x41 + 10;
    if (digit < 0) return -1;
    value = (value << 4) | digit;
  }
  return value;
}

function continuation(at: usize): bool {
  return at < end && (load<u8>(at) & 0xc0) == 0x80;
}

/** A string at `pos` (the opening quote): escapes, UTF-8 and surrogate pairs checked. */
function scanString(): bool {
  pos++;
  while (pos < end) {
    const c = load<u8>(pos);
    if (c == 0x22) {
      pos++;
      return true;
    }
    if (c == 0x5c) {
      pos++;
      if (pos >= end) return false;
      const e = load<u8>(pos);
      if (e == 0x22 || e == 0x5c || e == 0x2f || e == 0x62 || e == 0x66 || e == 0x6e || e == 0x72 || e == 0x74) {
        pos++;
        continue;
      }
      if (e != 0x75) return false;
      const unit = hex4(pos + 1);
      if (unit < 0) return false;
      pos += 5;
      if (unit >= 0xdc00 && unit <= 0xdfff) return false;
      if (unit >= 0xd800 && unit <= 0xdbff) {
        if (end - pos < 6 || load<u8>(pos) != 0x5c || load<u8>(pos + 1) != 0x75) return false;
        const low = hex4(pos + 2);
        if (low < 0xdc00 || low > 0xdfff) return false;
        pos += 6;
      }
      continue;
    }
    if (c < 0x20) return false;
    if (c < 0x80) {
      pos++;
      continue;
    }
    // UTF-8, strictly: no overlong forms, no surrogates, nothing past U+10FFFF.
    if (c >= 0xc2 && c <= 0xdf) {
      if (!continuation(pos + 1)) return false;
      pos += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (pos + 1 >= end) return false;
      const b = load<u8>(pos + 1);
      if (c == 0xe0 && (b < 0xa0 || b > 0xbf)) return false;
      if (c == 0xed && (b < 0x80 || b > 0x9f)) return false;
      if (!continuation(pos + 1) || !continuation(pos + 2)) return false;
      pos += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (pos + 1 >= end) return false;
      const b = load<u8>(pos + 1);
      if (c == 0xf0 && (b < 0x90 || b > 0xbf)) return false;
      if (c == 0xf4 && (b < 0x80 || b > 0x8f)) return false;
      if (!continuation(pos + 1) || !continuation(pos + 2) || !continuation(pos + 3)) return false;
      pos += 4;
    } else {
      return false;
    }
  }
  return false;
}

/** Which of our keys the (already validated) key bytes name, after decoding escapes. */
function keyCode(from: usize, to: usize): i32 {
  let n: usize = 0;
  let at = from;
  while (at < to) {
    if (n >= 16) return KEY_OTHER;
    let c = <i32>load<u8>(at);
    if (c == 0x5c) {
      const e = <i32>load<u8>(at + 1);
      if (e == 0x75) {
        c = hex4(at + 2);
        at += 6;
        if (c >= 0x80) return KEY_OTHER;
      } else {
        c = e == 0x62 ? 8 : e == 0x66 ? 12 : e == 0x6e ? 10 : e == 0x72 ? 13 : e == 0x74 ? 9 : e;
        at += 2;
      }
    } else {
      if (c >= 0x80) return KEY_OTHER;
      at++;
    }
    store<u8>(KEY + n, <u8>c);
    n++;
  }
  if (keyIs(n, 'metadata')) return KEY_METADATA;
  if (keyIs(n, 'user')) return KEY_USER;
  if (keyIs(n, 'session')) return KEY_SESSION;
  if (keyIs(n, 'id')) return KEY_ID;
  if (keyIs(n, 'user_id')) return KEY_USER_ID;
  if (keyIs(n, 'session_id')) return KEY_SESSION_ID;
  if (keyIs(n, 'log_size_bytes')) return KEY_LOG_SIZE_BYTES;
  return KEY_OTHER;
}

function keyIs(n: usize, word: string): bool {
  if (<usize>word.length != n) return false;
  for (let i: usize = 0; i < n; i++) {
    if (<i32>load<u8>(KEY + i) != word.charCodeAt(<i32>i)) return false;
  }
  return true;
}

function addMember(keyStart: usize, valueEnd: usize, code: i32): void {
  if (memberCount == membersCap) {
    const cap = membersCap == 0 ? 16 : membersCap * 2;
    members = members == 0 ? heap.alloc(<usize>cap * 12) : heap.realloc(members, <usize>cap * 12);
    membersCap = cap;
  }
  const at = members + <usize>memberCount * 12;
  store<i32>(at, <i32>keyStart);
  store<i32>(at, <i32>valueEnd, 4);
  store<i32>(at, code, 8);
  memberCount++;
}

function reserve(bytes: usize): void {
  if (outLen + bytes <= outCap) return;
  let cap = outCap == 0 ? <usize>4096 : outCap;
  while (cap < outLen + bytes) cap *= 2;
  out = out == 0 ? heap.alloc(cap) : heap.realloc(out, cap);
  outCap = cap;
}

function copy(from: usize, to: usize): void {
  const n = to - from;
  reserve(n);
  memory.copy(out + outLen, from, n);
  outLen += n;
}

function byte(b: u8): void {
  reserve(1);
  store<u8>(out + outLen, b);
  outLen++;
}

function ascii(text: string): void {
  const n = text.length;
  reserve(<usize>n);
  for (let i = 0; i < n; i++) store<u8>(out + outLen + <usize>i, <u8>text.charCodeAt(i));
  outLen += <usize>n;
}

function decimal(value: usize): void {
  let digits: usize = 1;
  let rest = value;
  while (rest >= 10) {
    rest /= 10;
    digits++;
  }
  reserve(digits);
  let at = out + outLen + digits;
  rest = value;
  do {
    at--;
    store<u8>(at, <u8>(0x30 + (rest % 10)));
    rest /= 10;
  } while (rest != 0);
  outLen += digits;
}
