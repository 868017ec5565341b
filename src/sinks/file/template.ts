/**
 * Vector's template strings, for the file sink's `path`: `{{ field }}` (a dotted path into the
 * event, `{{ kubernetes.pod_name }}`) and strftime specifiers (`%Y-%m-%d`), rendered in UTC.
 *
 * Parsed once; `render()` is cheap. A template with no field references renders the same for
 * every line of a batch (lines share the batch's timestamp), so the sink renders it once per batch.
 */

type Part = { kind: 'text'; text: string } | { kind: 'field'; path: string[] } | { kind: 'time'; spec: string };

/** The strftime specifiers understood; any other `%x` is a config error. */
export const STRFTIME_SPECIFIERS = 'YymdHMSjFTsebaABpIzZ%';

export class Template {
  readonly hasFields: boolean;
  readonly isStatic: boolean;

  private constructor(
    readonly source: string,
    private readonly parts: Part[],
  ) {
    this.hasFields = parts.some((p) => p.kind === 'field');
    this.isStatic = parts.every((p) => p.kind === 'text');
  }

  /** Parses `text`; throws an Error whose message says what is wrong (the caller reports it). */
  static parse(text: string): Template {
    const parts: Part[] = [];
    let literal = '';
    const flush = (): void => {
      if (literal !== '') parts.push({ kind: 'text', text: literal });
      literal = '';
    };
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '{' && text[i + 1] === '{') {
        const end = text.indexOf('}}', i + 2);
        if (end === -1) throw new Error(`unclosed "{{" at character ${i + 1}`);
        const field = text.slice(i + 2, end).trim();
        if (field === '' || !/^[A-Za-z0-9_@.-]+$/.test(field) || field.split('.').some((s) => s === '')) {
          throw new Error(`"{{ ${field} }}" is not a field path`);
        }
        flush();
        parts.push({ kind: 'field', path: field.split('.') });
        i = end + 1;
      } else if (c === '%') {
        const spec = text[i + 1];
        if (spec === undefined || !STRFTIME_SPECIFIERS.includes(spec)) {
          throw new Error(`unknown strftime specifier "%${spec ?? ''}" (known: ${[...STRFTIME_SPECIFIERS].map((s) => `%${s}`).join(' ')})`);
        }
        flush();
        parts.push({ kind: 'time', spec });
        i++;
      } else {
        literal += c;
      }
    }
    flush();
    return new Template(text, parts);
  }

  /**
   * The rendered text, or `undefined` when a referenced field is missing or is not a scalar
   * (Vector drops such an event with a template error; the sink counts it).
   */
  render(event: Record<string, unknown> | undefined, timestampMs: number): string | undefined {
    let out = '';
    let date: Date | undefined;
    for (const part of this.parts) {
      if (part.kind === 'text') out += part.text;
      else if (part.kind === 'time') out += strftime(part.spec, (date ??= new Date(timestampMs)));
      else {
        const value = lookup(event, part.path);
        if (value === undefined) return undefined;
        out += value;
      }
    }
    return out;
  }
}

function lookup(event: Record<string, unknown> | undefined, path: readonly string[]): string | undefined {
  let value: unknown = event;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return undefined;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** One strftime specifier, in UTC. */
export function strftime(spec: string, d: Date): string {
  switch (spec) {
    case 'Y': return String(d.getUTCFullYear());
    case 'y': return pad(d.getUTCFullYear() % 100);
    case 'm': return pad(d.getUTCMonth() + 1);
    case 'd': return pad(d.getUTCDate());
    case 'e': return String(d.getUTCDate()).padStart(2, ' ');
    case 'H': return pad(d.getUTCHours());
    case 'I': return pad(((d.getUTCHours() + 11) % 12) + 1);
    case 'p': return d.getUTCHours() < 12 ? 'AM' : 'PM';
    case 'M': return pad(d.getUTCMinutes());
    case 'S': return pad(d.getUTCSeconds());
    case 'j': return pad(Math.floor((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1, 3);
    case 'F': return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    case 'T': return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    case 's': return String(Math.floor(d.getTime() / 1000));
    case 'a': return DAYS[d.getUTCDay()]!.slice(0, 3);
    case 'A': return DAYS[d.getUTCDay()]!;
    case 'b': return MONTHS[d.getUTCMonth()]!.slice(0, 3);
    case 'B': return MONTHS[d.getUTCMonth()]!;
    case 'z': return '+0000';
    case 'Z': return 'UTC';
    default: return '%';
  }
}
