#!/usr/bin/env -S node --max-semi-space-size=1
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { loadConfig, type LoadedConfig } from './config/load.js';
import { ConfigError, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, LogwasmError, formatProblem } from './errors.js';
import { pluginCommand } from './plugin-inspect.js';
import { defaultRegistry } from './registry.js';
import { DEFAULT_PROGRESS_INTERVAL_SECS, overrideReplayPaths, runReplay, runTail } from './run.js';
import { Telemetry, parseLogLevel, stderrWriter, type LogLevel } from './telemetry.js';

const USAGE = `Usage:
  logwasm [--config FILE]...              run until SIGTERM/SIGINT, then drain and exit
  logwasm replay [--config FILE]... [PATHS...]
                                          read every matched file to its end, deliver it all, exit;
                                          PATHS (files or globs) replace the file source's include
  logwasm validate [--config FILE]...     check a config without running it (exit 78 when invalid)
  logwasm plugin inspect FILE.wasm        print a plugin's exports, imports, ABI version, sha256, SBOM (JSON)

Options:
  -c, --config FILE                       config file (repeatable; default ./vector.toml)
      --graceful-shutdown-limit-secs N    how long to drain at shutdown before giving up (default 60)
      --progress-interval-secs N          replay off a TTY: seconds between progress lines (default 5)
      --checkpoints                       replay: write checkpoints (by default a replay writes none)
      --require-healthy                   exit 1 at start when a sink's healthcheck fails (else it warns)
  -v, --verbose                           debug logs (LOG_LEVEL=error|warn|info|debug also works)
  -q, --quiet                             only errors
  -h, --help                              this text
  -V, --version                           print the version`;

/**
 * V8 semi-space of every worker thread, in MiB (`--max-semi-space-size`). V8 flags are read when
 * an isolate is created, so setting it here, before any pool starts, reaches the wasm transform's
 * and the OTLP sink's workers, but not the main thread's isolate, which already exists: the
 * `#!` line passes the flag for it when logwasm runs as a command; `node dist/cli.js` needs
 * `node --max-semi-space-size=1` (or NODE_OPTIONS). Batches' objects live for one batch, and a
 * scavenge is what frees the ArrayBuffers of batches already delivered: with V8's default young
 * generation (up to 48 MiB per isolate) they piled up to about 30 MiB more peak RSS on the main
 * thread alone (1M-line file_wasm_otlp replay: 175 -> 145 MiB, same CPU).
 */
export const WORKER_MAX_SEMI_SPACE_MB = 1;
setFlagsFromString(`--max-semi-space-size=${WORKER_MAX_SEMI_SPACE_MB}`);

/** Vector's default for `--graceful-shutdown-limit-secs`. */
export const DEFAULT_GRACEFUL_SHUTDOWN_LIMIT_SECS = 60;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c', multiple: true },
        'graceful-shutdown-limit-secs': { type: 'string' },
        'progress-interval-secs': { type: 'string' },
        checkpoints: { type: 'boolean' },
        'require-healthy': { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return EXIT_FAILURE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  if (values.version) {
    process.stdout.write(`logwasm ${packageVersion()}\n`);
    return EXIT_OK;
  }
  if (positionals[0] === 'plugin') {
    return pluginCommand(positionals.slice(1), (t) => process.stdout.write(t), (t) => process.stderr.write(t));
  }
  const command = positionals[0] ?? 'run';
  if (!['run', 'replay', 'validate'].includes(command) || (positionals.length > 1 && command !== 'replay')) {
    process.stderr.write(`unknown command "${positionals.join(' ')}"\n\n${USAGE}\n`);
    return EXIT_FAILURE;
  }
  const graceSecs = Number(values['graceful-shutdown-limit-secs'] ?? DEFAULT_GRACEFUL_SHUTDOWN_LIMIT_SECS);
  if (!Number.isFinite(graceSecs) || graceSecs < 0) {
    process.stderr.write('--graceful-shutdown-limit-secs takes a number of seconds\n');
    return EXIT_FAILURE;
  }

  const progressSecs = Number(values['progress-interval-secs'] ?? DEFAULT_PROGRESS_INTERVAL_SECS);
  if (!Number.isFinite(progressSecs) || progressSecs < 0) {
    process.stderr.write('--progress-interval-secs takes a number of seconds\n');
    return EXIT_FAILURE;
  }

  const paths = values.config ?? ['vector.toml'];
  let config: LoadedConfig;
  try {
    config = loadConfig(paths, defaultRegistry());
    if (command === 'replay') overrideReplayPaths(config, positionals.slice(1));
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`${formatProblem(problem)}\n`);
      return EXIT_CONFIG;
    }
    throw error;
  }

  const level: LogLevel = values.verbose ? 'debug' : values.quiet ? 'error' : (parseLogLevel(process.env.LOG_LEVEL) ?? 'info');
  const telemetry = new Telemetry(stderrWriter, level);
  for (const warning of config.warnings) telemetry.log('warn', 'config_warning', warning);

  if (command === 'validate') {
    process.stdout.write(`config valid: ${paths.join(', ')}\n`);
    return EXIT_OK;
  }
  try {
    if (command === 'replay') return await runReplay(config, telemetry, { graceMs: graceSecs * 1000, progressIntervalSecs: progressSecs, writeCheckpoints: values.checkpoints === true, requireHealthy: values['require-healthy'] === true });
    return await runTail(config, telemetry, { graceMs: graceSecs * 1000, reload: () => loadConfig(paths, defaultRegistry()), requireHealthy: values['require-healthy'] === true });
  } catch (error) {
    // A component that cannot be built from a valid-looking config (a missing or malformed
    // plugin module, say) is a configuration error, as in Vector.
    if (error instanceof LogwasmError) {
      process.stderr.write(`${error.message}\n`);
      return error.code === 'LOGWASM_PLUGIN_ABI' || error.code === 'LOGWASM_CONFIG_INVALID' ? EXIT_CONFIG : EXIT_FAILURE;
    }
    throw error;
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit explicitly: a stray handle in a dependency must not keep a finished run alive.
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`logwasm: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
