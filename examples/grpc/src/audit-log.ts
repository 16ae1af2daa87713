/**
 * Reads the akv agent's audit lines (one JSON object per private-key operation: uri, op, alg,
 * result) to show which HSM keys signed: the proof that the sidecars' TLS handshakes used the
 * HSM-held keys and no key file.
 *
 *   node dist/examples/grpc/src/audit-log.js --log FILE URI...
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

export interface AuditEntry {
  uri: string;
  op: string;
  alg: string;
  ok: boolean;
}

/** The audit entries of a log file, oldest first; other log lines are skipped. */
export function readAuditLog(file: string): AuditEntry[] {
  if (!existsSync(file)) return [];
  const entries: AuditEntry[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line being written right now
    }
    if (typeof record.uri !== 'string' || typeof record.op !== 'string') continue;
    entries.push({
      uri: record.uri,
      op: record.op,
      alg: typeof record.alg === 'string' ? record.alg : '',
      ok: record.result === 'ok' || record.status === 'OK',
    });
  }
  return entries;
}

/** True when an audit URI (canonical, maybe with ?version=) names the key `managedhsm:H:K`. */
export function namesKey(auditUri: string, keyUri: string): boolean {
  const a = auditUri.toLowerCase();
  const k = keyUri.toLowerCase();
  return a === k || a.startsWith(`${k}?`);
}

/** Successful signatures by one key, with the algorithms used. */
export function signaturesBy(
  entries: AuditEntry[],
  keyUri: string,
): { count: number; algs: string[] } {
  const mine = entries.filter((e) => e.op === 'sign' && e.ok && namesKey(e.uri, keyUri));
  return { count: mine.length, algs: [...new Set(mine.map((e) => e.alg))].sort() };
}

const USAGE = `Usage: node dist/examples/grpc/src/audit-log.js --log FILE [--require] URI...

Prints, for each key URI (managedhsm:HSM:KEY), how many successful signatures the akv agent
logged in FILE and with which algorithms. --require: exit 1 when a key has none.`;

function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        log: { type: 'string' },
        require: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    console.error(`audit-log: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  const file = parsed.values.log;
  if (!file || parsed.positionals.length === 0) {
    console.error(`audit-log: --log FILE and at least one key URI are required\n\n${USAGE}`);
    return 2;
  }
  if (!existsSync(file)) {
    console.error(`audit-log: no agent log at ${file}`);
    return 1;
  }
  const entries = readAuditLog(file);
  let missing = false;
  for (const uri of parsed.positionals) {
    const { count, algs } = signaturesBy(entries, uri);
    if (count === 0) missing = true;
    console.log(
      `${uri}: ${count} signature${count === 1 ? '' : 's'} in the HSM${algs.length ? ` (${algs.join(', ')})` : ''}`,
    );
  }
  return missing && parsed.values.require ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2));
}
