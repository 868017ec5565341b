/**
 * Vector's global `api` table: `enabled` and `address`. logwasm serves only `GET /health` there;
 * `playground` and `graphql` are accepted so a Vector config loads, and have no effect.
 */
import type { ConfigReader } from '../config/reader.js';

/** `api.enabled`: Vector's default is off. */
export const DEFAULT_API_ENABLED = false;
/** `api.address`: Vector's default, loopback only. */
export const DEFAULT_API_ADDRESS = '127.0.0.1:8686';

export interface ApiConfig {
  enabled: boolean;
  host: string;
  port: number;
}

/**
 * `host:port` or `[v6]:port`. A bad value is reported (under `label`, the key's full path, since
 * a nested reader does not prefix `problem()` messages) and the fallback is returned.
 */
export function parseListenAddress(reader: ConfigReader, key: string, fallback: string, label = key): { host: string; port: number } {
  const text = reader.string(key, fallback);
  const parsed = splitAddress(text);
  if (parsed === undefined) {
    reader.problem(`invalid value for "${label}": expected "host:port" with a port from 0 to 65535, actual: ${JSON.stringify(text)}`);
    return splitAddress(fallback)!;
  }
  return parsed;
}

export function splitAddress(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host: match[1] ?? match[2]!, port };
}

export function parseApiConfig(reader: ConfigReader): ApiConfig {
  const enabled = reader.boolean('enabled', DEFAULT_API_ENABLED);
  const { host, port } = parseListenAddress(reader, 'address', DEFAULT_API_ADDRESS, 'api.address');
  reader.accept('playground', 'graphql');
  reader.finish();
  return { enabled, host, port };
}
