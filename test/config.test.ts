import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { ConfigError, formatProblem } from '../src/errors.js';
import { defaultRegistry } from '../src/registry.js';
import { REPO_ROOT, runCli, tempDir } from './support/cli.js';

const SEED_CONFIG = `
[sources.app_logs]
type = "file"
include = ["/var/log/app/*.log"]
[transforms.wasm_parser]
type = "wasm"
inputs = ["app_logs"]
module = "/etc/vector/plugins/json_parser.wasm"
[sinks.otlp]
type = "opentelemetry"
inputs = ["wasm_parser"]
endpoint = "http://otel-collector:4317"
`;

const SOURCE = `[sources.in]\ntype = "file"\ninclude = ["/tmp/*.log"]\n`;
const WASM = (id: string, inputs: string) =>
  `[transforms.${id}]\ntype = "wasm"\ninputs = ${inputs}\nmodule = "plugin.wasm"\n`;
const CONSOLE = (inputs: string) => `[sinks.out]\ntype = "console"\ninputs = ${inputs}\n`;

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig(['test.toml'], defaultRegistry(), { env, readText: () => text });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map(formatProblem);
    throw error;
  }
  return [];
}

describe('config', () => {
  it('accepts the seed config as written', () => {
    expect(problems(SEED_CONFIG)).toEqual([]);
    const config = loadConfig(['seed.toml'], defaultRegistry(), { readText: () => SEED_CONFIG });
    expect(config.dataDir).toBe('/var/lib/vector');
    expect(config.sinks[0]?.inputs).toEqual(['wasm_parser']);
  });

  it('accepts the root vector.toml, with and without OTLP_ENDPOINT', () => {
    const root = join(REPO_ROOT, 'vector.toml');
    expect(() => loadConfig([root], defaultRegistry(), { env: {} })).not.toThrow();
    expect(() =>
      loadConfig([root], defaultRegistry(), { env: { OTLP_ENDPOINT: 'http://localhost:4318' } }),
    ).not.toThrow();
    expect(readFileSync(root, 'utf8')).toContain('${OTLP_ENDPOINT');
  });

  it('expands wildcard inputs and named outputs', () => {
    const text = `${SOURCE}[sources.in2]\ntype = "file"\ninclude = ["/x/*.log"]\n${WASM('parse', '["in*"]')}${CONSOLE('["parse", "parse.dropped"]')}`;
    const config = loadConfig(['t.toml'], defaultRegistry(), { readText: () => text });
    expect(config.transforms[0]?.inputs.sort()).toEqual(['in', 'in2']);
    expect(config.sinks[0]?.inputs).toEqual(['parse', 'parse.dropped']);
  });

  it.each<[string, string, string[]]>([
    ['an unknown key', `${SOURCE}${WASM('parse', '["in"]')}modul = "x"\n${CONSOLE('["parse"]')}`,
      ['transforms.parse: unknown key "modul"']],
    ['an unknown nested key', `${SOURCE}${CONSOLE('["in"]')}encoding.codek = "json"\n`,
      ['sinks.out: unknown key "encoding.codek"']],
    ['an unknown type', `${SOURCE}[sinks.out]\ntype = "kafka"\ninputs = ["in"]\n`,
      ['sinks.out: unknown sink type "kafka" (known: blackhole, console, file, opentelemetry, prometheus_exporter)']],
    ['a missing type', `${SOURCE}[sinks.out]\ninputs = ["in"]\n`, ['sinks.out: missing required key "type"']],
    ['missing inputs', `${SOURCE}[sinks.out]\ntype = "console"\n`, ['sinks.out: missing required key "inputs"']],
    ['empty inputs', `${SOURCE}${CONSOLE('[]')}`, ['sinks.out: "inputs" must name at least one component']],
    ['an unknown input', `${SOURCE}${CONSOLE('["nope"]')}`,
      ['sinks.out: input "nope" does not name a source or transform']],
    ['a sink as input', `${SOURCE}${CONSOLE('["in"]')}[sinks.two]\ntype = "blackhole"\ninputs = ["out"]\n`,
      ['sinks.two: input "out" is a sink; sinks have no output']],
    ['a named output of a source', `${SOURCE}${CONSOLE('["in.dropped"]')}`,
      ['sinks.out: input "in.dropped": only transforms have named outputs']],
    ['a cycle', `${SOURCE}${WASM('a', '["in", "b"]')}${WASM('b', '["a"]')}${CONSOLE('["b"]')}`,
      ['transforms.a: cycle in inputs: a -> b -> a']],
    ['a bad value', `${SOURCE}${CONSOLE('["in"]')}encoding.codec = 5\n`,
      ['sinks.out: invalid value for "encoding.codec": expected one of "json", "text", actual: 5']],
    ['an unknown global key', `data_dirr = "/x"\n${SOURCE}${CONSOLE('["in"]')}`, ['global: unknown key "data_dirr"']],
    ['a bad OTLP mapping', `${SOURCE}[sinks.otlp]\ntype = "opentelemetry"\ninputs = ["in"]\nendpoint = "http://c:4318"\nmapping.attributes = "method"\nmapping.service_name_field = 1\n`,
      ['sinks.otlp: invalid value for "mapping.attributes": expected an array of field names or a table of field = "attribute name", actual: "method"',
        'sinks.otlp: invalid value for "mapping.service_name_field": expected a string, actual: 1']],
    ['a source with inputs', `${SOURCE}inputs = ["x"]\n${CONSOLE('["in"]')}`, ['sources.in: a source takes no "inputs"']],
    ['an unset variable', `data_dir = "/x/\${NOPE}"\n${SOURCE}${CONSOLE('["in"]')}`,
      ['test.toml: environment variable "NOPE" is not set (use ${NOPE:-default} for a default)']],
    ['invalid TOML', `[sources.in\ntype = "file"`, ['test.toml: invalid TOML at line 1, column 12: Expected ".", "]", [ \\t], or [A-Za-z0-9_\\-] but "\\n" found.']],
  ])('reports %s', (_name, text, expected) => {
    expect(problems(text)).toEqual(expected);
  });

  it('reports every problem of a config in one pass', () => {
    const text = `bogus = 1\n${SOURCE}${WASM('parse', '["in", "ghost"]')}modul = "x"\n[sinks.out]\ntype = "kafka"\ninputs = ["parse"]\n`;
    expect(problems(text)).toEqual([
      'global: unknown key "bogus"',
      'transforms.parse: unknown key "modul"',
      'sinks.out: unknown sink type "kafka" (known: blackhole, console, file, opentelemetry, prometheus_exporter)',
      'transforms.parse: input "ghost" does not name a source or transform',
    ]);
  });

  it('`logwasm validate` exits 0 on a valid config and 78 with one line per problem', async () => {
    const ok = await runCli(['validate']);
    expect(ok.code, ok.stderr).toBe(0);
    const dir = await tempDir();
    const bad = join(dir, 'bad.toml');
    await writeFile(bad, `${SOURCE}${WASM('parse', '["in"]')}modul = "x"\n${CONSOLE('["nope"]')}`);
    const result = await runCli(['validate', '--config', bad]);
    expect(result.code).toBe(78);
    expect(result.stderr.trim().split('\n')).toEqual([
      'transforms.parse: unknown key "modul"',
      'sinks.out: input "nope" does not name a source or transform',
    ]);
  });
});
