/**
 * Every error logwasm raises on purpose is one of these classes. `code` is stable: tests,
 * telemetry and worker results carry the code, never the message text. `name` is the class name.
 */
export class LogwasmError extends Error {
  readonly code: string = 'LOGWASM_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem found in a configuration; `component` is `sources.ID` and so on, or `global`. */
export interface ConfigProblem {
  component: string;
  message: string;
}

/** A configuration could not be loaded. Carries every problem found in one pass. */
export class ConfigError extends LogwasmError {
  override readonly code = 'LOGWASM_CONFIG_INVALID';
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

export function formatProblem(problem: ConfigProblem): string {
  return `${problem.component}: ${problem.message}`;
}

/** A wasm module does not satisfy the plugin ABI (missing export, wrong arity, forbidden import). */
export class PluginAbiError extends LogwasmError {
  override readonly code = 'LOGWASM_PLUGIN_ABI';
}

/** A plugin's module file could not be read or is not valid WebAssembly. */
export class PluginLoadError extends LogwasmError {
  override readonly code = 'LOGWASM_PLUGIN_LOAD';
}

/** A sink's TLS files (`tls.ca_file`, `tls.crt_file`, `tls.key_file`) could not be read. */
export class TlsFileError extends LogwasmError {
  override readonly code = 'LOGWASM_TLS_FILE';
}

/** Exit codes, as Vector uses them (sysexits.h). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 78;
