/**
 * Per HSM/vault, created on first use and kept for the life of the process: the hot path's
 * keep-alive pool (key-operations.ts), a keep-alive agent for everything else, and the SDK's
 * KeyClient (its pipeline holds the authentication challenge state), made only when a call needs
 * it.
 *
 * The SDK is loaded on demand (loadKeyVaultSdk): it costs more to import than the rest of the
 * agent together, and the agent's usual work needs none of it. A key's description (the first
 * request of every command) is a plain GET sent with a token for the service's own scope
 * (fetchKeyBundle); only when the HSM refuses that token (another tenant, a claims challenge), or
 * when the endpoint is not one that scope belongs to, does the SDK's challenge handling take over,
 * and from then on every call uses what the challenge asked for (ChallengeRecorder).
 *
 * node:https and node:tls are taken when a vault's clients are made, not imported (node:crypto
 * likewise where the first request uses it): loading them was about a fifth of the agent's start
 * to listening (issue 25, docs/performance.md "Cold start"), and the agent loads them right after
 * it listens (preloadHsmTransport).
 */
import type { Agent as HttpsAgent } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { KeyClient } from '@azure/keyvault-keys';
import type { Logger } from 'pino';
import type { AkvConfig, RetryConfig, VaultType } from '../config/types.js';
import { DEFAULT_DEADLINE_MS, DEFAULT_RETRY, agentLimits } from '../config/load.js';
import type { KeyRef } from '../uri/index.js';
import { formatKeyUri } from '../uri/index.js';
import { createCredential, type AkvCredential, type CredentialSource } from './credentials.js';
import { PUBLIC_SUFFIX, resolveEndpoint, type VaultEndpoint } from './endpoints.js';
import type { FailureKind, OpContext } from './failures.js';
import { Deadline } from './abort.js';
import { withRetries, type RetryOptions, type RetryResult } from './retry.js';
import { API_VERSION, ChallengeRecorder, HsmHttpError, KeyOperations } from './key-operations.js';
import { WarmingHsmHttp } from './warming-http.js';
import { emptyErrorBodyPolicy } from './empty-error-body.js';
import { akvVersion } from '../version.js';
import { loadOwnModule } from '../installation.js';
import { RetryBudget } from './retry-budget.js';
import { isRecord } from '../guards.js';

/**
 * Loads what the first HSM request needs. The agent calls it once it listens: while the provider
 * that started it connects and says HELLO, rather than before the socket exists.
 */
export function preloadHsmTransport(): void {
  process.getBuiltinModule('node:crypto');
  process.getBuiltinModule('node:tls');
  process.getBuiltinModule('node:https');
}

export interface AzureHooks {
  /** The underlying credential was asked for a token (not a cache hit). */
  onTokenRefresh?(): void;
  /** An HSM call is about to be retried. */
  onRetry?(kind: FailureKind): void;
  /** An HSM call was not retried because the HSM's retry budget was spent. */
  onRetryBudgetSpent?(kind: FailureKind): void;
}

type KeyVaultSdk = typeof import('@azure/keyvault-keys');
let keyVaultSdk: KeyVaultSdk | undefined;
let loadingSdk: Promise<KeyVaultSdk> | undefined;

/** Loads @azure/keyvault-keys once per process; keyClient() needs it loaded. */
export async function loadKeyVaultSdk(): Promise<KeyVaultSdk> {
  if (keyVaultSdk) return keyVaultSdk;
  loadingSdk ??= loadOwnModule('the Key Vault SDK', () => import('@azure/keyvault-keys')).then(
    (m) => (keyVaultSdk = m),
    (err: unknown) => {
      loadingSdk = undefined;
      throw err;
    },
  );
  return loadingSdk;
}

/** The largest key bundle accepted from a GET (an RSA 4096 bundle is under 2 KiB). */
const MAX_BUNDLE_BYTES = 256 * 1024;

/** A key bundle the HSM returned (the REST API's JSON, not the SDK's model). */
export interface KeyBundleAnswer {
  bundle: unknown;
}

interface VaultClients {
  endpoint: VaultEndpoint;
  /** Made on first use (the SDK loaded). */
  keyClient?: KeyClient;
  /** The credential as this vault's SDK client and hot path see it. */
  recorder: ChallengeRecorder;
  /** Keep-alive pool of the SDK client and of fetchKeyBundle. */
  httpsAgent: HttpsAgent;
  /** The hot path's keep-alive connections (at most maxInFlight), Node's https until warm. */
  http: WarmingHsmHttp;
  operations: KeyOperations;
}

export class AzureClients {
  readonly credential: AkvCredential;
  private readonly vaults = new Map<string, VaultClients>();
  /** One retry budget per HSM endpoint, shared by all its requests (retry-budget.ts). */
  private readonly budgets = new Map<string, RetryBudget>();
  readonly deadlineMs: number;
  readonly retry: RetryConfig;
  /** What every call's retry loop shares (the per-call parts are added to a copy). */
  private readonly retryOptions: RetryOptions;

  constructor(
    readonly config: AkvConfig,
    private readonly logger?: Logger,
    private readonly hooks: AzureHooks = {},
    credential?: AkvCredential,
  ) {
    this.credential =
      credential ??
      createCredential(config, logger, { onRefresh: () => this.hooks.onTokenRefresh?.() });
    this.deadlineMs = config.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.retry = config.retry ?? DEFAULT_RETRY;
    this.retryOptions = {
      deadlineMs: this.deadlineMs,
      retry: this.retry,
      onRetry: (kind, attempt, delayMs, ctx) => {
        this.logger?.debug(
          { op: ctx.op, target: ctx.target, kind, attempt, delayMs },
          'retrying HSM call',
        );
        this.hooks.onRetry?.(kind);
      },
      onBudgetSpent: (kind, ctx) => {
        this.logger?.debug(
          { op: ctx.op, target: ctx.target, kind },
          'not retrying: the retry budget of this HSM is spent',
        );
        this.hooks.onRetryBudgetSpent?.(kind);
      },
    };
  }

  endpoint(vaultType: VaultType, vault: string): VaultEndpoint {
    return this.vault(vaultType, vault).endpoint;
  }

  /** The vault's SDK client; the SDK must be loaded (loadKeyVaultSdk, or use sdkKeyClient). */
  keyClient(vaultType: VaultType, vault: string): KeyClient {
    const v = this.vault(vaultType, vault);
    if (v.keyClient) return v.keyClient;
    if (!keyVaultSdk)
      throw new Error(
        'bug: keyClient() before the Key Vault SDK was loaded (await loadKeyVaultSdk())',
      );
    v.keyClient = new keyVaultSdk.KeyClient(v.endpoint.url, v.recorder, {
      // Retries happen in withRetries (429 without Retry-After included); two layers would multiply.
      retryOptions: { maxRetries: 0 },
      disableChallengeResourceVerification: v.endpoint.disableChallengeResourceVerification,
      serviceVersion: API_VERSION,
      agent: v.httpsAgent,
      // A redirect is an answer to report, not to follow (the SDK would drop the token).
      redirectOptions: { maxRetries: 0 },
      additionalPolicies: [{ policy: emptyErrorBodyPolicy, position: 'perRetry' }],
    });
    return v.keyClient;
  }

  /** The vault's SDK client, loading the SDK first when needed. */
  async sdkKeyClient(vaultType: VaultType, vault: string): Promise<KeyClient> {
    await loadKeyVaultSdk();
    return this.keyClient(vaultType, vault);
  }

  /**
   * GET of a key's bundle without the SDK, or undefined when the SDK must do it: no challenge has
   * been seen for this HSM and its endpoint is not one the service's own scope belongs to (the
   * SDK's resource check would refuse it), or the HSM refused the token (401: the SDK's challenge
   * handling then finds out what it wants). Other failures throw HsmHttpError or a network error,
   * classified like the SDK's (failures.ts).
   */
  async fetchKeyBundle(ref: KeyRef, signal: AbortSignal): Promise<KeyBundleAnswer | undefined> {
    const v = this.vault(ref.vaultType, ref.vault);
    let token: string;
    if (v.recorder.ready) {
      const deadline = new Deadline(Date.now() + this.deadlineMs);
      try {
        const held = v.recorder.tokenForHsm(deadline);
        token = typeof held === 'string' ? held : await held;
      } finally {
        deadline.dispose();
      }
    } else {
      if (!scopeFitsEndpoint(v.endpoint, this.credential.source)) return undefined;
      const t = await this.credential.getToken(v.endpoint.scope, { abortSignal: signal });
      if (!t) return undefined;
      token = t.token;
    }
    const path = `/keys/${encodeURIComponent(ref.name)}/${encodeURIComponent(ref.version ?? '')}?api-version=${API_VERSION}`;
    const res = await getJson(v.endpoint.url, path, v.httpsAgent, token, signal);
    if (res.status === 401) {
      v.recorder.refused();
      return undefined;
    }
    // 2xx, and 403/404 too, come only after the HSM accepted the token (a key that may sign but
    // not be read, a missing key): the hot path may use a token for the same scope from now on.
    // The credential caches it, so this asks nothing new.
    if (!v.recorder.ready && (res.status < 300 || res.status === 403 || res.status === 404))
      await v.recorder.getToken(v.endpoint.scope, { abortSignal: signal });
    if (res.status < 200 || res.status >= 300) throw httpError(res);
    return { bundle: res.json };
  }

  /** The context used in messages for an operation on a key. */
  keyContext(ref: KeyRef, op: string, keyOp?: string): OpContext {
    const ctx: OpContext = {
      op,
      target: formatKeyUri(ref),
      vault: ref.vault,
      url: this.endpoint(ref.vaultType, ref.vault).url,
    };
    if (keyOp) ctx.keyOp = keyOp;
    return ctx;
  }

  vaultContext(vaultType: VaultType, vault: string, op: string): OpContext {
    return {
      op,
      target: `${vaultType}:${vault}:`,
      vault,
      url: this.endpoint(vaultType, vault).url,
    };
  }

  /**
   * Runs one HSM call under the configured deadline and retry policy; `deadline` (ms since the
   * epoch) replaces now + deadlineMs when the caller's clock started earlier.
   */
  run<T>(
    ctx: OpContext,
    call: (signal: AbortSignal) => Promise<T>,
    idempotent = true,
    deadline?: number,
  ): Promise<RetryResult<T>> {
    return withRetries(
      ctx,
      {
        ...this.retryOptions,
        budget: this.budgetFor(ctx.url),
        idempotent,
        ...(deadline !== undefined ? { deadline } : {}),
      },
      (until) => call(until.signal),
    );
  }

  /**
   * Runs a private-key operation of the hot path (key-operations.ts) under the deadline, the
   * retries and the HSM's retry budget; the message context is built only if one is needed.
   */
  runKeyOperation<T>(
    ref: KeyRef,
    keyOp: string,
    call: (operations: KeyOperations, deadline: Deadline) => Promise<T>,
    deadline?: number,
  ): Promise<RetryResult<T>> {
    const v = this.vault(ref.vaultType, ref.vault);
    return withRetries(
      () => this.keyContext(ref, keyOp, keyOp),
      {
        ...this.retryOptions,
        budget: this.budgetFor(v.endpoint.url),
        ...(deadline !== undefined ? { deadline } : {}),
      },
      (until) => call(v.operations, until),
    );
  }

  /** The HSMs and vaults a client was made for, in the order they were first used. */
  knownVaults(): Array<{ vaultType: VaultType; vault: string }> {
    return [...this.vaults.values()].map((v) => ({
      vaultType: v.endpoint.vaultType,
      vault: v.endpoint.vault,
    }));
  }

  private budgetFor(url: string): RetryBudget {
    let budget = this.budgets.get(url);
    if (!budget) {
      budget = new RetryBudget({
        budgetPercent: this.retry.budgetPercent ?? DEFAULT_RETRY.budgetPercent!,
        budgetMinRetries: this.retry.budgetMinRetries ?? DEFAULT_RETRY.budgetMinRetries!,
      });
      this.budgets.set(url, budget);
    }
    return budget;
  }

  close(): void {
    for (const v of this.vaults.values()) {
      v.httpsAgent.destroy();
      v.http.close();
    }
    this.vaults.clear();
  }

  /*
   * The SDK's challenge handling has a race: while the first request of a pipeline is out without
   * a token (its body held back), a concurrent request with a body can complete the challenge,
   * and the first one is then re-sent with an empty body (400). The agent's SDK calls are
   * body-less GETs (getKey, list), and the hot path (key-operations.ts) sends its POSTs only after
   * a GET has completed the challenge. Keep it so.
   */
  private vault(vaultType: VaultType, vault: string): VaultClients {
    const id = vaultId(vaultType, vault);
    let v = this.vaults.get(id);
    if (!v) {
      const endpoint = resolveEndpoint(this.config, vaultType, vault);
      // The extra CA is added to the public ones, so a corporate CA does not lock Azure out. It
      // goes in as one ready-made secure context: passed as `tlsOptions.ca`, Node would turn the
      // ~150 root certificates into the pool key of every request (measured: ~1 ms of CPU per
      // operation, half the client's cost).
      const { createSecureContext, rootCertificates } = process.getBuiltinModule('node:tls');
      const tls = endpoint.caPem
        ? { secureContext: createSecureContext({ ca: [...rootCertificates, endpoint.caPem] }) }
        : {};
      const { Agent } = process.getBuiltinModule('node:https');
      const httpsAgent = new Agent({ keepAlive: true, ...tls });
      const http = new WarmingHsmHttp(endpoint.url, httpsAgent, {
        ...tls,
        maxConnections: agentLimits(this.config).maxInFlight,
        // A handshake that does not finish frees its slot by the operation's deadline at the
        // latest; a shorter bound would fail handshakes that are only slow (a herd of new
        // connections on a busy machine).
        connectTimeoutMs: this.deadlineMs,
      });
      const recorder = new ChallengeRecorder(this.credential);
      const operations = new KeyOperations(
        endpoint.url,
        http,
        recorder,
        // The first operation on an HSM: a plain GET of its key, or the SDK's when that is not
        // enough (fetchKeyBundle); either way the HSM's authentication is known afterwards.
        async (ref) => {
          const abortSignal = AbortSignal.timeout(this.deadlineMs);
          if (await this.fetchKeyBundle(ref, abortSignal)) return;
          const client = await this.sdkKeyClient(vaultType, vault);
          await client.getKey(ref.name, {
            ...(ref.version ? { version: ref.version } : {}),
            abortSignal,
          });
        },
        akvVersion(),
      );
      v = { endpoint, recorder, httpsAgent, http, operations };
      this.vaults.set(id, v);
    }
    return v;
  }
}

/**
 * Whether a token for the endpoint's service scope may be sent to it before any challenge: the
 * endpoint is that service's in Azure's public cloud (https://<name>.managedhsm.azure.net for the
 * managedhsm scope: the check the SDK makes of a challenge's resource, made up front), or the
 * token is a static one (its scope is whatever it is) and the config turned the SDK's resource
 * check off for the endpoint (the emulator, private endpoints). A credential that gets tokens for
 * other endpoints (a sovereign cloud's resource) waits for the challenge to name the resource.
 */
function scopeFitsEndpoint(endpoint: VaultEndpoint, source: CredentialSource): boolean {
  if (endpoint.disableChallengeResourceVerification && source !== 'DefaultAzureCredential')
    return true;
  const host = new URL(endpoint.url).hostname.toLowerCase();
  return host.endsWith(`.${PUBLIC_SUFFIX[endpoint.vaultType]}`);
}

interface JsonAnswer {
  status: number;
  json: unknown;
  text: string;
  headers: IncomingMessage['headers'];
}

/** One GET on the keep-alive agent; the body is bounded and read as JSON (undefined if not). */
function getJson(
  base: string,
  path: string,
  agent: HttpsAgent,
  token: string,
  signal: AbortSignal,
): Promise<JsonAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = process.getBuiltinModule('node:https').request(
      {
        host: url.hostname,
        port: url.port || 443,
        path: `${url.pathname.replace(/\/$/, '')}${path}`,
        method: 'GET',
        agent,
        signal,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          'user-agent': `akv-agent/${akvVersion()} Node.js/${process.version}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BUNDLE_BYTES) {
            res.destroy();
            reject(
              new HsmHttpError(502, undefined, 'the HSM answered a key GET with over 256 KiB', {
                headers: { get: () => undefined },
              }),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A non-2xx answer as the hot path reports it (failures.ts classifies both alike). */
function httpError(res: JsonAnswer): HsmHttpError {
  const error = isRecord(res.json) && isRecord(res.json.error) ? res.json.error : undefined;
  const code = typeof error?.code === 'string' ? error.code : undefined;
  const message =
    typeof error?.message === 'string'
      ? error.message
      : res.text.slice(0, 300) || `HTTP ${res.status}`;
  const get = (name: string): string | undefined => {
    const value = res.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  };
  return new HsmHttpError(res.status, code, message, { headers: { get } });
}

function vaultId(vaultType: VaultType, vault: string): string {
  return `${vaultType}:${vault.toLowerCase()}`;
}
