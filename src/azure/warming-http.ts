/**
 * The hot path's HTTP client as the agent starts (issue 25): undici's Pool (hsm-http.ts) is the
 * client for a running agent, but loading undici costs more CPU than the rest of the agent's start
 * (docs/performance.md, "Cold start"), and a first command from nothing would wait for it. So the
 * first operations go over Node's own https, on the keep-alive agent the key's GET already
 * opened (one TLS handshake for the whole first command), and the Pool is loaded once the agent
 * has been idle for IDLE_MS, or LATEST_MS after the first operation under a steady stream; from
 * then on every operation uses it. Both send the same request and hand key-operations.ts the same
 * answer (status, lower-case headers, a body of at most MAX_BODY_BYTES); Node's failures are the
 * SDK's, which failures.ts classifies already.
 */
import type { Agent } from 'node:https';
import type { Deadline } from './abort.js';
import { abortError } from './abort.js';
import { loadOwnModule } from '../installation.js';
import type { HsmHttpClient, HsmHttpOptions, HsmHttpResponse } from './hsm-http.js';

/** Load the Pool once no operation has started for this long... */
const IDLE_MS = 250;
/** ...or this long after the first operation at the latest. */
const LATEST_MS = 1000;
/** The same bound as the Pool's. */
const MAX_BODY_BYTES = 1024 * 1024;

export class WarmingHsmHttp {
  private pool: HsmHttpClient | undefined;
  private loading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private firstUse: number | undefined;
  private closed = false;

  constructor(
    private readonly origin: string,
    /** Node's keep-alive agent for this HSM (the SDK's and the key GET's). */
    private readonly agent: Agent,
    private readonly options: HsmHttpOptions,
  ) {}

  /** Whether the Pool serves the operations now. */
  get warm(): boolean {
    return this.pool !== undefined;
  }

  post(
    path: string,
    headers: string[],
    body: string,
    deadline: Deadline,
  ): Promise<HsmHttpResponse> {
    if (this.pool) return this.pool.post(path, headers, body, deadline);
    this.scheduleWarm();
    return postOverHttps(this.origin, this.agent, path, headers, body, deadline);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.pool?.close();
  }

  private scheduleWarm(): void {
    if (this.loading) return;
    const now = Date.now();
    this.firstUse ??= now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(IDLE_MS, this.firstUse + LATEST_MS - now));
    this.timer = setTimeout(() => this.load(), wait);
    this.timer.unref();
  }

  private load(): void {
    this.loading ??= loadOwnModule("undici's connection pool", () => import('./hsm-http.js')).then(
      (m) => {
        if (!this.closed) this.pool = new m.HsmHttpClient(this.origin, this.options);
      },
      () => {
        // Stays on Node's https; the next operation tries again.
        this.loading = undefined;
      },
    );
  }
}

/** `headers` as the Pool takes them (name, value, name, value ...) into Node's object. */
function headerObject(headers: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < headers.length; i += 2) out[headers[i] ?? ''] = headers[i + 1] ?? '';
  return out;
}

function postOverHttps(
  origin: string,
  agent: Agent,
  path: string,
  headers: string[],
  body: string,
  deadline: Deadline,
): Promise<HsmHttpResponse> {
  if (deadline.expired) return Promise.reject(abortError());
  const url = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = process.getBuiltinModule('node:https').request(
      {
        host: url.hostname,
        port: url.port || 443,
        path,
        method: 'POST',
        agent,
        signal: deadline.signal,
        headers: { ...headerObject(headers), 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            res.destroy();
            // As the Pool reports it (hsm-http.ts), without loading it for its error class.
            const e = Object.assign(
              new Error('the HSM sent an answer that is not valid HTTP/1.1 (a body over 1 MiB)'),
              { name: 'HsmHttpProtocolError', code: 'EPROTO' },
            );
            reject(e);
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
