/**
 * Runs the real `logwasm` CLI (dist/cli.js, built by `npm test` before vitest starts) in a child
 * process and collects its output, for end-to-end tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { onTestFinished } from 'vitest';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'cli.js');
export const JSON_PARSER_WASM = join(REPO_ROOT, 'plugins', 'json_parser', 'json_parser.wasm');

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process ended. */
  exited: Promise<number | string>;
}

export function startCli(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | string>((done) => {
    child.on('exit', (code, signal) => done(code ?? signal ?? 'unknown'));
  });
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const run = startCli(args, options);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** A temp directory removed when the test finishes. */
export async function tempDir(prefix = 'logwasm-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** TOML string literal for a path or value. */
export function tomlString(value: string): string {
  return JSON.stringify(value);
}

export interface LogsConfig {
  /** The temp directory holding everything below (removed when the test finishes). */
  dir: string;
  /** `dir/logs`, tailed by the `logs` source. */
  logs: string;
  /** Path of the written vector.toml. */
  config: string;
}

/**
 * Writes a config whose `data_dir` and `[sources.logs]` (a `file` source over `logs/*.log`) live in a
 * fresh temp dir, followed by `rest` (the components under test), for end-to-end tests.
 */
export async function writeLogsConfig(rest: (dir: string) => string): Promise<LogsConfig> {
  const dir = await tempDir();
  const logs = join(dir, 'logs');
  await mkdir(logs);
  const config = join(dir, 'vector.toml');
  await writeFile(
    config,
    `data_dir = ${tomlString(join(dir, 'data'))}

[sources.logs]
type = "file"
include = [${tomlString(join(logs, '*.log'))}]

${rest(dir)}`,
  );
  return { dir, logs, config };
}
