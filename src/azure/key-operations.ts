/**
 * The hot path: sign, decrypt, wrapkey and unwrapkey sent straight to the keys REST API, one
 * HTTPS POST on the HSM's keep-alive pool, with a token from the shared credential. These are the
 * calls made for every TLS handshake; through the SDK (CryptographyClient, its key fetch, the
 * pipeline's policies, tracing spans and deserialisers) they cost the agent more CPU than all the
 * rest of its work (docs/performance.md, "Agent CPU per signature"). Everything else (get, list,
 * create, import, delete) and the credential itself stay with the official SDK.
 *
 * The authentication comes from the SDK too: the first operation on an HSM waits for one SDK
 * `getKey` (shared by every operation that arrives meanwhile: a herd of first signatures costs
 * one GET), whose challenge handling asks the credential for the scope and tenant the HSM named.
 * ChallengeRecorder notes them (again whenever the SDK meets a new challenge); from then on this
 * path asks the (caching) credential for the same. After a 401 the next operation asks the
 * credential again instead of reusing the refused token; a 401 that carries a continuous access
 * evaluation challenge (`error="insufficient_claims"`, `claims=`) gets a token for those claims at
 * once and the operation is sent once more, as the SDK's challenge policy does.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import type { HsmHttpClient } from './hsm-http.js';
import type { KeyRef } from '../uri/index.js';
import { raceAbort, type Deadline } from './abort.js';
import { isRecord } from '../guards.js';

/** How long the hot path reuses a token the credential gave before asking it again. */
const TOKEN_REUSE_MS = 30_000;

/** The REST API version of every call (the SDK's KeyClient is given the same one). */
export const API_VERSION = '2025-07-01';

/** The operations of the hot path, as the REST API spells them. */
export type RestKeyOp = 'sign' | 'decrypt' | 'wrapkey' | 'unwrapkey';

/** What the HSM answered: the output and the key id (with the version) it used. */
export interface KeyOperationResult {
  result: Buffer;
  kid: string | undefined;
}

/** A non-2xx answer of the REST API (classified like the SDK's RestError, failures.ts). */
export class HsmHttpError extends Error {
  override name = 'HsmHttpError';
  constructor(
    readonly statusCode: number,
    /** The service's error code (KeyNotFound, Forbidden, BadParameter ...). */
    readonly code: string | undefined,
    message: string,
    readonly response: { headers: { get(name: string): string | undefined } },
  ) {
    super(message);
  }
}

/**
 * The credential as one HSM's SDK client sees it: passes every call through, and remembers the
 * scope and tenant of the last token the SDK's challenge handling obtained (no claims challenge).
 */
export class ChallengeRecorder implements TokenCredential {
  private recorded: { scopes: string[]; tenantId?: string } | undefined;
  private held: { token: string; until: number } | undefined;

  constructor(private readonly inner: TokenCredential) {}

  get ready(): boolean {
    return this.recorded !== undefined;
  }

  async getToken(
    scopes: string | string[],
    options?: GetTokenOptions,
  ): Promise<AccessToken | null> {
    const token = await this.inner.getToken(scopes, options);
    if (token && !options?.claims) {
      const list = Array.isArray(scopes) ? [...scopes] : [scopes];
      this.recorded =
        options?.tenantId !== undefined
          ? { scopes: list, tenantId: options.tenantId }
          : { scopes: list };
    }
    return token;
  }

  /**
   * The bearer token for what the challenge asked (call only when `ready`). The caching
   * credential's token is kept here for up to TOKEN_REUSE_MS, so that an operation does not pay
   * an asynchronous credential call: the credential refreshes minutes before expiry anyway.
   */
  tokenForHsm(deadline: Deadline): string | Promise<string> {
    const held = this.held;
    if (held && Date.now() < held.until) return held.token;
    const r = this.recorded;
    if (!r) throw new Error('no authentication challenge seen for this HSM yet');
    const abortSignal = deadline.signal;
    return this.inner
      .getToken(
        r.scopes,
        r.tenantId !== undefined ? { tenantId: r.tenantId, abortSignal } : { abortSignal },
      )
      .then((t) => {
        if (!t) throw new Error('the credential returned no token');
        // It goes into a header line as it is.
        if (/[\r\n]/.test(t.token))
          throw new Error('the credential returned a token with a line break');
        const until = Math.min(Date.now() + TOKEN_REUSE_MS, t.expiresOnTimestamp - 60_000);
        this.held = { token: t.token, until };
        return t.token;
      });
  }

  /** The HSM refused the token: the next operation asks the credential again. */
  refused(): void {
    this.held = undefined;
  }

  /**
   * A token that carries the claims a continuous-access-evaluation challenge asked for (as the
   * SDK's challenge policy gets one: same scope and tenant, `enableCae`, the decoded claims). It
   * replaces the held token: the HSM asked for these claims from now on.
   */
  async tokenForClaims(claims: string, deadline: Deadline): Promise<string> {
    const r = this.recorded;
    if (!r) throw new Error('no authentication challenge seen for this HSM yet');
    const t = await this.inner.getToken(r.scopes, {
      ...(r.tenantId !== undefined ? { tenantId: r.tenantId } : {}),
      abortSignal: deadline.signal,
      enableCae: true,
      claims,
    });
    if (!t) throw new Error('the credential returned no token for the claims the HSM asked for');
    if (/[\r\n]/.test(t.token))
      throw new Error('the credential returned a token with a line break');
    this.held = {
      token: t.token,
      until: Math.min(Date.now() + TOKEN_REUSE_MS, t.expiresOnTimestamp - 60_000),
    };
    return t.token;
  }
}

export class KeyOperations {
  /** The SDK call that authenticates this HSM, shared by everyone who waits for it. */
  private authenticating: Promise<void> | undefined;
  /** The path under the pool's origin the API lives at ('' for Azure). */
  private readonly basePath: string;
  private readonly userAgent: string;

  constructor(
    baseUrl: string,
    /** Keep-alive connections to the HSM's origin. */
    private readonly http: Pick<HsmHttpClient, 'post'>,
    private readonly recorder: ChallengeRecorder,
    /** One SDK request to the HSM (a getKey of `ref`) that goes through its challenge. */
    private readonly authenticate: (ref: KeyRef) => Promise<unknown>,
    agentVersion: string,
  ) {
    this.basePath = new URL(baseUrl).pathname.replace(/\/$/, '');
    this.userAgent = `akv-agent/${agentVersion} Node.js/${process.version}`;
  }

  /** Runs one operation; rejects with HsmHttpError, a network error, or an AbortError. */
  async run(
    ref: KeyRef,
    op: RestKeyOp,
    alg: string,
    value: Buffer,
    deadline: Deadline,
  ): Promise<KeyOperationResult> {
    if (!this.recorder.ready) await this.whenAuthenticated(ref, deadline.signal);
    const held = this.recorder.tokenForHsm(deadline);
    const token = typeof held === 'string' ? held : await held;
    try {
      return await this.post(ref, op, alg, value, token, deadline);
    } catch (err) {
      if (!(err instanceof HsmHttpError && err.statusCode === 401)) throw err;
      this.recorder.refused();
      // Continuous access evaluation: a new token for the claims asked for, and one more try.
      const claims = claimsChallenge(err.response.headers.get('www-authenticate'));
      if (claims === undefined) throw err;
      const fresh = await this.recorder.tokenForClaims(claims, deadline);
      try {
        return await this.post(ref, op, alg, value, fresh, deadline);
      } catch (again) {
        if (again instanceof HsmHttpError && again.statusCode === 401) this.recorder.refused();
        throw again;
      }
    }
  }

  /**
   * Waits for the one SDK request that authenticates this HSM. Its own failure (a missing key,
   * say) does not matter once the challenge is done: the operation then fails for itself.
   */
  private async whenAuthenticated(ref: KeyRef, signal: AbortSignal): Promise<void> {
    this.authenticating ??= this.authenticate(ref).then(
      () => undefined,
      (err: unknown) => {
        if (!this.recorder.ready) throw err;
      },
    );
    const shared = this.authenticating;
    void shared
      .finally(() => {
        if (this.authenticating === shared) this.authenticating = undefined;
      })
      .catch(() => undefined);
    await raceAbort(shared, signal);
  }

  private async post(
    ref: KeyRef,
    op: RestKeyOp,
    alg: string,
    value: Buffer,
    token: string,
    deadline: Deadline,
  ): Promise<KeyOperationResult> {
    const body = `{"alg":${JSON.stringify(alg)},"value":"${value.toString('base64url')}"}`;
    // The SDK's URL: an unpinned key has an empty version segment (/keys/k//sign).
    const path = `${this.basePath}/keys/${encodeURIComponent(ref.name)}/${encodeURIComponent(ref.version ?? '')}/${op}?api-version=${API_VERSION}`;
    const headers = [
      'authorization',
      `Bearer ${token}`,
      'content-type',
      'application/json',
      'accept',
      'application/json',
      'user-agent',
      this.userAgent,
      'x-ms-client-request-id',
      // node:crypto is taken here, not imported: the agent loads it after it listens (clients.ts).
      process.getBuiltinModule('node:crypto').randomUUID(),
    ];
    const res = await this.http.post(path, headers, body, deadline);
    return answer(res.status, res.headers, res.body);
  }
}

/**
 * The claims of a CAE challenge (`Bearer ... error="insufficient_claims", claims="<base64>"`),
 * decoded; undefined for any other 401, or claims that are not base64 of a JSON text (the SDK
 * also gives up on those).
 */
export function claimsChallenge(header: string | undefined): string | undefined {
  if (!header || !/\berror="insufficient_claims"/.test(header)) return undefined;
  const encoded = /\bclaims="([A-Za-z0-9+/=_-]+)"/.exec(header)?.[1];
  if (encoded === undefined) return undefined;
  const claims = Buffer.from(encoded, 'base64').toString('utf8');
  try {
    JSON.parse(claims);
  } catch {
    return undefined;
  }
  return claims;
}

function answer(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  bytes: Buffer,
): KeyOperationResult {
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (status < 200 || status >= 300) {
    const error = isRecord(json) && isRecord(json.error) ? json.error : {};
    const code = typeof error.code === 'string' ? error.code : undefined;
    const message =
      typeof error.message === 'string' ? error.message : text.slice(0, 300) || `HTTP ${status}`;
    const get = (name: string): string | undefined => {
      const value = headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(', ') : value;
    };
    throw new HsmHttpError(status, code, message, { headers: { get } });
  }
  const out = isRecord(json) ? json : {};
  if (typeof out.value !== 'string') {
    throw new Error(
      `the HSM answered ${status} without a base64url "value": ${text.slice(0, 200)}`,
    );
  }
  return {
    result: Buffer.from(out.value, 'base64url'),
    kid: typeof out.kid === 'string' ? out.kid : undefined,
  };
}
