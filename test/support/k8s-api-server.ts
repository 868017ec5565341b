/**
 * A local HTTP server that answers like the Kubernetes API for `GET /api/v1/pods` (list, and
 * `watch=1` as JSON lines held open), on 127.0.0.1 port 0, closed after the test.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

export interface FakePod {
  metadata: { uid: string; name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  spec: { nodeName: string; containers: Array<{ name: string; image: string }> };
}

export function fakePod(uid: string, name: string, namespace: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string>; node?: string; image?: string } = {}): FakePod {
  return {
    metadata: { uid, name, namespace, labels: extra.labels ?? {}, annotations: extra.annotations ?? {} },
    spec: { nodeName: extra.node ?? 'node-1', containers: [{ name: 'c', image: extra.image ?? 'registry.example/app:1.0' }] },
  };
}

export class FakeKubeApi {
  readonly pods: FakePod[] = [];
  /** Every request's path and query, in order. */
  readonly requests: string[] = [];
  /** Status to answer the next requests with instead of 200 (list and watch alike). */
  failWith: number | null = null;
  resourceVersion = 100;
  private readonly watches = new Set<http.ServerResponse>();
  private server: http.Server | null = null;

  get url(): string {
    const address = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  get lists(): number {
    return this.requests.filter((r) => r.startsWith('/api/v1/pods') && !r.includes('watch=1')).length;
  }

  get openWatches(): number {
    return this.watches.size;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => this.close());
    return this;
  }

  /** Sends one watch event to every open watch. */
  send(type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR', object: unknown): void {
    for (const res of this.watches) res.write(`${JSON.stringify({ type, object })}\n`);
  }

  async close(): Promise<void> {
    for (const res of this.watches) res.destroy();
    this.watches.clear();
    const server = this.server;
    this.server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/api/v1/pods') {
      res.writeHead(404).end();
      return;
    }
    if (this.failWith !== null) {
      res.writeHead(this.failWith, { 'content-type': 'application/json' }).end('{"kind":"Status","message":"injected failure"}');
      return;
    }
    const node = /^spec\.nodeName=(.*)$/.exec(url.searchParams.get('fieldSelector') ?? '')?.[1];
    if (url.searchParams.get('watch') === '1') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      this.watches.add(res);
      res.on('close', () => this.watches.delete(res));
      return;
    }
    const items = this.pods.filter((p) => node === undefined || p.spec.nodeName === node);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.resourceVersion) }, items }));
  }
}
