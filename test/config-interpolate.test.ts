import { describe, expect, it } from 'vitest';
import { interpolate } from '../src/config/interpolate.js';

const env = { HOST: 'web-1', EMPTY: '', MULTI: 'a\nb' };

describe('interpolate (Vector env syntax)', () => {
  it.each([
    ['$HOST', 'web-1'],
    ['${HOST}', 'web-1'],
    ['x-${HOST}-y', 'x-web-1-y'],
    ['${UNSET:-fallback}', 'fallback'],
    ['${EMPTY:-fallback}', 'fallback'],
    ['${EMPTY-fallback}', ''],
    ['${UNSET-fallback}', 'fallback'],
    ['${UNSET:-}', ''],
    ['${HOST:-fallback}', 'web-1'],
    ['$$HOST', '$HOST'],
    ['$${HOST}', '${HOST}'],
    ['cost: 5$', 'cost: 5$'],
    ['${HOST?needed}', 'web-1'],
  ])('%s -> %s', (input, expected) => {
    expect(interpolate(input, env)).toEqual({ text: expected, problems: [] });
  });

  it('reports an unset variable without a default', () => {
    expect(interpolate('endpoint = "${NOPE}"', env).problems).toEqual([
      'environment variable "NOPE" is not set (use ${NOPE:-default} for a default)',
    ]);
  });

  it('reports required variables with their message', () => {
    expect(interpolate('${EMPTY:?tenant must be supplied} ${UNSET?x}', env).problems).toEqual([
      'environment variable "EMPTY" is required: tenant must be supplied',
      'environment variable "UNSET" is required: x',
    ]);
    expect(interpolate('${EMPTY?x}', env).problems).toEqual([]);
  });

  it('refuses values with newlines', () => {
    expect(interpolate('${MULTI}', env).problems).toEqual([
      'environment variable "MULTI" contains a newline, which is not allowed',
    ]);
  });
});
