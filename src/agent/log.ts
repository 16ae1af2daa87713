/**
 * The agent's structured logger (pino, one JSON object per line) and its audit record: one line
 * per private-key operation with the key URI, operation, algorithm, result, latency, key version
 * and the client's pid. Digests, plaintexts, ciphertexts and tokens are never passed to it; the
 * redaction list is a second line of defence against a careless future log call.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AkvConfig } from '../config/types.js';
import { AkvError } from '../errors.js';

export type { Logger } from 'pino';

const REDACT_PATHS = [
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'input',
  'output',
  'digest',
  'plaintext',
  'ciphertext',
];

/**
 * Creates the logger: to `cfg.file` when set (appended, directory created), else to stderr
 * (stdout carries the agent's ready line). Writes are synchronous so that nothing is lost on exit
 * and a test or an operator reading the file sees every completed operation.
 */
export function createLogger(cfg: AkvConfig['log']): Logger {
  let destination: ReturnType<typeof pino.destination>;
  try {
    if (cfg.file) mkdirSync(dirname(cfg.file), { recursive: true });
    destination = pino.destination({ dest: cfg.file ?? 2, sync: true, append: true });
  } catch (err) {
    throw new AkvError(
      'BAD_REQUEST',
      `cannot open the log file ${cfg.file}: ${(err as Error).message}`,
      'fix log.file in the config (or AKV_LOG_FILE), or make its directory writable for the agent user',
    );
  }
  return pino(
    {
      level: cfg.level,
      base: { pid: process.pid, name: 'akv-agent' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export interface AuditRecord {
  /** The key URI in canonical form (managedhsm:<hsm>:<key>[?version=<v>]). */
  uri: string;
  op: 'sign' | 'decrypt' | 'wrap' | 'unwrap';
  alg: string;
  /** OK or the protocol status name of the failure. */
  status: string;
  latencyMs: number;
  clientPid?: number;
  /** The key version the HSM used (empty when the operation failed before it was known). */
  keyVersion?: string;
  retries: number;
  /** The failure message (no input data is ever part of it). */
  error?: string;
}

/** Writes the one audit line of a private-key operation (info when it worked, warn otherwise). */
export function logAudit(logger: Logger, r: AuditRecord): void {
  const line = {
    audit: true,
    uri: r.uri,
    op: r.op,
    alg: r.alg,
    result: r.status === 'OK' ? 'ok' : 'error',
    status: r.status,
    latency_ms: Math.round(r.latencyMs * 100) / 100,
    client_pid: r.clientPid,
    key_version: r.keyVersion || undefined,
    retries: r.retries,
    error: r.error,
  };
  if (r.status === 'OK') logger.info(line, 'key operation');
  else logger.warn(line, 'key operation failed');
}

/** Closes the logger's file (after SIGHUP replaced it, or at exit); stderr is left open. */
export function closeLogger(logger: Logger): void {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    { fd?: number; end?: () => void; flushSync?: () => void } | undefined;
  if (!stream || stream.fd === 2 || stream.fd === 1) return;
  try {
    stream.end?.();
  } catch {
    /* already closed */
  }
}
