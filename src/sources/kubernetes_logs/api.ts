/**
 * Pod metadata from the Kubernetes API, for enrichment: one list of this node's pods, then a watch
 * that keeps the cache current (relisting after `410 Gone`, reconnecting with backoff after
 * errors). Plain HTTP(S) with the service account's bearer token; JSON lines for the watch.
 *
 * The cache is best effort: a pod not (yet) known, or an unreachable API, leaves batches with the
 * path's fields only. Errors are counted and logged, never fatal.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Telemetry } from '../../telemetry.js';
import * as events from './events.js';

/** Where a pod's service account token and the cluster CA are mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** First retry delay after an API error; doubles up to API_RETRY_MAX_MS. */
export const API_RETRY_MIN_MS = 500;
export const API_RETRY_MAX_MS = 30_000;
/** The API server ends each watch after this long (the client then watches again from where it was). */
export const API_WATCH_TIMEOUT_SECS = 300;
/** One list request gives up after this long. */
export const API_REQUEST_TIMEOUT_MS = 10_000;
/** Vector's `delay_deletion_ms` default: a deleted pod's metadata is kept this long for its last lines. */
export const DEFAULT_DELAY_DELETION_MS = 60_000;

export interface PodInfo {
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  nodeName: string | undefined;
  /** Container name -> image, init and ephemeral containers included. */
  images: ReadonlyMap<string, string>;
  /** Set when the API reported the pod deleted; the entry goes `delayDeletionMs` later. */
  deletedAtMs?: number;
}

export interface ApiClientOptions {
  /** `https://host:port` or, for tests and `kubectl proxy`, `http://...`. */
  endpoint: string;
  /** Read before every request (service account tokens rotate); undefined for no auth. */
  tokenFile: string | undefined;
  caFile: string | undefined;
  nodeName: string;
  delayDeletionMs: number;
  retryMinMs: number;
  retryMaxMs: number;
}

/** The in-cluster API endpoint from the environment the kubelet gives every pod, if any. */
export function inClusterEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || host === '' || port === undefined || port === '') return undefined;
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

interface WatchEvent {
  type?: string;
  object?: { metadata?: { resourceVersion?: string }; code?: number; message?: string } & RawPod;
}

interface RawPod {
  metadata?: { uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  spec?: {
    nodeName?: string;
    containers?: Array<{ name?: string; image?: string }>;
    initContainers?: Array<{ name?: string; image?: string }>;
    ephemeralContainers?: Array<{ name?: string; image?: string }>;
  };
}

class ApiStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function podInfo(pod: RawPod): PodInfo {
  const images = new Map<string, string>();
  for (const list of [pod.spec?.initContainers, pod.spec?.containers, pod.spec?.ephemeralContainers]) {
    for (const c of list ?? []) if (c.name !== undefined && c.image !== undefined) images.set(c.name, c.image);
  }
  return { labels: pod.metadata?.labels ?? {}, annotations: pod.metadata?.annotations ?? {}, nodeName: pod.spec?.nodeName, images };
}

export class PodMetadataWatcher {
  private readonly pods = new Map<string, PodInfo>();
  private resourceVersion: string | undefined;
  /** Set by a `410 Gone` watch event: the cache must be listed again. */
  private relist = true;
  private stopped = false;
  private request: http.ClientRequest | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private firstSync!: () => void;
  private readonly synced = new Promise<void>((resolve) => (this.firstSync = resolve));

  constructor(
    private readonly options: ApiClientOptions,
    private readonly telemetry: Telemetry,
    private readonly id: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts listing and watching; resolves after the first list answered or failed. */
  async start(): Promise<void> {
    this.loop = this.run();
    await this.synced;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.request?.destroy();
    this.wake?.();
    await this.loop;
  }

  /** The pod's metadata, if the API has told us about it. */
  get(uid: string): PodInfo | undefined {
    return this.pods.get(uid);
  }

  get size(): number {
    return this.pods.size;
  }

  private async run(): Promise<void> {
    let delay = this.options.retryMinMs;
    while (!this.stopped) {
      try {
        if (this.relist) await this.list();
        this.firstSync();
        delay = this.options.retryMinMs;
        await this.watch();
      } catch (err) {
        this.firstSync();
        if (this.stopped) break;
        events.apiRequestFailed(this.telemetry, this.id, err, delay);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
        delay = Math.min(delay * 2, this.options.retryMaxMs);
      }
    }
  }

  private query(extra: string): string {
    return `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.options.nodeName}`)}${extra}`;
  }

  private async list(): Promise<void> {
    const body = await this.get_(this.query(''));
    const list = JSON.parse(body) as { metadata?: { resourceVersion?: string }; items?: RawPod[] };
    const fresh = new Map<string, PodInfo>();
    for (const pod of list.items ?? []) if (pod.metadata?.uid !== undefined) fresh.set(pod.metadata.uid, podInfo(pod));
    // Pods gone since the last list keep their metadata for the deletion delay, like deleted ones.
    const at = this.now();
    for (const [uid, info] of this.pods) if (!fresh.has(uid)) fresh.set(uid, { ...info, deletedAtMs: info.deletedAtMs ?? at });
    this.pods.clear();
    for (const [uid, info] of fresh) this.pods.set(uid, info);
    this.resourceVersion = list.metadata?.resourceVersion;
    this.relist = false;
    events.apiSynced(this.telemetry, this.id, this.pods.size);
  }

  private openRequest(path: string, timeoutMs: number | undefined): Promise<http.IncomingMessage> {
    const url = new URL(path, this.options.endpoint);
    const headers: Record<string, string> = { accept: 'application/json' };
    const secure = url.protocol === 'https:';
    // The token never travels in clear text: an http:// endpoint (kubectl proxy) authenticates itself.
    if (secure && this.options.tokenFile !== undefined) headers.authorization = `Bearer ${readFileSync(this.options.tokenFile, 'utf8').trim()}`;
    const ca = secure && this.options.caFile !== undefined ? readFileSync(this.options.caFile) : undefined;
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).get(url, { headers, ...(ca === undefined ? {} : { ca }) }, (res) => {
        if (res.statusCode !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text = (text + c).slice(0, 512)));
          res.on('end', () => reject(new ApiStatusError(res.statusCode ?? 0, `GET ${url.pathname}: HTTP ${res.statusCode}: ${text}`)));
          res.on('error', reject);
          return;
        }
        resolve(res);
      });
      this.request = req;
      if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url.pathname}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
    });
  }

  private async get_(path: string): Promise<string> {
    const res = await this.openRequest(path, API_REQUEST_TIMEOUT_MS);
    res.setEncoding('utf8');
    let body = '';
    for await (const chunk of res) body += chunk as string;
    return body;
  }

  /** Follows the watch until the server ends it (then the caller watches again from the last version). */
  private async watch(): Promise<void> {
    const rv = this.resourceVersion === undefined ? '' : `&resourceVersion=${encodeURIComponent(this.resourceVersion)}`;
    const res = await this.openRequest(this.query(`&watch=1&allowWatchBookmarks=true&timeoutSeconds=${API_WATCH_TIMEOUT_SECS}${rv}`), undefined);
    res.setEncoding('utf8');
    let pending = '';
    for await (const chunk of res) {
      pending += chunk as string;
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line !== '') this.apply(JSON.parse(line) as WatchEvent);
        if (this.relist) {
          res.destroy();
          return;
        }
      }
    }
  }

  private apply(event: WatchEvent): void {
    const object = event.object;
    if (event.type === 'ERROR') {
      // 410 Gone: the version is too old to watch from; list again.
      if (object?.code === 410) {
        this.relist = true;
        return;
      }
      throw new ApiStatusError(object?.code ?? 0, `watch error: ${object?.message ?? 'unknown'}`);
    }
    const version = object?.metadata?.resourceVersion;
    if (version !== undefined) this.resourceVersion = version;
    const uid = object?.metadata?.uid;
    if (uid !== undefined && object !== undefined) {
      if (event.type === 'ADDED' || event.type === 'MODIFIED') this.pods.set(uid, podInfo(object));
      else if (event.type === 'DELETED') this.pods.set(uid, { ...podInfo(object), deletedAtMs: this.now() });
    }
    this.purge();
  }

  private purge(): void {
    const limit = this.now() - this.options.delayDeletionMs;
    for (const [uid, info] of this.pods) if (info.deletedAtMs !== undefined && info.deletedAtMs <= limit) this.pods.delete(uid);
  }
}
