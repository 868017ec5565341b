/**
 * `encoding.charset`: files in another charset are read as UTF-8.
 *
 * The delimiter is encoded in the file's charset and lines are split on the file's own bytes, then
 * each line is transcoded to UTF-8. The result is the same as transcoding before splitting, and
 * every offset (checkpoints, acknowledgements) stays a byte offset in the file.
 */

export type Charset = 'utf-8' | 'utf-16le' | 'utf-16be' | 'latin1';

/** Accepted spellings (WHATWG labels, as Vector's encoding_rs takes them, lower-cased). */
export const CHARSET_LABELS: Readonly<Record<string, Charset>> = {
  'utf-8': 'utf-8',
  utf8: 'utf-8',
  'utf-16le': 'utf-16le',
  'utf-16be': 'utf-16be',
  latin1: 'latin1',
  'iso-8859-1': 'latin1',
};

export function parseCharset(label: string): Charset | undefined {
  return CHARSET_LABELS[label.toLowerCase()];
}

/** The delimiter's bytes in the file's charset. */
export function encodeDelimiter(delimiter: string, charset: Charset): Uint8Array {
  switch (charset) {
    case 'utf-8':
      return new TextEncoder().encode(delimiter);
    case 'latin1':
      return Uint8Array.from(Buffer.from(delimiter, 'latin1'));
    case 'utf-16le':
      return Uint8Array.from(Buffer.from(delimiter, 'utf16le'));
    case 'utf-16be': {
      const le = Buffer.from(delimiter, 'utf16le');
      return Uint8Array.from(le.swap16());
    }
  }
}

/** Transcodes one line of the file's charset to UTF-8. A leading byte order mark is dropped. */
export function lineToUtf8(line: Uint8Array, charset: Charset): Uint8Array {
  const bytes = Buffer.from(line.buffer, line.byteOffset, line.byteLength);
  let text: string;
  switch (charset) {
    case 'utf-8':
      return line;
    case 'latin1':
      text = bytes.toString('latin1');
      break;
    case 'utf-16le':
      text = bytes.toString('utf16le');
      break;
    case 'utf-16be':
      text = Buffer.from(bytes.subarray(0, bytes.byteLength & ~1)).swap16().toString('utf16le');
      break;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return new Uint8Array(Buffer.from(text, 'utf8'));
}
