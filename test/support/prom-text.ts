/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests: it throws on any
 * line that is not a comment, a blank line or `name{label="value",...} number`, on a sample
 * whose family has no `# TYPE` before it, and on a label value with a bad escape.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromExposition {
  types: Map<string, string>;
  samples: PromSample[];
  /** The value of the one sample of `name` whose labels include `labels`; throws if none or several. */
  value(name: string, labels?: Record<string, string>): number;
  /** Every sample of `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): PromSample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"\s*(,|$)/y;

export function parsePrometheusText(text: string): PromExposition {
  const types = new Map<string, string>();
  const samples: PromSample[] = [];
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type !== null) types.set(type[1]!, type[2]!);
      else if (!/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) throw new Error(`bad comment, ${where}`);
      return;
    }
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`bad sample, ${where}`);
    const name = match[1]!;
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((n) => types.has(n));
    if (family === undefined) throw new Error(`sample before its # TYPE, ${where}`);
    const labels: Record<string, string> = {};
    const body = match[3] ?? '';
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const at = LABEL.lastIndex;
      const label = LABEL.exec(body);
      if (label === null || label.index !== at) throw new Error(`bad labels, ${where}`);
      labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const raw = match[4]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`bad value, ${where}`);
    samples.push({ name, labels, value });
  });
  const find = (name: string, labels: Record<string, string> = {}): PromSample[] =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    types,
    samples,
    find,
    value(name, labels = {}) {
      const found = find(name, labels);
      if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
      return found[0]!.value;
    },
  };
}
