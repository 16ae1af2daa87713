/**
 * One KeyClient per HSM/vault, created on first use and kept for the life of the process (its
 * pipeline holds the authentication challenge state and a keep-alive connection pool), plus one
 * CryptographyClient per key (and pinned version) that shares the KeyClient's pipeline.
 */
import { Agent as HttpsAgent } from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { KeyClient, type CryptographyClient, type KeyClientOptions } from '@azure/keyvault-keys';
import type { Logger } from 'pino';
import type { AkvConfig, RetryConfig, VaultType } from '../config/types.js';
import { DEFAULT_DEADLINE_MS, DEFAULT_RETRY } from '../config/load.js';
import type { KeyRef } from '../uri/index.js';
import { formatKeyUri } from '../uri/index.js';
import { createCredential, type AkvCredential } from './credentials.js';
import { resolveEndpoint, type VaultEndpoint } from './endpoints.js';
import type { FailureKind, OpContext } from './failures.js';
import { withRetries, type RetryResult } from './retry.js';
import { RetryBudget } from './retry-budget.js';

export interface AzureHooks {
  /** The underlying credential was asked for a token (not a cache hit). */
  onTokenRefresh?(): void;
  /** An HSM call is about to be retried. */
  onRetry?(kind: FailureKind): void;
  /** An HSM call was not retried because the HSM's retry budget was spent. */
  onRetryBudgetSpent?(kind: FailureKind): void;
}

interface VaultClients {
  endpoint: VaultEndpoint;
  keyClient: KeyClient;
  /** Our own keep-alive pool when the endpoint has an extra CA (otherwise the SDK's). */
  httpsAgent?: HttpsAgent;
  crypto: Map<string, { client: CryptographyClient; createdAt: number }>;
}

/** Upper bound of cached CryptographyClients per vault (oldest dropped first). */
const MAX_CRYPTO_CLIENTS = 1000;

export class AzureClients {
  readonly credential: AkvCredential;
  private readonly vaults = new Map<string, VaultClients>();
  /** One retry budget per HSM endpoint, shared by all its requests (retry-budget.ts). */
  private readonly budgets = new Map<string, RetryBudget>();
  readonly deadlineMs: number;
  readonly retry: RetryConfig;

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
  }

  endpoint(vaultType: VaultType, vault: string): VaultEndpoint {
    return this.vault(vaultType, vault).endpoint;
  }

  keyClient(vaultType: VaultType, vault: string): KeyClient {
    return this.vault(vaultType, vault).keyClient;
  }

  /**
   * The CryptographyClient of a key. It fetches the key once and then runs public operations
   * (RSA wrap/encrypt) locally and checks key_ops and dates against that copy, so it is renewed
   * after keyCacheTtlMs: a rotated or changed key is seen as soon as the agent's own cache sees it.
   */
  cryptoClient(ref: KeyRef): CryptographyClient {
    const v = this.vault(ref.vaultType, ref.vault);
    const id = `${ref.name.toLowerCase()}/${ref.version?.toLowerCase() ?? ''}`;
    const now = Date.now();
    const cached = v.crypto.get(id);
    if (
      cached &&
      (ref.version !== undefined || now - cached.createdAt < this.config.keyCacheTtlMs)
    ) {
      return cached.client;
    }
    const client = v.keyClient.getCryptographyClient(
      ref.name,
      ref.version ? { keyVersion: ref.version } : undefined,
    );
    v.crypto.delete(id);
    if (v.crypto.size >= MAX_CRYPTO_CLIENTS) {
      const oldest = v.crypto.keys().next().value;
      if (oldest !== undefined) v.crypto.delete(oldest);
    }
    v.crypto.set(id, { client, createdAt: now });
    return client;
  }

  /**
   * Drops the cached CryptographyClient of a key: it remembers the key's operations and dates
   * from its first use, so after "not found", "forbidden" or "disabled" the next call starts fresh.
   */
  forgetKey(ref: KeyRef): void {
    const v = this.vaults.get(vaultId(ref.vaultType, ref.vault));
    v?.crypto.delete(`${ref.name.toLowerCase()}/${ref.version?.toLowerCase() ?? ''}`);
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
        deadlineMs: this.deadlineMs,
        ...(deadline !== undefined ? { deadline } : {}),
        budget: this.budgetFor(ctx.url),
        onBudgetSpent: (kind) => {
          this.logger?.debug(
            { op: ctx.op, target: ctx.target, kind },
            'not retrying: the retry budget of this HSM is spent',
          );
          this.hooks.onRetryBudgetSpent?.(kind);
        },
        retry: this.retry,
        idempotent,
        onRetry: (kind, attempt, delayMs) => {
          this.logger?.debug(
            { op: ctx.op, target: ctx.target, kind, attempt, delayMs },
            'retrying HSM call',
          );
          this.hooks.onRetry?.(kind);
        },
      },
      call,
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
    for (const v of this.vaults.values()) v.httpsAgent?.destroy();
    this.vaults.clear();
  }

  /*
   * The SDK's challenge handling has a race: while the first request of a pipeline is out without
   * a token (its body held back), a concurrent request with a body can complete the challenge,
   * and the first one is then re-sent with an empty body (400). Every operation here starts with
   * a body-less GET (getKey, list, or CryptographyClient's key fetch), and a GET that finishes has
   * completed the challenge, so no body-carrying request is sent before that. Keep it so.
   */
  private vault(vaultType: VaultType, vault: string): VaultClients {
    const id = vaultId(vaultType, vault);
    let v = this.vaults.get(id);
    if (!v) {
      const endpoint = resolveEndpoint(this.config, vaultType, vault);
      const options: KeyClientOptions = {
        // Retries happen in withRetries (429 without Retry-After included); two layers would multiply.
        retryOptions: { maxRetries: 0 },
        disableChallengeResourceVerification: endpoint.disableChallengeResourceVerification,
      };
      // The extra CA is added to the public ones, so a corporate CA does not lock Azure out. It
      // goes in as a ready-made secure context on our own keep-alive agent: passed as
      // `tlsOptions.ca`, Node would turn the ~150 root certificates into the pool key of every
      // request (measured: ~1 ms of CPU per operation, half the client's cost).
      let httpsAgent: HttpsAgent | undefined;
      if (endpoint.caPem) {
        const secureContext = createSecureContext({ ca: [...rootCertificates, endpoint.caPem] });
        httpsAgent = new HttpsAgent({ keepAlive: true, secureContext });
        options.agent = httpsAgent;
      }
      v = {
        endpoint,
        keyClient: new KeyClient(endpoint.url, this.credential, options),
        crypto: new Map(),
      };
      if (httpsAgent) v.httpsAgent = httpsAgent;
      this.vaults.set(id, v);
    }
    return v;
  }
}

function vaultId(vaultType: VaultType, vault: string): string {
  return `${vaultType}:${vault.toLowerCase()}`;
}
