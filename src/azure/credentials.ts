/**
 * Which credential akv uses, in this order: a `static` credential from the config (the emulator),
 * `AZURE_CLI_ACCESS_TOKEN` (a token the user fetched, as in the original tool), otherwise
 * @azure/identity's DefaultAzureCredential (service principal, workload identity, managed
 * identity, Azure CLI, ...). All of them are wrapped in one CachingCredential shared by every SDK
 * client, so a slow credential is asked about once an hour.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import type { Logger } from 'pino';
import type { AkvConfig } from '../config/types.js';
import { AkvError, errorMessage } from '../errors.js';
import { isAbortError } from './failures.js';
import { loadOwnModule } from '../installation.js';
import { jwtExpiry } from './jwt.js';
import { CachingCredential, type TokenCacheHooks } from './token-cache.js';

/** Warn when a static token has less than this left. */
export const EXPIRY_WARNING_MS = 10 * 60_000;
/** A token without a readable expiry is handed to the SDK as valid for this long (re-read then). */
const UNKNOWN_EXPIRY_LIFETIME_MS = 60 * 60_000;

export const NO_CREDENTIAL_HINT =
  'run `az login` (or set AZURE_CLI_ACCESS_TOKEN, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET for a service principal)';

export type CredentialSource =
  'static-config' | 'AZURE_CLI_ACCESS_TOKEN' | 'DefaultAzureCredential';

export interface AkvCredential extends TokenCredential {
  readonly source: CredentialSource;
  clear(): void;
}

/** A fixed token; `origin` names where it came from for messages. */
export class StaticTokenCredential implements TokenCredential {
  private lastWarning = 0;
  private readonly expiry: Date | undefined;

  constructor(
    private readonly token: string,
    private readonly origin: string,
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.expiry = jwtExpiry(token);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so that a throw reaches the caller as a rejected promise, as the interface says
  async getToken(): Promise<AccessToken> {
    const now = this.now();
    if (this.expiry) {
      const left = this.expiry.getTime() - now;
      if (left <= 0) {
        throw new AkvError(
          'UNAUTHORIZED',
          `the access token in ${this.origin} expired at ${this.expiry.toISOString()}`,
          this.origin === 'AZURE_CLI_ACCESS_TOKEN'
            ? 'get a new one: export AZURE_CLI_ACCESS_TOKEN=$(az account get-access-token --resource https://managedhsm.azure.net --query accessToken -o tsv), or unset it to let akv use DefaultAzureCredential'
            : 'replace the token',
        );
      }
      if (left < EXPIRY_WARNING_MS && now - this.lastWarning > 60_000) {
        this.lastWarning = now;
        this.logger?.warn(
          { expiresAt: this.expiry.toISOString(), minutesLeft: Math.floor(left / 60_000) },
          `the access token in ${this.origin} expires in ${Math.max(1, Math.floor(left / 60_000))} min: refresh it soon`,
        );
      }
      return { token: this.token, expiresOnTimestamp: this.expiry.getTime(), tokenType: 'Bearer' };
    }
    return {
      token: this.token,
      expiresOnTimestamp: now + UNKNOWN_EXPIRY_LIFETIME_MS,
      tokenType: 'Bearer',
    };
  }
}

/**
 * Defers loading @azure/identity (heavy) until the first token is needed, and turns its
 * "no credential" errors into one actionable AkvError.
 */
class LazyDefaultCredential implements TokenCredential {
  private inner?: Promise<TokenCredential>;

  async getToken(
    scopes: string | string[],
    options?: GetTokenOptions,
  ): Promise<AccessToken | null> {
    this.inner ??= loadOwnModule('@azure/identity', () => import('@azure/identity')).then(
      (m) => new m.DefaultAzureCredential(),
      (err: unknown) => {
        this.inner = undefined;
        throw err;
      },
    );
    const credential = await this.inner;
    try {
      return await credential.getToken(scopes, options);
    } catch (err) {
      if (isAbortError(err)) throw err;
      throw new AkvError(
        'UNAUTHORIZED',
        `no Azure credential could get a token for ${Array.isArray(scopes) ? scopes.join(' ') : scopes}: ${firstLine(errorMessage(err))}`,
        NO_CREDENTIAL_HINT,
      );
    }
  }
}

function firstLine(s: string): string {
  const line = s.split('\n').find((l) => l.trim() !== '') ?? s;
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

export function createCredential(
  config: AkvConfig,
  logger?: Logger,
  hooks: TokenCacheHooks = {},
  env: Record<string, string | undefined> = process.env,
): AkvCredential {
  let inner: TokenCredential;
  let source: CredentialSource;
  if (config.credential.type === 'static') {
    inner = new StaticTokenCredential(
      config.credential.token ?? 'dev',
      `the config's static credential`,
      logger,
    );
    source = 'static-config';
  } else if (env.AZURE_CLI_ACCESS_TOKEN) {
    inner = new StaticTokenCredential(
      env.AZURE_CLI_ACCESS_TOKEN.trim(),
      'AZURE_CLI_ACCESS_TOKEN',
      logger,
    );
    source = 'AZURE_CLI_ACCESS_TOKEN';
  } else {
    inner = new LazyDefaultCredential();
    source = 'DefaultAzureCredential';
  }
  const cache = new CachingCredential(inner, hooks);
  return {
    source,
    getToken: (scopes, options) => cache.getToken(scopes, options),
    clear: () => cache.clear(),
  };
}
