/**
 * Turns whatever the Azure SDK throws (RestError with an HTTP status, a network error code, an
 * AbortError, a plain Error from its local checks) into an AkvError whose code is the agent
 * protocol's status and whose hint says what to do. Also decides which failures are worth a retry.
 */
import { AkvError } from '../errors.js';

/** What the failing call was, for messages. */
export interface OpContext {
  /** Operation as a person reads it: "sign", "get key", "create key", "list keys". */
  op: string;
  /** The key or vault URI in canonical form, e.g. managedhsm:myhsm:tls-key. */
  target: string;
  /** HSM/vault name. */
  vault: string;
  /** The base URL that was called. */
  url: string;
  /** The key operation the call needs (sign, decrypt, wrapKey, unwrapKey), for FORBIDDEN hints. */
  keyOp?: string;
}

export type FailureKind = 'throttled' | 'server-error' | 'connection-reset' | 'fatal';

export interface Classified {
  kind: FailureKind;
  /** HTTP status when there was a response. */
  status?: number;
  /** The service's own error code (KeyNotFound, Forbidden, BadParameter ...). */
  serviceCode?: string;
  /** Delay the service asked for (Retry-After, retry-after-ms, x-ms-retry-after-ms). */
  retryAfterMs?: number;
  /** Network error code (ECONNRESET ...). */
  networkCode?: string;
  message: string;
}

interface RestErrorLike {
  name: string;
  message: string;
  statusCode?: number;
  code?: string;
  response?: { headers: { get(name: string): string | undefined } };
  details?: unknown;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const RESET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'UND_ERR_SOCKET',
]);
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as Error).name === 'AbortError';
}

function asRestError(err: unknown): RestErrorLike | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as RestErrorLike;
  return e.name === 'RestError' ? e : undefined;
}

/** Parses the Retry-After family of headers into milliseconds. */
export function retryAfterMs(
  headers: { get(name: string): string | undefined } | undefined,
  now = Date.now(),
): number | undefined {
  if (!headers) return undefined;
  for (const [name, factor] of [
    ['retry-after-ms', 1],
    ['x-ms-retry-after-ms', 1],
    ['retry-after', 1000],
  ] as const) {
    const raw = headers.get(name);
    if (raw === undefined || raw.trim() === '') continue;
    const n = Number(raw);
    if (Number.isFinite(n) && n >= 0) return n * factor;
    if (name === 'retry-after') {
      const at = Date.parse(raw);
      if (!Number.isNaN(at)) return Math.max(0, at - now);
    }
  }
  return undefined;
}

export function classify(err: unknown): Classified {
  const rest = asRestError(err);
  const message = err instanceof Error ? err.message : String(err);
  if (rest && rest.statusCode !== undefined) {
    const status = rest.statusCode;
    const out: Classified = {
      kind: status === 429 ? 'throttled' : RETRYABLE_STATUS.has(status) ? 'server-error' : 'fatal',
      status,
      message,
    };
    if (rest.code !== undefined) out.serviceCode = rest.code;
    const after = retryAfterMs(rest.response?.headers);
    if (after !== undefined) out.retryAfterMs = after;
    return out;
  }
  const code = (rest?.code ?? (err as { code?: unknown })?.code) as string | undefined;
  if (code !== undefined && (RESET_CODES.has(code) || /socket hang up/i.test(message))) {
    return { kind: 'connection-reset', networkCode: code, message };
  }
  const out: Classified = { kind: 'fatal', message };
  if (code !== undefined) out.networkCode = code;
  return out;
}

/**
 * Whether a failure may be retried. Non-idempotent calls (create, import, delete) are retried only
 * when the service says it did not do the work (429, 503).
 */
export function isRetryable(c: Classified, idempotent: boolean): boolean {
  if (c.kind === 'fatal') return false;
  if (idempotent) return true;
  return c.status === 429 || c.status === 503;
}

/** 403 answers about the key's state rather than the caller's rights. */
const KEY_UNUSABLE =
  /disabled key|key is disabled|expired key|key has expired|activation date|not yet valid/i;
const KEY_OPS_REFUSAL =
  /not (allowed|permitted|supported) (on|by|for)|key_ops|keyops|operation .* is not (allowed|permitted|supported)/i;

/** The final error for a failure, after `retries` retries. */
export function toAkvError(
  err: unknown,
  ctx: OpContext,
  retries: number,
  deadlineMs?: number,
): AkvError {
  if (err instanceof AkvError) {
    return retries > 0 && err.retries === 0
      ? new AkvError(err.code, err.message, err.hint, retries)
      : err;
  }
  if (isAbortError(err)) {
    return new AkvError(
      'TIMEOUT',
      `${ctx.op} with ${ctx.target} did not finish within ${deadlineMs ?? '?'} ms${retries > 0 ? ` (retried ${retries} times)` : ''}: the HSM at ${ctx.url} did not answer in time`,
      'check that the HSM is reachable and healthy; raise deadlineMs in the config if it is merely slow',
      retries,
    );
  }
  const c = classify(err);
  const said = c.message ? `: ${c.message}` : '';
  const retried = retries > 0 ? `, retried ${retries} times` : '';
  switch (c.status) {
    case 400:
      return new AkvError(
        'BAD_PARAMETER',
        `the HSM refused ${ctx.op} with ${ctx.target} (400 ${c.serviceCode ?? 'BadParameter'})${said}`,
        'check the algorithm and the input length for this key type',
        retries,
      );
    case 401:
      return new AkvError(
        'UNAUTHORIZED',
        `the HSM ${ctx.vault} at ${ctx.url} rejected the access token for ${ctx.op} (401)${said}`,
        'the token is for another tenant or resource, or has expired: run `az login` again (or refresh AZURE_CLI_ACCESS_TOKEN)',
        retries,
      );
    case 403:
      if (KEY_UNUSABLE.test(c.message)) {
        return new AkvError(
          'KEY_DISABLED',
          `key ${ctx.target} cannot be used now (403 ${c.serviceCode ?? 'Forbidden'})${said}`,
          'enable the key (`az keyvault key set-attributes --enabled true ...`), fix its activation/expiry dates, or use another version',
          retries,
        );
      }
      if (KEY_OPS_REFUSAL.test(c.message) && ctx.keyOp) return keyOpRefused(ctx, retries);
      return new AkvError(
        'FORBIDDEN',
        `the HSM ${ctx.vault} refused ${ctx.op} with ${ctx.target} (403 ${c.serviceCode ?? 'Forbidden'})${said}`,
        'give the identity akv runs as a role on the key, e.g. `az keyvault role assignment create --hsm-name <hsm> --role "Managed HSM Crypto User" --assignee <id> --scope /keys`',
        retries,
      );
    case 404:
      return new AkvError(
        'KEY_NOT_FOUND',
        `${ctx.target} does not exist (404 ${c.serviceCode ?? 'NotFound'})`,
        `check the key name and version; list the keys with \`bin/akv key list --hsm-name ${ctx.vault}\``,
        retries,
      );
    case 409:
      return new AkvError(
        'BAD_PARAMETER',
        `the HSM refused ${ctx.op} with ${ctx.target} (409 Conflict)${said}`,
        'a key of that name may be deleted but not purged; wait or pick another name',
        retries,
      );
    case 429:
      return new AkvError(
        'THROTTLED',
        `HSM ${ctx.vault} throttled ${ctx.op} with ${ctx.target} (429${retried})`,
        'the HSM is at its capacity: lower the request rate, or raise retry.maxRetries / deadlineMs in the config',
        retries,
      );
    case undefined:
      break;
    default:
      if (c.status >= 500) {
        return new AkvError(
          'UNAVAILABLE',
          `HSM ${ctx.vault} failed ${ctx.op} with ${ctx.target} (${c.status}${retried})${said}`,
          'the service is having trouble; try again later or check Azure status',
          retries,
        );
      }
      return new AkvError(
        'UNAVAILABLE',
        `HSM ${ctx.vault} answered ${ctx.op} with HTTP ${c.status}${said}`,
        'unexpected answer; check the endpoint in the config',
        retries,
      );
  }
  if (/is not supported on key|not supported by key/i.test(c.message) && ctx.keyOp)
    return keyOpRefused(ctx, retries);
  if (c.networkCode !== undefined) return networkError(c, ctx, retries);
  if (/Unable to support operation|not supported/i.test(c.message)) {
    return new AkvError(
      'UNSUPPORTED',
      `${ctx.op} with ${ctx.target}: ${c.message}`,
      'use an algorithm that fits the key type',
      retries,
    );
  }
  if (/can't be used before|expired at/i.test(c.message)) {
    return new AkvError(
      'KEY_DISABLED',
      `${ctx.target}: ${c.message}`,
      "update the key's activation (nbf) / expiry (exp) dates or use another version",
      retries,
    );
  }
  return new AkvError(
    'INTERNAL',
    `${ctx.op} with ${ctx.target} failed unexpectedly: ${c.message}`,
    'report this with the agent log',
    retries,
  );
}

function keyOpRefused(ctx: OpContext, retries: number): AkvError {
  return new AkvError(
    'FORBIDDEN',
    `key ${ctx.target} does not allow ${ctx.keyOp}`,
    `create or update the key with that operation allowed (e.g. \`bin/akv key create ... --ops ${ctx.keyOp} ...\`)`,
    retries,
  );
}

function networkError(c: Classified, ctx: OpContext, retries: number): AkvError {
  const code = c.networkCode ?? '';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new AkvError(
      'UNAVAILABLE',
      `cannot resolve the host of HSM ${ctx.vault} (${ctx.url}): ${code}`,
      `check the HSM name, or set vaults.${ctx.vault}.endpoint in the config (emulator, sovereign cloud)`,
      retries,
    );
  }
  if (code === 'ECONNREFUSED') {
    return new AkvError(
      'UNAVAILABLE',
      `nothing listens at ${ctx.url} for HSM ${ctx.vault} (ECONNREFUSED)`,
      `start the emulator (\`bin/akv dev up\`) or fix vaults.${ctx.vault}.endpoint in the config`,
      retries,
    );
  }
  if (TLS_CODES.has(code)) {
    return new AkvError(
      'UNAVAILABLE',
      `the TLS certificate of ${ctx.url} is not trusted (${code})`,
      `set vaults.${ctx.vault}.caFile in the config to the CA that signed it (the emulator's <state-dir>/ca.pem)`,
      retries,
    );
  }
  return new AkvError(
    'UNAVAILABLE',
    `the connection to HSM ${ctx.vault} at ${ctx.url} failed during ${ctx.op} (${code}${retries > 0 ? `, retried ${retries} times` : ''}): ${c.message}`,
    'check the network path to the HSM',
    retries,
  );
}
