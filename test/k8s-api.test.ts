import { describe, expect, it, onTestFinished } from 'vitest';
import { PodMetadataWatcher, inClusterEndpoint } from '../src/sources/kubernetes_logs/api.js';
import { Telemetry, type LogRecord } from '../src/telemetry.js';
import { fileTempDir } from './support/file-harness.js';
import { FakeKubeApi, fakePod } from './support/k8s-api-server.js';
import { buildK8sSource, parseK8sConfig, writePodLog } from './support/k8s-harness.js';
import { pollUntil } from './support/poll.js';

const UID_A = '6f1c2b7e-0d3a-4c1e-9a59-1b2c3d4e5f60';
const UID_B = '0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d';

function watcher(api: FakeKubeApi, options: { delayDeletionMs?: number; now?: () => number } = {}) {
  const logs: LogRecord[] = [];
  const telemetry = new Telemetry((r) => logs.push(r), 'debug');
  const w = new PodMetadataWatcher(
    { endpoint: api.url, tokenFile: undefined, caFile: undefined, nodeName: 'node-1', delayDeletionMs: options.delayDeletionMs ?? 60_000, retryMinMs: 10, retryMaxMs: 50 },
    telemetry,
    'k8s',
    options.now,
  );
  onTestFinished(() => w.stop());
  return { w, telemetry, logs };
}

describe('Kubernetes API endpoint', () => {
  it('is found from the in-cluster environment', () => {
    expect(inClusterEndpoint({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' })).toBe('https://10.0.0.1:443');
    expect(inClusterEndpoint({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' })).toBe('https://[fd00::1]:443');
    expect(inClusterEndpoint({})).toBeUndefined();
  });

  it('config: api on only with an endpoint and a node name; bad values reported', () => {
    expect(parseK8sConfig({ api_endpoint: 'http://127.0.0.1:1', self_node_name: 'n' }).config.api?.endpoint).toBe('http://127.0.0.1:1');
    expect(parseK8sConfig({ api_endpoint: 'http://127.0.0.1:1', self_node_name: 'n', kubernetes_api: 'off' }).config.api).toBeUndefined();
    const noNode = parseK8sConfig({ api_endpoint: 'http://127.0.0.1:1', self_node_name: '' });
    expect(noNode.config.api).toBeUndefined();
    expect(noNode.config.apiOffReason).toContain('self_node_name');
    expect(parseK8sConfig({ api_endpoint: 'localhost:8001', kubernetes_api: 'on', delay_deletion_ms: -1 }).problems).toEqual([
      'sources.k8s: invalid value for "kubernetes_api": expected one of "auto", "off", actual: "on"',
      'sources.k8s: invalid value for "api_endpoint": expected an http:// or https:// URL, actual: "localhost:8001"',
      'sources.k8s: invalid value for "delay_deletion_ms": expected a number >= 0, actual: -1',
    ]);
  });
});

describe('PodMetadataWatcher against a local API server', () => {
  it("lists this node's pods, then follows the watch", async () => {
    const api = await new FakeKubeApi().start();
    api.pods.push(fakePod(UID_A, 'web', 'shop', { labels: { app: 'web' }, annotations: { team: 'cart' }, image: 'shop/web:2' }));
    api.pods.push(fakePod(UID_B, 'elsewhere', 'shop', { node: 'node-2' }));
    const { w } = watcher(api);
    await w.start();
    expect(w.get(UID_A)).toMatchObject({ labels: { app: 'web' }, annotations: { team: 'cart' }, nodeName: 'node-1' });
    expect(w.get(UID_A)!.images.get('c')).toBe('shop/web:2');
    expect(w.get(UID_B)).toBeUndefined();
    expect(api.requests[0]).toBe('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1');

    await pollUntil('the watch open', () => api.openWatches === 1);
    expect(api.requests[1]).toContain('watch=1');
    expect(api.requests[1]).toContain('resourceVersion=100');
    api.send('ADDED', { ...fakePod(UID_B, 'new', 'shop', { labels: { app: 'new' } }), metadata: { ...fakePod(UID_B, 'new', 'shop').metadata, labels: { app: 'new' }, resourceVersion: '101' } });
    await pollUntil('the added pod', () => w.get(UID_B), { describe: () => `${w.size} pods known` });
    expect(w.get(UID_B)!.labels).toEqual({ app: 'new' });
    api.send('MODIFIED', { ...fakePod(UID_A, 'web', 'shop', { labels: { app: 'web', version: '3' } }) });
    await pollUntil('the modified labels', () => w.get(UID_A)!.labels.version === '3');
  });

  it('keeps a deleted pod for delay_deletion_ms, then forgets it', async () => {
    const api = await new FakeKubeApi().start();
    api.pods.push(fakePod(UID_A, 'web', 'shop'));
    let clock = 1_000;
    const { w } = watcher(api, { delayDeletionMs: 500, now: () => clock });
    await w.start();
    await pollUntil('the watch open', () => api.openWatches === 1);
    api.send('DELETED', fakePod(UID_A, 'web', 'shop'));
    await pollUntil('the deletion seen', () => w.get(UID_A)?.deletedAtMs === 1_000);
    clock = 1_400;
    api.send('BOOKMARK', { metadata: { resourceVersion: '150' } });
    api.send('ADDED', fakePod(UID_B, 'marker-1', 'shop'));
    await pollUntil('the marker', () => w.get(UID_B));
    expect(w.get(UID_A)).toBeDefined();
    clock = 1_500;
    api.send('BOOKMARK', { metadata: { resourceVersion: '151' } });
    await pollUntil('the deleted pod forgotten', () => w.get(UID_A) === undefined);
  });

  it('lists again after 410 Gone', async () => {
    const api = await new FakeKubeApi().start();
    const { w } = watcher(api);
    await w.start();
    await pollUntil('the watch open', () => api.openWatches === 1);
    api.pods.push(fakePod(UID_A, 'missed', 'shop'));
    api.resourceVersion = 200;
    api.send('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
    await pollUntil('the relisted pod', () => w.get(UID_A), { describe: () => `lists: ${api.lists}` });
    expect(api.lists).toBe(2);
    await pollUntil('a watch from the new version', () => api.requests.some((r) => r.includes('resourceVersion=200')));
  });

  it('retries with backoff while the API fails, counting errors, and recovers', async () => {
    const api = await new FakeKubeApi().start();
    api.failWith = 503;
    api.pods.push(fakePod(UID_A, 'web', 'shop'));
    const { w, telemetry, logs } = watcher(api);
    // start() returns after the first failure: logs must not wait for the API.
    await w.start();
    expect(w.get(UID_A)).toBeUndefined();
    await pollUntil('two failures', () => telemetry.counter('kubernetes_api_errors_total', 'k8s') >= 2);
    expect(logs.filter((r) => r.event === 'kubernetes_api_failed').map((r) => r.level)).toContain('warn');
    api.failWith = null;
    await pollUntil('recovered', () => w.get(UID_A));
  });
});

describe('kubernetes_logs with the API', () => {
  it('adds labels, annotations, node name and image to the batches of known pods, path fields to others', async () => {
    const api = await new FakeKubeApi().start();
    api.pods.push(fakePod(UID_A, 'web', 'shop', { labels: { app: 'web' }, annotations: { team: 'cart' }, image: 'shop/web:2' }));
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    await writePodLog(root, { namespace: 'shop', name: 'web', uid: UID_A, container: 'c' }, '2024-01-01T00:00:00Z stdout F known\n');
    await writePodLog(root, { namespace: 'shop', name: 'gone', uid: UID_B, container: 'c' }, '2024-01-01T00:00:00Z stdout F unknown\n');
    const { source, downstream } = buildK8sSource(root, { dataDir, mode: 'replay', table: { api_endpoint: api.url, self_node_name: 'node-1' } });
    await source.start();
    await source.finished();
    await source.stop();
    const metas = downstream.batches.map((b) => b.meta.kubernetes!);
    expect(metas.find((m) => m.pod_uid === UID_A)).toEqual({
      pod_namespace: 'shop',
      pod_name: 'web',
      pod_uid: UID_A,
      container_name: 'c',
      pod_labels: { app: 'web' },
      pod_annotations: { team: 'cart' },
      pod_node_name: 'node-1',
      container_image: 'shop/web:2',
    });
    expect(metas.find((m) => m.pod_uid === UID_B)).toEqual({ pod_namespace: 'shop', pod_name: 'gone', pod_uid: UID_B, container_name: 'c' });
  });

  it('still ships every line when the API is down', async () => {
    const api = await new FakeKubeApi().start();
    api.failWith = 500;
    const root = await fileTempDir();
    const dataDir = await fileTempDir();
    await writePodLog(root, { namespace: 'shop', name: 'web', uid: UID_A, container: 'c' }, '2024-01-01T00:00:00Z stdout F still here\n');
    const { source, downstream, telemetry } = buildK8sSource(root, {
      dataDir,
      mode: 'replay',
      table: { api_endpoint: api.url, self_node_name: 'node-1' },
      internal: { apiRetryMinMs: 10, apiRetryMaxMs: 20 },
    });
    await source.start();
    await source.finished();
    await source.stop();
    expect(downstream.batches.map((b) => b.meta.kubernetes?.pod_name)).toEqual(['web']);
    expect(downstream.batches[0]!.meta.kubernetes!.pod_labels).toBeUndefined();
    expect(telemetry.counter('kubernetes_api_errors_total', 'k8s')).toBeGreaterThanOrEqual(1);
  });
});
