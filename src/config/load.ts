import { readFileSync } from 'node:fs';
import toml from 'toml';
import { parseApiConfig, type ApiConfig } from '../api/config.js';
import type { ComponentKind, SinkType, SourceType, TransformType } from '../components.js';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { interpolate } from './interpolate.js';
import { ConfigReader, isTable, show, type ConfigTable } from './reader.js';

/** Vector's default `data_dir`. */
export const DEFAULT_DATA_DIR = '/var/lib/vector';

/** Global keys logwasm reads; the others Vector knows are accepted and ignored (listed below). */
const SECTIONS = ['sources', 'transforms', 'sinks'] as const;
type Section = (typeof SECTIONS)[number];
const KIND_OF: Record<Section, ComponentKind> = { sources: 'source', transforms: 'transform', sinks: 'sink' };

/** Vector global options that have no effect here but must not fail a Vector config. */
const ACCEPTED_GLOBALS = ['schema', 'acknowledgements', 'healthchecks', 'log_schema', 'timezone', 'expire_metrics_secs'];

/** A transform output other than its default one, consumed as `ID.NAME` (Vector's convention). */
export const NAMED_OUTPUTS = ['dropped'] as const;

// The registry holds component types of different config shapes; `unknown` keeps it heterogeneous.
export type AnySourceType = SourceType<unknown>;
export type AnyTransformType = TransformType<unknown>;
export type AnySinkType = SinkType<unknown>;

export interface Registry {
  sources: ReadonlyMap<string, AnySourceType>;
  transforms: ReadonlyMap<string, AnyTransformType>;
  sinks: ReadonlyMap<string, AnySinkType>;
}

export interface ComponentPlan<T> {
  id: string;
  type: T;
  config: unknown;
  /** Resolved input ids (wildcards expanded); empty for sources. */
  inputs: string[];
}

export interface LoadedConfig {
  dataDir: string;
  /** Vector's global `api` table. */
  api: ApiConfig;
  sources: ComponentPlan<AnySourceType>[];
  transforms: ComponentPlan<AnyTransformType>[];
  sinks: ComponentPlan<AnySinkType>[];
  /** Not errors, but worth a line at start (a wildcard input matching nothing, an unused source). */
  warnings: string[];
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Reads a file; replaced in tests that load configs from strings. */
  readText?: (path: string) => string;
}

/**
 * Loads and checks one or more config files (later files add components; an id defined twice is
 * an error). Reports every problem in one pass by throwing a single ConfigError.
 */
export function loadConfig(paths: readonly string[], registry: Registry, options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const readText = options.readText ?? ((path: string) => readFileSync(path, 'utf8'));
  const problems: ConfigProblem[] = [];
  const merged: ConfigTable = { sources: {}, transforms: {}, sinks: {} };

  for (const path of paths) {
    let text: string;
    try {
      text = readText(path);
    } catch (error) {
      problems.push({ component: path, message: `cannot read config file: ${(error as Error).message}` });
      continue;
    }
    const interpolated = interpolate(text, env);
    for (const message of interpolated.problems) problems.push({ component: path, message });
    let parsed: unknown;
    try {
      parsed = toml.parse(interpolated.text);
    } catch (error) {
      problems.push({ component: path, message: describeTomlError(error) });
      continue;
    }
    mergeFile(path, parsed as ConfigTable, merged, problems);
  }

  const plan = checkConfig(merged, registry, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return plan;
}

function describeTomlError(error: unknown): string {
  const e = error as { location?: { start?: { line: number; column: number } }; message?: string };
  const start = e.location?.start;
  const where = start === undefined ? '' : ` at line ${start.line}, column ${start.column}`;
  return `invalid TOML${where}: ${e.message ?? String(error)}`;
}

function mergeFile(path: string, parsed: ConfigTable, merged: ConfigTable, problems: ConfigProblem[]): void {
  for (const [key, value] of Object.entries(parsed)) {
    if ((SECTIONS as readonly string[]).includes(key)) {
      if (!isTable(value)) {
        problems.push({ component: key, message: `expected a table of components, actual: ${show(value)}` });
        continue;
      }
      const target = merged[key] as ConfigTable;
      for (const [id, component] of Object.entries(value)) {
        if (target[id] !== undefined) {
          problems.push({ component: `${key}.${id}`, message: `defined more than once (again in ${path})` });
          continue;
        }
        target[id] = component;
      }
    } else if (merged[key] !== undefined) {
      problems.push({ component: 'global', message: `key "${key}" defined more than once (again in ${path})` });
    } else {
      merged[key] = value;
    }
  }
}

function checkConfig(merged: ConfigTable, registry: Registry, problems: ConfigProblem[]): LoadedConfig {
  const global = new ConfigReader('global', merged, problems);
  global.accept(...SECTIONS, ...ACCEPTED_GLOBALS);
  const dataDir = global.string('data_dir', DEFAULT_DATA_DIR);
  const api = parseApiConfig(global.table('api'));
  global.finish();

  const ids = new Map<string, Section>();
  const plans = { sources: [] as ComponentPlan<AnySourceType>[], transforms: [] as ComponentPlan<AnyTransformType>[], sinks: [] as ComponentPlan<AnySinkType>[] };
  const rawInputs = new Map<string, string[]>();

  for (const section of SECTIONS) {
    const components = merged[section] as ConfigTable;
    for (const [id, value] of Object.entries(components)) {
      const name = `${section}.${id}`;
      if (ids.has(id)) {
        problems.push({ component: name, message: `id "${id}" is already used by ${ids.get(id)}.${id}` });
        continue;
      }
      ids.set(id, section);
      if (!isTable(value)) {
        problems.push({ component: name, message: `expected a table, actual: ${show(value)}` });
        continue;
      }
      const reader = new ConfigReader(name, value, problems);
      const typeName = reader.requiredString('type');
      if (section !== 'sources') {
        const inputs = reader.stringArray('inputs');
        if (!reader.has('inputs')) reader.problem('missing required key "inputs"');
        else if (inputs.length === 0 && Array.isArray(value.inputs)) reader.problem('"inputs" must name at least one component');
        rawInputs.set(id, inputs);
      } else if (reader.has('inputs')) {
        reader.raw('inputs');
        reader.problem('a source takes no "inputs"');
      }
      const type = lookup(registry, section, typeName);
      if (type === undefined) {
        if (typeName !== '') {
          const known = [...registry[section].keys()].sort().join(', ');
          reader.problem(`unknown ${KIND_OF[section]} type "${typeName}" (known: ${known})`);
        }
        continue;
      }
      const config = type.parse(reader);
      reader.finish();
      const plan = { id, type, config, inputs: [] as string[] };
      if (section === 'sources') plans.sources.push(plan as ComponentPlan<AnySourceType>);
      else if (section === 'transforms') plans.transforms.push(plan as ComponentPlan<AnyTransformType>);
      else plans.sinks.push(plan as ComponentPlan<AnySinkType>);
    }
  }

  const warnings: string[] = [];
  resolveInputs(ids, rawInputs, plans, problems, warnings);
  findCycles(plans.transforms, problems);
  const consumed = new Set([...plans.transforms, ...plans.sinks].flatMap((p) => p.inputs.map(baseId)));
  for (const source of plans.sources) {
    if (!consumed.has(source.id)) warnings.push(`sources.${source.id}: no component takes its output`);
  }
  return { dataDir, api, ...plans, warnings };
}

function lookup(registry: Registry, section: Section, typeName: string) {
  return registry[section].get(typeName);
}

/** `parse.dropped` -> `parse`. */
export function baseId(input: string): string {
  const dot = input.lastIndexOf('.');
  if (dot > 0 && (NAMED_OUTPUTS as readonly string[]).includes(input.slice(dot + 1))) return input.slice(0, dot);
  return input;
}

function resolveInputs(
  ids: ReadonlyMap<string, Section>,
  rawInputs: ReadonlyMap<string, string[]>,
  plans: { transforms: ComponentPlan<AnyTransformType>[]; sinks: ComponentPlan<AnySinkType>[] },
  problems: ConfigProblem[],
  warnings: string[],
): void {
  const outputs = [...ids].filter(([, section]) => section !== 'sinks').map(([id]) => id);
  for (const [section, list] of [['transforms', plans.transforms], ['sinks', plans.sinks]] as const) {
    for (const plan of list) {
      const name = `${section}.${plan.id}`;
      const resolved = new Set<string>();
      for (const input of rawInputs.get(plan.id) ?? []) {
        if (input.includes('*')) {
          const pattern = wildcard(input);
          const matches = outputs.filter((id) => id !== plan.id && pattern.test(id));
          if (matches.length === 0) warnings.push(`${name}: input "${input}" matches no component`);
          for (const id of matches) resolved.add(id);
          continue;
        }
        const target = ids.get(baseId(input));
        if (target === undefined) problems.push({ component: name, message: `input "${input}" does not name a source or transform` });
        else if (target === 'sinks') problems.push({ component: name, message: `input "${input}" is a sink; sinks have no output` });
        else if (baseId(input) !== input && target !== 'transforms') problems.push({ component: name, message: `input "${input}": only transforms have named outputs` });
        else if (baseId(input) === plan.id) problems.push({ component: name, message: `input "${input}" is the component itself` });
        else resolved.add(input);
      }
      plan.inputs = [...resolved];
    }
  }
}

function wildcard(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

function findCycles(transforms: readonly ComponentPlan<AnyTransformType>[], problems: ConfigProblem[]): void {
  const byId = new Map(transforms.map((t) => [t.id, t]));
  const state = new Map<string, 'visiting' | 'done'>();
  const reported = new Set<string>();
  const visit = (id: string, path: string[]): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') {
      const cycle = [...path.slice(path.indexOf(id)), id];
      const key = [...cycle].sort().join(',');
      if (!reported.has(key)) {
        reported.add(key);
        problems.push({ component: `transforms.${id}`, message: `cycle in inputs: ${cycle.join(' -> ')}` });
      }
      return;
    }
    state.set(id, 'visiting');
    for (const input of byId.get(id)?.inputs ?? []) {
      if (byId.has(baseId(input))) visit(baseId(input), [...path, id]);
    }
    state.set(id, 'done');
  };
  for (const id of byId.keys()) visit(id, []);
}
