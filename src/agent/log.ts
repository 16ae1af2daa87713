/**
 * The agent's structured logger (pino, one JSON object per line) and its audit record: one line
 * per private-key operation with the key URI, operation, algorithm, result, latency, key version
 * and the client's pid, uid and gid as the kernel gives them (peer-credentials.ts). Digests, plaintexts, ciphertexts and tokens are never passed to
 * it; the redaction list is a second line of defence against a careless future log call. A log
 * file the agent creates is 0600 (its directory 0700): the audit trail is the agent user's.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AkvConfig } from '../config/types.js';
import { AkvError, errorMessage } from '../errors.js';
import type { PeerCredentials } from './peer-credentials.js';

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
 * Creates the logger: to `cfg.file` when set (appended; the file created 0600 and a missing
 * directory 0700), else to stderr (stdout carries the agent's ready line). Writes are synchronous
 * so that nothing is lost on exit and a test or an operator reading the file sees every completed
 * operation. An existing file keeps its mode (an operator may share it with a log group); one
 * that every user may read is reported once, as a warning.
 */
export function createLogger(cfg: AkvConfig['log']): Logger {
  let destination: ReturnType<typeof pino.destination>;
  try {
    if (cfg.file) mkdirSync(dirname(cfg.file), { recursive: true, mode: 0o700 });
    destination = pino.destination({ dest: cfg.file ?? 2, sync: true, append: true, mode: 0o600 });
  } catch (err) {
    throw new AkvError(
      'BAD_REQUEST',
      `cannot open the log file ${cfg.file}: ${errorMessage(err)}`,
      'fix log.file in the config (or AKV_LOG_FILE), or make its directory writable for the agent user',
    );
  }
  const logger = pino(
    {
      level: cfg.level,
      base: { pid: process.pid, name: 'akv-agent' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  ownLoggers.add(logger);
  if (cfg.file) warnIfOthersCanRead(logger, cfg.file);
  return logger;
}

function warnIfOthersCanRead(logger: Logger, file: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o006) === 0) return;
  logger.warn(
    { file, mode: `0${mode.toString(8)}` },
    `the log file can be read by every user on this host (mode 0${mode.toString(8)}): it holds the audit trail; run chmod o-rwx on it`,
  );
}

export interface AuditRecord {
  /** The key URI in canonical form (managedhsm:<hsm>:<key>[?version=<v>]). */
  uri: string;
  /** A private-key operation, or (refused by the access policy only) another one. */
  op: 'sign' | 'decrypt' | 'wrap' | 'unwrap' | 'describe' | 'list' | 'forget' | 'diagnose';
  alg: string;
  /** OK or the protocol status name of the failure. */
  status: string;
  latencyMs: number;
  /** The pid the client reports (CLIENT_PID): logged only when the kernel's is not known. */
  clientPid?: number;
  /** The peer as the kernel gave it (SO_PEERCRED): its pid, uid and gid are what the line carries. */
  peer?: PeerCredentials;
  /** The access-policy rule that allowed the operation (when a policy is set). */
  rule?: string;
  /** The key version the HSM used (empty when the operation failed before it was known). */
  keyVersion?: string;
  retries: number;
  /** The failure message (no input data is ever part of it). */
  error?: string;
}

/** The audit line's own fields, in the order they are written. */
function auditFields(r: AuditRecord): Record<string, unknown> {
  return {
    audit: true,
    uri: r.uri,
    op: r.op,
    alg: r.alg,
    result: r.status === 'OK' ? 'ok' : 'error',
    status: r.status,
    latency_ms: Math.round(r.latencyMs * 100) / 100,
    // The kernel's pid, uid and gid (SO_PEERCRED) when the agent could read them; otherwise
    // only the pid the client reports, marked as such.
    client_pid: r.peer ? r.peer.pid : r.clientPid,
    pid_source: r.peer ? 'kernel' : r.clientPid !== undefined ? 'client' : undefined,
    uid: r.peer?.uid,
    gid: r.peer?.gid,
    rule: r.rule,
    key_version: r.keyVersion || undefined,
    retries: r.retries,
    error: r.error,
  };
}

/** Loggers made by createLogger: their line format is known, so audit lines can be written directly. */
const ownLoggers = new WeakSet<Logger>();

/**
 * Writes the one audit line of a private-key operation (info when it worked, warn otherwise).
 * It runs once per signature, so for the agent's own loggers the line is put together here and
 * written to the logger's destination: the same JSON pino would write (same keys, same order),
 * without its generic serialisation and redaction pass, which cost more than the rest of the
 * line (docs/performance.md). Nothing in it needs redacting: its fields are fixed.
 */
export function logAudit(logger: Logger, r: AuditRecord): void {
  const level = r.status === 'OK' ? 'info' : 'warn';
  if (!logger.isLevelEnabled(level)) return;
  const msg = r.status === 'OK' ? 'key operation' : 'key operation failed';
  const stream = ownLoggers.has(logger) ? streamOf(logger) : undefined;
  if (!stream?.write) {
    logger[level](auditFields(r), msg);
    return;
  }
  let line = `{"level":"${level}","time":"${new Date().toISOString()}","pid":${process.pid},"name":"akv-agent"`;
  for (const [key, value] of Object.entries(auditFields(r))) {
    if (value !== undefined) line += `,"${key}":${JSON.stringify(value)}`;
  }
  stream.write(`${line},"msg":"${msg}"}\n`);
}

/** The destination pino writes to (a SonicBoom, or stderr). */
function streamOf(
  logger: Logger,
): { fd?: number; end?: () => void; write?: (s: string) => unknown } | undefined {
  // pino keeps it under streamSym, a property its types do not declare: Reflect.get gives `any`.
  return Reflect.get(logger, pino.symbols.streamSym) as
    { fd?: number; end?: () => void; write?: (s: string) => unknown } | undefined;
}

/** Closes the logger's file (after SIGHUP replaced it, or at exit); stderr is left open. */
export function closeLogger(logger: Logger): void {
  const stream = streamOf(logger);
  if (!stream || stream.fd === 2 || stream.fd === 1) return;
  try {
    stream.end?.();
  } catch {
    /* already closed */
  }
}
