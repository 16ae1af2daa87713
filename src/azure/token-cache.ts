/**
 * A credential wrapper that asks the underlying credential at most once per scope until shortly
 * before the token expires, and lets concurrent callers share one pending request. Every SDK
 * client has its own token cycler; without this layer each of them would ask on its own, and the
 * Azure CLI credential takes seconds per call.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { raceAbort } from './abort.js';

/** Refresh this long before expiry (Azure tokens live 60-90 minutes). */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;

interface Entry {
  token?: AccessToken;
  pending?: Promise<AccessToken>;
}

export interface TokenCacheHooks {
  /** Called each time the underlying credential was actually asked and answered. */
  onRefresh?(): void;
}

export class CachingCredential implements TokenCredential {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly inner: TokenCredential,
    private readonly hooks: TokenCacheHooks = {},
    private readonly now: () => number = Date.now,
  ) {}

  async getToken(
    scopes: string | string[],
    options: GetTokenOptions = {},
  ): Promise<AccessToken | null> {
    const scopeList = Array.isArray(scopes) ? scopes : [scopes];
    // A claims challenge (continuous access evaluation) demands a fresh token: never cached.
    if (options.claims) return this.inner.getToken(scopeList, options);

    const key = `${scopeList.join(' ')}|${options.tenantId ?? ''}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = {};
      this.entries.set(key, entry);
    }
    const token = entry.token;
    if (token && this.isFresh(token)) return token;

    const pending = entry.pending ?? this.startRefresh(entry, scopeList, options);
    // A still-valid token stays usable while the early refresh is under way.
    if (token && token.expiresOnTimestamp > this.now() + 30_000) {
      pending.catch(() => undefined);
      return token;
    }
    return raceAbort(
      pending,
      options.abortSignal,
      'the operation was aborted while waiting for a token',
    );
  }

  private startRefresh(
    entry: Entry,
    scopes: string[],
    options: GetTokenOptions,
  ): Promise<AccessToken> {
    // Not tied to one caller's abort signal: other callers may be waiting for the same answer.
    const shared: GetTokenOptions = { ...options };
    delete shared.abortSignal;
    const pending = this.fetch(scopes, shared).then(
      (fresh) => {
        entry.token = fresh;
        entry.pending = undefined;
        return fresh;
      },
      (err: unknown) => {
        entry.pending = undefined;
        throw err;
      },
    );
    entry.pending = pending;
    return pending;
  }

  /** Forget every cached token (after a 401 that says the token was refused, or SIGHUP). */
  clear(): void {
    this.entries.clear();
  }

  private isFresh(token: AccessToken): boolean {
    const refreshAt =
      token.refreshAfterTimestamp ?? token.expiresOnTimestamp - REFRESH_BEFORE_EXPIRY_MS;
    return this.now() < Math.min(refreshAt, token.expiresOnTimestamp - REFRESH_BEFORE_EXPIRY_MS);
  }

  private async fetch(scopes: string[], options: GetTokenOptions): Promise<AccessToken> {
    const token = await this.inner.getToken(scopes, options);
    if (!token) throw new Error(`the credential returned no token for ${scopes.join(' ')}`);
    this.hooks.onRefresh?.();
    return token;
  }
}
