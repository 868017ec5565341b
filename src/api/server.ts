/**
 * The `api` block's HTTP server. `GET /health` answers 200 `{"ok":true}` while the topology runs
 * (a config reload included: the process is healthy and the old topology drains into the new
 * one), and 503 `{"ok":false,"state":...}` while starting or draining for shutdown, so a
 * Kubernetes readiness probe takes the pod out of rotation and a liveness probe leaves it alone
 * during a bounded drain. Every other path is a 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type HealthState = 'starting' | 'running' | 'reloading' | 'draining';

/** States in which `/health` answers 200. */
export const HEALTHY_STATES: readonly HealthState[] = ['running', 'reloading'];

export class ApiServer {
  state: HealthState = 'starting';
  private server: Server | null = null;

  /** Listens; resolves with the bound address (the real port when `port` is 0). */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer((req, res) => this.handle(req, res));
    // An idle keep-alive connection from a probe must not hold up shutdown.
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/health' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"ok":false,"error":"not found"}');
      return;
    }
    const ok = HEALTHY_STATES.includes(this.state);
    const body = ok ? '{"ok":true}' : JSON.stringify({ ok: false, state: this.state });
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
