/**
 * The kubernetes_logs source through the real CLI (dist/, built by `npm test`): a pod log tree
 * replayed through the json_parser plugin to the console sink.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { JSON_PARSER_WASM, runCli, tempDir } from './support/cli.js';

it('replays a /var/log/pods tree: CRI and Docker lines decoded, partials merged, JSON parsed', async () => {
  const dir = await tempDir('logwasm-k8s-cli-');
  const pods = path.join(dir, 'pods');
  const a = path.join(pods, 'shop_web_6f1c2b7e-0d3a-4c1e-9a59-1b2c3d4e5f60', 'app');
  const b = path.join(pods, 'kube-system_dns_0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d', 'coredns');
  await mkdir(a, { recursive: true });
  await mkdir(b, { recursive: true });
  await writeFile(
    path.join(a, '0.log'),
    ['2024-01-01T00:00:00Z stdout F {"msg":"hello","n":1}', '2024-01-01T00:00:00Z stdout P {"msg":"split ', '2024-01-01T00:00:00Z stdout F ünï 😀","n":2}', ''].join('\n'),
  );
  await writeFile(path.join(b, '0.log'), '{"log":"{\\"msg\\":\\"from docker\\",\\"n\\":3}\\n","stream":"stderr","time":"2024-01-01T00:00:00Z"}\n');
  const config = path.join(dir, 'vector.toml');
  await writeFile(
    config,
    [
      `data_dir = ${JSON.stringify(path.join(dir, 'data'))}`,
      '[sources.k8s]',
      'type = "kubernetes_logs"',
      `pod_log_directory = ${JSON.stringify(pods)}`,
      'self_node_name = "node-1"',
      'kubernetes_api = "off"',
      '[transforms.parse]',
      'type = "wasm"',
      'inputs = ["k8s"]',
      `module = ${JSON.stringify(JSON_PARSER_WASM)}`,
      '[sinks.out]',
      'type = "console"',
      'inputs = ["parse"]',
      'encoding.codec = "json"',
      '',
    ].join('\n'),
  );
  const run = await runCli(['replay', '--config', config]);
  expect(run.code, run.stderr).toBe(0);
  const events = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(events.map((e) => [e.n, e.msg]).sort()).toEqual([
    [1, 'hello'],
    [2, 'split ünï 😀'],
    [3, 'from docker'],
  ]);
  for (const e of events) {
    expect(e.source_type).toBe('kubernetes_logs');
    expect(e.host).toBe('node-1');
  }
});
