/**
 * Turns whatever the Azure SDK throws (RestError with an HTTP status, a network error code, an
 * AbortError, a plain Error from its local checks) into an AkvError whose code is the agent
 * protocol's status and whose hint says what to do. Also decides which failures are worth a retry.
 */
import { AkvError, type ErrorCode } from '../errors.js';
import { akvCommandName } from '../command-name.js';
import { isRecord } from '../guards.js';

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
  /** The inner error's code, when the answer has one (`error.innererror.code`). */
  innerCode?: string;
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
  return isRecord(err) && err.name === 'AbortError';
}

/** The SDK's RestError, or the hot path's HsmHttpError (key-operations.ts), which has its shape. */
function asRestError(err: unknown): RestErrorLike | undefined {
  return isRestErrorLike(err) ? err : undefined;
}

/** The name is the promise of the shape: both classes are made with these fields (or none). */
function isRestErrorLike(err: unknown): err is RestErrorLike {
  return isRecord(err) && (err.name === 'RestError' || err.name === 'HsmHttpError');
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

/** `error.innererror.code` of an error body (`innerError` in the SDK's deserialized form). */
function innerErrorCode(details: unknown): string | undefined {
  const error = isRecord(details) ? details.error : undefined;
  if (!isRecord(error)) return undefined;
  const inner = error.innererror ?? error.innerError;
  const code = isRecord(inner) ? inner.code : undefined;
  return typeof code === 'string' && code !== '' ? code : undefined;
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
    const inner = innerErrorCode(rest.details);
    if (inner !== undefined) out.innerCode = inner;
    const after = retryAfterMs(rest.response?.headers);
    if (after !== undefined) out.retryAfterMs = after;
    return out;
  }
  const rawCode = rest?.code ?? (isRecord(err) ? err.code : undefined);
  const code = typeof rawCode === 'string' ? rawCode : undefined;
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

/**
 * A refusal by the SDK's own local check of the key's key_ops (no HTTP status): the SDK's words,
 * from the key bundle it holds, so they are certain.
 */
const KEY_OPS_REFUSAL_LOCAL = /is not supported on key|not supported by key/i;

/** One failure, as the message and hint templates of the tables below read it. */
interface Failure {
  c: Classified;
  ctx: OpContext;
  retries: number;
  deadlineMs: number | undefined;
  /** `: <the service's message>`, or nothing. */
  said: string;
  /** `, retried N times`, or nothing. */
  retried: string;
}

/** What a failure becomes: the protocol status, what failed, and what to do. */
interface Outcome {
  code: ErrorCode;
  message(f: Failure): string;
  hint(f: Failure): string;
}

/** An outcome that applies when `when` holds. */
interface Rule extends Outcome {
  when(f: Failure): boolean;
}

/** Rules tried in order, then the outcome for everything else. */
interface Choice {
  rules: readonly Rule[];
  otherwise: Outcome;
}

const always = (otherwise: Outcome): Choice => ({ rules: [], otherwise });

const keyOpRefused: Outcome = {
  code: 'FORBIDDEN',
  message: ({ ctx }) => `key ${ctx.target} does not allow ${ctx.keyOp}`,
  hint: ({ ctx }) =>
    `create or update the key with that operation allowed (e.g. \`${akvCommandName()} key create ... --ops ${ctx.keyOp} ...\`)`,
};

/** Answers with an HTTP status, by status. */
const BY_STATUS: Readonly<Record<number, Choice>> = {
  400: always({
    code: 'BAD_PARAMETER',
    message: ({ c, ctx, said }) =>
      `the HSM refused ${ctx.op} with ${ctx.target} (400 ${c.serviceCode ?? 'BadParameter'})${said}`,
    hint: () => 'check the algorithm and the input length for this key type',
  }),
  401: always({
    code: 'UNAUTHORIZED',
    message: ({ ctx, said }) =>
      `the HSM ${ctx.vault} at ${ctx.url} rejected the access token for ${ctx.op} (401)${said}`,
    hint: () =>
      'the token is for another tenant or resource, or has expired: run `az login` again (or refresh AZURE_CLI_ACCESS_TOKEN)',
  }),
  // A 403 is either the caller's rights (RBAC, access policy) or the key's state (disabled,
  // outside nbf/exp, the operation not in key_ops). No public recording of a real Managed HSM
  // shows a 403 (test/conformance/README.md), so nothing confirms which code, inner code or words
  // tell the two apart: one answer names both causes and what to check for each.
  403: always({
    code: 'FORBIDDEN',
    message: ({ c, ctx, said }) =>
      `the HSM ${ctx.vault} refused ${ctx.op} with ${ctx.target} (403 ${c.serviceCode ?? 'Forbidden'}${c.innerCode ? `/${c.innerCode}` : ''})${said}`,
    hint: ({ ctx }) => {
      const [kind, , key] = ctx.target.split(/[:?]/);
      const vaultKind = kind === 'keyvault';
      const where = `${vaultKind ? '--vault-name' : '--hsm-name'} ${ctx.vault}`;
      const name = key || 'KEY';
      const what = ctx.keyOp ?? 'the operation';
      const rights = vaultKind
        ? `the identity akv runs as needs a role (or access policy) that allows ${what} on the key (\`az role assignment list --assignee <id> --all\`)`
        : `the identity akv runs as needs a role that allows ${what} on the key, e.g. "Managed HSM Crypto User" (\`az keyvault role assignment list --hsm-name ${ctx.vault} --scope /keys/${name}\`)`;
      return `either ${rights}, or the key cannot do it now: disabled, outside its not-before/expiry dates, or ${what} not in its key_ops (\`${akvCommandName()} key show ${where} --name ${name}\`; fix with \`${akvCommandName()} key set-attributes\`)`;
    },
  }),
  404: always({
    code: 'KEY_NOT_FOUND',
    message: ({ c, ctx }) => `${ctx.target} does not exist (404 ${c.serviceCode ?? 'NotFound'})`,
    hint: ({ ctx }) =>
      `check the key name and version; list the keys with \`${akvCommandName()} key list --hsm-name ${ctx.vault}\``,
  }),
  409: always({
    code: 'BAD_PARAMETER',
    message: ({ ctx, said }) =>
      `the HSM refused ${ctx.op} with ${ctx.target} (409 Conflict)${said}`,
    hint: ({ ctx }) => {
      const [kind, , key] = ctx.target.split(/[:?]/);
      const where = `${kind === 'keyvault' ? '--vault-name' : '--hsm-name'} ${ctx.vault}`;
      const run = `${akvCommandName()} key`;
      return `a deleted key keeps its name until purged: \`${run} recover ${where} --name ${key || 'KEY'}\` brings it back, \`${run} purge ${where} --name ${key || 'KEY'}\` frees the name (\`${run} list-deleted ${where}\` lists them)`;
    },
  }),
  429: always({
    code: 'THROTTLED',
    message: ({ ctx, retried }) =>
      `HSM ${ctx.vault} throttled ${ctx.op} with ${ctx.target} (429${retried})`,
    hint: () =>
      'the HSM is at its capacity: lower the request rate, or raise retry.maxRetries / deadlineMs in the config',
  }),
};

/** Any other status: the service's trouble (5xx), or an answer akv does not expect. */
const OTHER_STATUS: Choice = {
  rules: [
    {
      when: ({ c }) => (c.status ?? 0) >= 500,
      code: 'UNAVAILABLE',
      message: ({ c, ctx, said, retried }) =>
        `HSM ${ctx.vault} failed ${ctx.op} with ${ctx.target} (${c.status}${retried})${said}`,
      hint: () => 'the service is having trouble; try again later or check Azure status',
    },
  ],
  otherwise: {
    code: 'UNAVAILABLE',
    message: ({ c, ctx, said }) =>
      `HSM ${ctx.vault} answered ${ctx.op} with HTTP ${c.status}${said}`,
    hint: () => 'unexpected answer; check the endpoint in the config',
  },
};

const untrustedCertificate: Outcome = {
  code: 'UNAVAILABLE',
  message: ({ c, ctx }) => `the TLS certificate of ${ctx.url} is not trusted (${c.networkCode})`,
  hint: ({ ctx }) =>
    `set vaults.${ctx.vault}.caFile in the config to the CA that signed it (the emulator's <state-dir>/ca.pem)`,
};

const unresolvable: Outcome = {
  code: 'UNAVAILABLE',
  message: ({ c, ctx }) =>
    `cannot resolve the host of HSM ${ctx.vault} (${ctx.url}): ${c.networkCode}`,
  hint: ({ ctx }) =>
    `check the HSM name, or set vaults.${ctx.vault}.endpoint in the config (emulator, sovereign cloud)`,
};

/** Failures before any answer, by network error code. */
const BY_NETWORK_CODE: Readonly<Record<string, Outcome>> = {
  ENOTFOUND: unresolvable,
  EAI_AGAIN: unresolvable,
  ECONNREFUSED: {
    code: 'UNAVAILABLE',
    message: ({ ctx }) => `nothing listens at ${ctx.url} for HSM ${ctx.vault} (ECONNREFUSED)`,
    hint: ({ ctx }) =>
      `start the emulator (\`${akvCommandName()} dev up\`) or fix vaults.${ctx.vault}.endpoint in the config`,
  },
  ...Object.fromEntries([...TLS_CODES].map((code) => [code, untrustedCertificate])),
};

const otherNetworkFailure: Outcome = {
  code: 'UNAVAILABLE',
  message: ({ c, ctx, retried }) =>
    `the connection to HSM ${ctx.vault} at ${ctx.url} failed during ${ctx.op} (${c.networkCode}${retried}): ${c.message}`,
  hint: () => 'check the network path to the HSM',
};

/** A network failure: looked up by its code (all of them mean the HSM is unavailable). */
const networkFailure: Outcome = {
  code: 'UNAVAILABLE',
  message: (f) => (BY_NETWORK_CODE[f.c.networkCode ?? ''] ?? otherNetworkFailure).message(f),
  hint: (f) => (BY_NETWORK_CODE[f.c.networkCode ?? ''] ?? otherNetworkFailure).hint(f),
};

/** Failures without an HTTP status, in order: the first rule that holds wins. */
const WITHOUT_STATUS: Choice = {
  rules: [
    { when: ({ c, ctx }) => KEY_OPS_REFUSAL_LOCAL.test(c.message) && !!ctx.keyOp, ...keyOpRefused },
    { when: ({ c }) => c.networkCode !== undefined, ...networkFailure },
    {
      when: ({ c }) => /Unable to support operation|not supported/i.test(c.message),
      code: 'UNSUPPORTED',
      message: ({ c, ctx }) => `${ctx.op} with ${ctx.target}: ${c.message}`,
      hint: () => 'use an algorithm that fits the key type',
    },
    {
      when: ({ c }) => /can't be used before|expired at/i.test(c.message),
      code: 'KEY_DISABLED',
      message: ({ c, ctx }) => `${ctx.target}: ${c.message}`,
      hint: () => "update the key's activation (nbf) / expiry (exp) dates or use another version",
    },
  ],
  otherwise: {
    code: 'INTERNAL',
    message: ({ c, ctx }) => `${ctx.op} with ${ctx.target} failed unexpectedly: ${c.message}`,
    hint: () => 'report this with the agent log',
  },
};

/** The call ran out of time (its AbortSignal fired). */
const timedOut: Outcome = {
  code: 'TIMEOUT',
  message: ({ ctx, deadlineMs, retries }) =>
    `${ctx.op} with ${ctx.target} did not finish within ${deadlineMs ?? '?'} ms${retries > 0 ? ` (retried ${retries} times)` : ''}: the HSM at ${ctx.url} did not answer in time`,
  hint: () =>
    'check that the HSM is reachable and healthy; raise deadlineMs in the config if it is merely slow',
};

function choose({ rules, otherwise }: Choice, f: Failure): Outcome {
  return rules.find((rule) => rule.when(f)) ?? otherwise;
}

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
  const c = classify(err);
  const f: Failure = {
    c,
    ctx,
    retries,
    deadlineMs,
    said: c.message ? `: ${c.message}` : '',
    retried: retries > 0 ? `, retried ${retries} times` : '',
  };
  const outcome: Outcome = isAbortError(err)
    ? timedOut
    : c.status === undefined
      ? choose(WITHOUT_STATUS, f)
      : choose(BY_STATUS[c.status] ?? OTHER_STATUS, f);
  return new AkvError(outcome.code, outcome.message(f), outcome.hint(f), retries);
}
