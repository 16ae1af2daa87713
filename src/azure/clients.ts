/**
 * One KeyClient per HSM/vault, created on first use and kept for the life of the process (its
 * pipeline holds the authentication challenge state and a keep-alive connection pool), plus one
 * CryptographyClient per key (and pinned version) that shares the KeyClient's pipeline.
 */
import { Agent as HttpsAgent } from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { KeyClient } from '@azure/keyvault-keys';
import type { Logger } from 'pino';
import type { AkvConfig, RetryConfig, VaultType } from '../config/types.js';
import { DEFAULT_DEADLINE_MS, DEFAULT_RETRY, agentLimits } from '../config/load.js';
import type { KeyRef } from '../uri/index.js';
import { formatKeyUri } from '../uri/index.js';
import { createCredential, type AkvCredential } from './credentials.js';
import { resolveEndpoint, type VaultEndpoint } from './endpoints.js';
import type { FailureKind, OpContext } from './failures.js';
import type { Deadline } from './abort.js';
import { withRetries, type RetryOptions, type RetryResult } from './retry.js';
import { API_VERSION, ChallengeRecorder, KeyOperations } from './key-operations.js';
import { HsmHttpClient } from './hsm-http.js';
import { emptyErrorBodyPolicy } from './empty-error-body.js';
import { akvVersion } from '../version.js';
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
  /** The SDK client's keep-alive pool. */
  httpsAgent: HttpsAgent;
  /** The hot path's keep-alive connections: at most maxInFlight. */
  http: HsmHttpClient;
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

  keyClient(vaultType: VaultType, vault: string): KeyClient {
    return this.vault(vaultType, vault).keyClient;
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
      const tls = endpoint.caPem
        ? { secureContext: createSecureContext({ ca: [...rootCertificates, endpoint.caPem] }) }
        : {};
      const httpsAgent = new HttpsAgent({ keepAlive: true, ...tls });
      const http = new HsmHttpClient(endpoint.url, {
        ...tls,
        maxConnections: agentLimits(this.config).maxInFlight,
        // A handshake that does not finish frees its slot by the operation's deadline at the
        // latest; a shorter bound would fail handshakes that are only slow (a herd of new
        // connections on a busy machine).
        connectTimeoutMs: this.deadlineMs,
      });
      const recorder = new ChallengeRecorder(this.credential);
      const keyClient = new KeyClient(endpoint.url, recorder, {
        // Retries happen in withRetries (429 without Retry-After included); two layers would multiply.
        retryOptions: { maxRetries: 0 },
        disableChallengeResourceVerification: endpoint.disableChallengeResourceVerification,
        serviceVersion: API_VERSION,
        agent: httpsAgent,
        // A redirect is an answer to report, not to follow (the SDK would drop the token).
        redirectOptions: { maxRetries: 0 },
        additionalPolicies: [{ policy: emptyErrorBodyPolicy, position: 'perRetry' }],
      });
      const operations = new KeyOperations(
        endpoint.url,
        http,
        recorder,
        (ref) =>
          keyClient.getKey(ref.name, {
            ...(ref.version ? { version: ref.version } : {}),
            abortSignal: AbortSignal.timeout(this.deadlineMs),
          }),
        akvVersion(),
      );
      v = { endpoint, keyClient, httpsAgent, http, operations };
      this.vaults.set(id, v);
    }
    return v;
  }
}

function vaultId(vaultType: VaultType, vault: string): string {
  return `${vaultType}:${vault.toLowerCase()}`;
}
