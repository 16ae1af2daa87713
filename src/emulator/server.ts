/**
 * The emulator's HTTPS server: authentication challenge, routing, latency and faults, then one
 * handler per Managed HSM operation. `EmulatorServer.start` is what `akv emulator` runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { handleAdmin, type AdminState } from './admin.js';
import { CryptoPool } from './crypto/pool.js';
import { HsmError, badParameter } from './errors.js';
import { FaultInjector, RequestStats, type Fault } from './faults.js';
import { cryptoOperation } from './handlers/crypto.js';
import type { ApiContext, ApiResult } from './handlers/context.js';
import * as keys from './handlers/keys.js';
import * as lifecycle from './handlers/lifecycle.js';
import type { HsmState } from './handlers/context.js';
import { markArrival, parseJson, readBody, sendError, sendJson } from './http/io.js';
import { DEFAULT_RETENTION_DAYS } from './keys/bundle.js';
import { ensureAttestationAuthority } from './release/attestation.js';
import { ensureBackupKey } from './keys/backup-key.js';
import { route, type ApiRoute } from './http/router.js';
import { KeyStore } from './keys/store.js';
import { ensureTlsMaterial, type TlsMaterial } from './tls.js';
import { errorMessage } from '../errors.js';

export interface EmulatorOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  stateDir: string;
  latencyMs?: number;
  /** When set, the only bearer token accepted. */
  token?: string;
  /** Crypto worker threads (default: cores, 2 to 4). */
  workers?: number;
  /** Soft-delete retention in days, 7 to 90 (default 7, as a new real HSM). */
  retentionDays?: number;
}

/** Tenant named in the 401 challenge; clients only pass it to their credential. */
const TENANT = '00000000-0000-0000-0000-00000000a4b7';
const CHALLENGE = `Bearer authorization="https://login.microsoftonline.com/${TENANT}", resource="https://managedhsm.azure.net"`;

/** api-version values the service accepts (7.0 to 7.6 with previews, and date versions). */
const API_VERSION =
  /^(7\.[0-9](-preview(\.[0-9]+)?)?|20[2-9][0-9]-[01][0-9]-[0-3][0-9](-preview)?)$/;

export class EmulatorServer {
  readonly admin: AdminState;
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    private readonly store: KeyStore,
    private readonly pool: CryptoPool,
    readonly tls: TlsMaterial,
    readonly host: string,
    readonly port: number,
    private readonly token: string | undefined,
    admin: AdminState,
    private readonly hsm: HsmState,
  ) {
    this.admin = admin;
  }

  get url(): string {
    return `https://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  static async start(options: EmulatorOptions): Promise<EmulatorServer> {
    const tls = await ensureTlsMaterial(options.stateDir);
    const store = await KeyStore.open(options.stateDir);
    const hsm: HsmState = {
      recovery: { retentionDays: options.retentionDays ?? DEFAULT_RETENTION_DAYS },
      attestation: await ensureAttestationAuthority(options.stateDir),
      releaseSigner: { keyPem: tls.keyPem, certPems: [tls.certPem, tls.caPem] },
      backupKey: await ensureBackupKey(options.stateDir),
    };
    const admin: AdminState = {
      faults: new FaultInjector(),
      stats: new RequestStats(),
      latencyMs: options.latencyMs ?? 0,
    };
    const server = createServer({ key: tls.keyPem, cert: tls.certPem });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Workers only once listening, so a failed start leaves nothing running.
    const pool = new CryptoPool(options.workers);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    const emulator = new EmulatorServer(
      server,
      store,
      pool,
      tls,
      options.host,
      port,
      options.token,
      admin,
      hsm,
    );
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void emulator.handle(req, res);
    });
    return emulator;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const res of this.hanging) res.destroy();
    await closed;
    await this.pool.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    markArrival(res);
    try {
      const url = new URL(req.url ?? '/', 'https://emulator.invalid');
      if (url.pathname === '/_emulator' || url.pathname.startsWith('/_emulator/')) {
        await handleAdmin(this.admin, req, res, url.pathname);
        return;
      }
      await this.handleApi(req, res, url);
    } catch (err) {
      if (res.headersSent || res.destroyed) return;
      if (err instanceof HsmError) {
        sendError(res, err);
      } else {
        console.error(
          `akv emulator: internal error on ${req.method} ${req.url?.split('?')[0]}: ${errorMessage(err)}`,
        );
        sendError(
          res,
          new HsmError(500, 'InternalServerError', 'The emulator failed to process the request'),
        );
      }
    }
  }

  private async handleApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { stats, faults } = this.admin;
    // Every API request, challenges included, takes the latency as its whole service time, as a
    // far-away HSM would: the answer leaves latencyMs after the request arrived, the emulator's
    // own work (an RSA 3072 signature takes milliseconds) included, not added.
    if (this.admin.latencyMs > 0) holdAnswer(res, performance.now() + this.admin.latencyMs);
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      stats.count('challenge');
      return sendJson(res, 401, undefined, { 'WWW-Authenticate': CHALLENGE });
    }
    if (this.token !== undefined && token !== this.token) {
      stats.count('unauthorized');
      return sendError(
        res,
        new HsmError(401, 'Unauthorized', 'The access token is not valid for this Managed HSM'),
        {
          'WWW-Authenticate': CHALLENGE,
        },
      );
    }
    let apiRoute: ApiRoute;
    try {
      apiRoute = route(req.method ?? 'GET', url.pathname);
    } catch (err) {
      stats.count('unknown');
      throw err;
    }
    stats.count(apiRoute.operation);
    const fault = faults.take(apiRoute.operation);
    if (fault) return this.applyFault(fault, req, res);

    const apiVersion = url.searchParams.get('api-version');
    if (!apiVersion)
      throw badParameter('The api-version query parameter is required, e.g. ?api-version=7.4');
    if (!API_VERSION.test(apiVersion)) {
      throw badParameter(
        `api-version ${apiVersion} is not supported: use 7.0 to 7.6 or 2025-07-01`,
      );
    }
    const body = parseJson(req, await readBody(req));
    const ctx: ApiContext = {
      host: req.headers.host ?? `${this.host}:${this.port}`,
      store: this.store,
      hsm: this.hsm,
      pool: this.pool,
      apiVersion,
      query: url.searchParams,
      body,
    };
    const result = await dispatch(ctx, apiRoute);
    sendJson(res, result.status, result.body);
  }

  private applyFault(fault: Fault, req: IncomingMessage, res: ServerResponse): void {
    const retryAfter =
      fault.retryAfterSeconds !== undefined
        ? { 'Retry-After': String(fault.retryAfterSeconds) }
        : undefined;
    switch (fault.mode) {
      case 'throttle':
        return sendError(res, throttled());
      case 'throttle-retry-after':
        return sendError(res, throttled(), { 'Retry-After': String(fault.retryAfterSeconds ?? 1) });
      case 'error500':
        return sendError(
          res,
          new HsmError(500, 'InternalServerError', 'Injected fault: internal server error'),
          retryAfter,
        );
      case 'error503':
        return sendError(
          res,
          new HsmError(503, 'ServiceUnavailable', 'Injected fault: service unavailable'),
          retryAfter,
        );
      case 'reset':
        return resetConnection(req.socket);
      case 'hang':
        this.hanging.add(res);
        res.on('close', () => this.hanging.delete(res));
        return;
    }
  }
}

function throttled(): HsmError {
  return new HsmError(
    429,
    'Throttled',
    'Request was not processed because too many requests were received. Reason: injected fault',
  );
}

function resetConnection(socket: Socket): void {
  // A TCP RST where the socket type allows it; otherwise an abrupt close.
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

function dispatch(ctx: ApiContext, r: ApiRoute): Promise<ApiResult> | ApiResult {
  const name = r.name ?? ''; // the routes without a name (list, rng, restore ...) do not read it
  switch (r.operation) {
    case 'create':
      return keys.createKey(ctx, name);
    case 'import':
      return keys.importKey(ctx, name);
    case 'rotate':
      return keys.rotateKey(ctx, name);
    case 'get':
      return keys.getKey(ctx, name, r.version);
    case 'list':
      return keys.listKeys(ctx);
    case 'versions':
      return keys.listKeyVersions(ctx, name);
    case 'update':
      return keys.updateKey(ctx, name, r.version);
    case 'delete':
      return keys.deleteKey(ctx, name);
    case 'listdeleted':
      return keys.listDeletedKeys(ctx);
    case 'getdeleted':
      return keys.getDeletedKey(ctx, name);
    case 'purge':
      return keys.purgeDeletedKey(ctx, name);
    case 'recover':
      return keys.recoverDeletedKey(ctx, name);
    case 'rng':
      return keys.randomBytesOp(ctx);
    case 'release':
      return lifecycle.releaseKey(ctx, name, r.version);
    case 'getrotationpolicy':
      return lifecycle.getRotationPolicy(ctx, name);
    case 'setrotationpolicy':
      return lifecycle.setRotationPolicy(ctx, name);
    case 'backup':
      return lifecycle.backupKey(ctx, name);
    case 'restore':
      return lifecycle.restoreKey(ctx);
    default:
      return cryptoOperation(ctx, r.operation, name, r.version);
  }
}

/** Delays `res.end` (every answer ends with it) until `until` (performance.now() ms). */
function holdAnswer(res: ServerResponse, until: number): void {
  // res.end has three overloads (chunk, encoding, callback): a wrapper that hands every argument
  // on unchanged cannot be written as all three, so it is typed loosely and cast back.
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.end = ((...args: unknown[]) => {
    const wait = until - performance.now();
    if (wait <= 0) return end(...args);
    setTimeout(() => {
      if (!res.destroyed) end(...args);
    }, wait);
    return res;
  }) as typeof res.end;
}
