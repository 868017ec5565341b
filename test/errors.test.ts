import { describe, expect, it } from 'vitest';
import { ConfigError, LogwasmError, PluginAbiError, PluginLoadError, TlsFileError } from '../src/errors.js';

describe('errors', () => {
  it.each([
    [new LogwasmError('m'), 'LogwasmError', 'LOGWASM_ERROR'],
    [new ConfigError([{ component: 'sinks.x', message: 'bad' }]), 'ConfigError', 'LOGWASM_CONFIG_INVALID'],
    [new PluginAbiError('m'), 'PluginAbiError', 'LOGWASM_PLUGIN_ABI'],
    [new PluginLoadError('m'), 'PluginLoadError', 'LOGWASM_PLUGIN_LOAD'],
    [new TlsFileError('m'), 'TlsFileError', 'LOGWASM_TLS_FILE'],
  ])('%s has a stable name and code', (error, name, code) => {
    expect(error).toBeInstanceOf(LogwasmError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
  });

  it('keeps the cause, and a ConfigError lists its problems one per line', () => {
    const cause = new Error('root');
    expect(new PluginLoadError('m', { cause }).cause).toBe(cause);
    const error = new ConfigError([
      { component: 'sinks.a', message: 'one' },
      { component: 'global', message: 'two' },
    ]);
    expect(error.message).toBe('sinks.a: one\nglobal: two');
    expect(error.problems).toHaveLength(2);
  });
});
