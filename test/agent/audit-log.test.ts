/**
 * The audit line as the agent writes it (src/agent/log.ts): the documented JSON, keys in order,
 * every value escaped, levels respected, whether it is written directly (the agent's own logger)
 * or through pino (any other logger).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { pino } from 'pino';
import { closeLogger, createLogger, logAudit, type AuditRecord } from '../../src/agent/log.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-audit-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ok: AuditRecord = {
  uri: 'managedhsm:h:k',
  op: 'sign',
  alg: 'ES256',
  status: 'OK',
  latencyMs: 1.23456,
  clientPid: 4242,
  keyVersion: 'v1',
  retries: 0,
};
const failed: AuditRecord = {
  uri: 'managedhsm:h:"odd"\nname',
  op: 'decrypt',
  alg: 'RSA-OAEP',
  status: 'KEY_NOT_FOUND',
  latencyMs: 2,
  retries: 1,
  error: 'managedhsm:h:k does not exist (404 "KeyNotFound")\tsee\\here',
};

function lines(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const KEYS_OK = [
  'level',
  'time',
  'pid',
  'name',
  'audit',
  'uri',
  'op',
  'alg',
  'result',
  'status',
  'latency_ms',
  'client_pid',
  'pid_source',
  'key_version',
  'retries',
  'msg',
];

/** The lines an agent logger at `level` writes for the two records. */
function auditedAt(level: 'info' | 'warn'): Array<Record<string, unknown>> {
  const file = join(dir, `${level}.log`);
  const logger = createLogger({ level, file });
  logAudit(logger, ok);
  logAudit(logger, failed);
  closeLogger(logger);
  return lines(file);
}

it("the agent's logger writes the documented line, keys in order, values escaped", () => {
  const [first, second] = auditedAt('info');
  assert.deepEqual(Object.keys(first!), KEYS_OK);
  assert.equal(first!.level, 'info');
  assert.equal(first!.pid, process.pid);
  assert.equal(first!.name, 'akv-agent');
  assert.ok(!Number.isNaN(Date.parse(first!.time as string)));
  assert.equal(first!.latency_ms, 1.23);
  assert.equal(first!.msg, 'key operation');
  assert.equal(second!.level, 'warn');
  assert.equal(second!.result, 'error');
  assert.equal(second!.uri, failed.uri);
  assert.equal(second!.error, failed.error);
  assert.equal(second!.msg, 'key operation failed');
  assert.equal(first!.pid_source, 'client');
  assert.equal('client_pid' in second!, false, 'absent values are left out');
  assert.equal('pid_source' in second!, false);
});

it('the same line through pino for any other logger', () => {
  const file = join(dir, 'other.log');
  const destination = pino.destination({ dest: file, sync: true });
  const other = pino(
    {
      base: { pid: process.pid, name: 'akv-agent' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  logAudit(other, ok);
  destination.flushSync();
  const [line] = lines(file);
  assert.deepEqual(Object.keys(line!), KEYS_OK);
});

it("with the kernel's credentials: their pid (not the client's word), uid, gid and the rule", () => {
  const file = join(dir, 'kernel.log');
  const logger = createLogger({ level: 'info', file });
  logAudit(logger, { ...ok, peer: { uid: 33, gid: 34, pid: 777, groups: [] }, rule: 'web' });
  closeLogger(logger);
  const [line] = lines(file);
  assert.equal(line!.client_pid, 777);
  assert.equal(line!.pid_source, 'kernel');
  assert.equal(line!.uid, 33);
  assert.equal(line!.gid, 34);
  assert.equal(line!.rule, 'web');
  assert.deepEqual(
    Object.keys(line!).slice(KEYS_OK.indexOf('client_pid'), KEYS_OK.indexOf('client_pid') + 5),
    ['client_pid', 'pid_source', 'uid', 'gid', 'rule'],
  );
});

it('honours the log level', () => {
  const written = auditedAt('warn');
  assert.equal(written.length, 1);
  assert.equal(written[0]!.status, 'KEY_NOT_FOUND');
});

it('creates the log file 0600 and its directory 0700, whatever the umask', () => {
  const old = process.umask(0o002);
  try {
    const file = join(dir, 'new-dir', 'agent.log');
    const logger = createLogger({ level: 'info', file });
    logAudit(logger, ok);
    closeLogger(logger);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'new-dir')).mode & 0o777, 0o700);
  } finally {
    process.umask(old);
  }
});

it('warns about an existing log file every user may read, and leaves its mode alone', () => {
  const file = join(dir, 'shared.log');
  writeFileSync(file, '', { mode: 0o644 });
  chmodSync(file, 0o644);
  const logger = createLogger({ level: 'info', file });
  closeLogger(logger);
  const [warning] = lines(file);
  assert.equal(warning!.level, 'warn');
  assert.match(String(warning!.msg), /read by every user.*chmod o-rwx/);
  assert.equal(statSync(file).mode & 0o777, 0o644);
});
