/**
 * The `akv key` sub-commands that mirror the rest of `az keyvault key` for HSM keys: list-deleted,
 * show-deleted, recover, purge, set-attributes, download, backup/restore, release, rotation policy;
 * --output table|tsv; AKV_HSM_NAME as the default --hsm-name; hints that name the command as run.
 * Each is a real `bin/akv` process against a real emulator.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanAkvEnv } from '../helpers/dev.js';
import {
  AKV_BIN,
  emulatorConfig,
  startEmulator,
  type RunningEmulator,
} from '../helpers/emulator.js';
import { attestationToken, TEST_AUTHORITY, unwrapReleased } from '../helpers/attestation.js';

const HSM = 'clihsm';
let emu: RunningEmulator;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  emu = await startEmulator();
  work = mkdtempSync(join(tmpdir(), 'akv-key-cli-'));
  writeFileSync(join(work, 'config.json'), JSON.stringify(emulatorConfig(emu, HSM)));
  env = {
    ...cleanAkvEnv(),
    AKV_CONFIG: join(work, 'config.json'),
    // No agent runs: rotate/delete/recover try to tell one to forget the key, at this path only.
    AKV_AGENT_SOCKET: join(work, 'no-agent.sock'),
    AKV_HSM_NAME: HSM,
  };
});
after(async () => {
  await emu?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function akv(args: string[], extraEnv: Record<string, string> = {}, bin = AKV_BIN): Run {
  const r = spawnSync(bin, args, {
    cwd: work,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[]): string {
  const r = akv(args);
  assert.equal(r.code, 0, `akv ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

const okJson = <T = Record<string, unknown>>(args: string[]): T => JSON.parse(ok(args)) as T;

describe('delete, list-deleted, show-deleted, recover, purge', () => {
  it('a deleted key blocks its name with a hint naming recover and purge; both work', () => {
    okJson(['key', 'create', '--name', 'gone', '--kty', 'EC-HSM']);
    okJson(['key', 'delete', '--name', 'gone']);
    const again = akv(['key', 'create', '--name', 'gone', '--kty', 'EC-HSM']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /409 Conflict/);
    assert.match(again.stderr, /Activity ID: [0-9a-f-]{36}/);
    assert.match(again.stderr, /key recover --hsm-name clihsm --name gone/);
    assert.match(again.stderr, /key purge --hsm-name clihsm --name gone/);

    const deleted = okJson<Array<Record<string, unknown>>>(['key', 'list-deleted']);
    const entry = deleted.find((d) => d.name === 'gone');
    assert.ok(entry, 'the deleted key is listed');
    assert.match(String(entry.recoveryId), /\/deletedkeys\/gone$/);
    const shown = okJson(['key', 'show-deleted', '--name', 'gone']);
    const days =
      (Date.parse(String(shown.scheduledPurgeDate)) - Date.parse(String(shown.deletedDate))) /
      86_400_000;
    assert.equal(days, 7, 'a new HSM keeps deleted keys 7 days');
    assert.equal(
      (shown.attributes as Record<string, unknown>).recoveryLevel,
      'CustomizedRecoverable+Purgeable',
    );

    const recovered = okJson(['key', 'recover', '--name', 'gone']);
    assert.equal((recovered.key as Record<string, unknown>).kty, 'EC-HSM');
    okJson(['key', 'show', '--name', 'gone']);

    okJson(['key', 'delete', '--name', 'gone']);
    const purged = akv(['key', 'purge', '--name', 'gone']);
    assert.equal(purged.code, 0, purged.stderr);
    assert.equal(purged.stdout, '', 'purge prints nothing, as az does');
    okJson(['key', 'create', '--name', 'gone', '--kty', 'EC-HSM']);
    const missing = akv(['key', 'purge', '--name', 'never-was']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404/);
  });
});

describe('--output and AKV_HSM_NAME', () => {
  it('list -o table has a header and one row per key; tsv has tab-separated rows only', () => {
    okJson(['key', 'create', '--name', 'tab-a', '--kty', 'RSA-HSM']);
    const table = ok(['key', 'list', '-o', 'table']).trimEnd().split('\n');
    assert.match(table[0] ?? '', /^Name\s+Enabled\s+Expires\s+Updated\s+Kid$/);
    assert.match(table[1] ?? '', /^-+\s+-+/);
    assert.ok(table.some((l) => /^tab-a\s+true\s/.test(l)));
    const tsv = ok(['key', 'list', '--output', 'tsv']).trimEnd().split('\n');
    const row = tsv.find((l) => l.startsWith('tab-a\t'));
    assert.ok(row);
    assert.equal(row.split('\t').length, 5);
    assert.ok(row.split('\t')[4]?.endsWith('/keys/tab-a'));
    const bad = akv(['key', 'list', '-o', 'yaml']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--output takes json, table or tsv/);
  });
  it('without AKV_HSM_NAME and --hsm-name the error says what to give', () => {
    const r = akv(['key', 'list'], { AKV_HSM_NAME: '' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--hsm-name NAME .* is required \(or set AKV_HSM_NAME\)/);
  });
  it('an option another sub-command takes is refused by name', () => {
    const r = akv(['key', 'purge', '--name', 'x', '--file', 'f']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--file does not apply here/);
  });
});

describe('set-attributes and download', () => {
  it('disables, dates, retags and re-scopes a key; refuses bad dates and empty changes', () => {
    okJson(['key', 'create', '--name', 'attrs', '--kty', 'EC-HSM']);
    const set = okJson([
      'key',
      'set-attributes',
      '--name',
      'attrs',
      '--enabled',
      'false',
      '--expires',
      '2031-05-01T00:00:00Z',
      '--not-before',
      '2026-01-01',
      '--tags',
      'env=test',
      '--ops',
      'sign',
    ]);
    const a = set.attributes as Record<string, unknown>;
    assert.equal(a.enabled, false);
    assert.equal(a.expires, '2031-05-01T00:00:00.000Z');
    assert.equal(a.notBefore, '2026-01-01T00:00:00.000Z');
    assert.deepEqual(set.tags, { env: 'test' });
    assert.deepEqual((set.key as Record<string, unknown>).keyOps, ['sign']);
    const shown = okJson(['key', 'show', '--name', 'attrs']);
    assert.equal((shown.attributes as Record<string, unknown>).enabled, false);
    const bad = akv(['key', 'set-attributes', '--name', 'attrs', '--expires', 'next week']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--expires takes an ISO 8601 date/);
    const none = akv(['key', 'set-attributes', '--name', 'attrs']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /nothing to change/);
  });

  it('downloads the public key as PEM and DER that openssl reads; refuses to overwrite; oct has none', () => {
    const key = okJson(['key', 'create', '--name', 'dl', '--kty', 'RSA-HSM', '--size', '3072']);
    const pem = join(work, 'dl.pem');
    ok(['key', 'download', '--name', 'dl', '--file', pem]);
    const text = readFileSync(pem, 'utf8');
    assert.match(text, /^-----BEGIN PUBLIC KEY-----\n/);
    const n = createPublicKey(text).export({ format: 'jwk' }).n;
    assert.equal(n, (key.key as Record<string, unknown>).n);
    const o = spawnSync('openssl', ['pkey', '-pubin', '-in', pem, '-noout', '-text'], {
      encoding: 'utf8',
    });
    assert.match(o.stdout, /Public-Key: \(3072 bit\)/);
    const der = join(work, 'dl.der');
    ok(['key', 'download', '--name', 'dl', '--file', der, '--encoding', 'DER']);
    assert.equal(
      createPublicKey({ key: readFileSync(der), format: 'der', type: 'spki' }).export({
        format: 'jwk',
      }).n,
      n,
    );
    const again = akv(['key', 'download', '--name', 'dl', '--file', pem]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists/);
    okJson(['key', 'create', '--name', 'aes', '--kty', 'oct-HSM']);
    const oct = akv(['key', 'download', '--name', 'aes', '--file', join(work, 'aes.pem')]);
    assert.equal(oct.code, 2);
    assert.match(oct.stderr, /has no public key/);
  });
});

describe('backup and restore', () => {
  it('backs up to a 0600 file, restores after purge with every version', () => {
    const v1 = okJson(['key', 'create', '--name', 'kept', '--kty', 'EC-HSM']);
    okJson(['key', 'rotate', '--name', 'kept']);
    const file = join(work, 'kept.bak');
    ok(['key', 'backup', '--name', 'kept', '--file', file]);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const live = akv(['key', 'restore', '--file', file]);
    assert.equal(live.code, 1);
    assert.match(live.stderr, /409/);
    okJson(['key', 'delete', '--name', 'kept']);
    ok(['key', 'purge', '--name', 'kept']);
    okJson(['key', 'restore', '--file', file]);
    const versions = okJson<unknown[]>(['key', 'list', '--include-versions', '--name', 'kept']);
    assert.equal(versions.length, 2);
    const rows = ok(['key', 'list', '--include-versions', '--name', 'kept', '-o', 'tsv'])
      .trimEnd()
      .split('\n');
    assert.equal(rows.length, 2);
    for (const row of rows) assert.match(row, /^[0-9a-f]{32}\ttrue\t/);
    const kid = String((v1.key as Record<string, unknown>).kid);
    okJson(['key', 'show', '--name', 'kept', '--version', kid.slice(-32)]);
  });
});

describe('release', () => {
  it('creates an exportable key with a policy and releases it to a token from the test authority', () => {
    const policy = join(work, 'policy.json');
    writeFileSync(
      policy,
      JSON.stringify({
        version: '1.0.0',
        anyOf: [{ authority: TEST_AUTHORITY, allOf: [{ claim: 'tee', equals: 'sevsnp' }] }],
      }),
    );
    const key = okJson([
      'key',
      'create',
      '--name',
      'sealed',
      '--kty',
      'RSA-HSM',
      '--exportable',
      'true',
      '--policy',
      `@${policy}`,
    ]);
    assert.equal((key.attributes as Record<string, unknown>).exportable, true);
    assert.ok((key.releasePolicy as Record<string, unknown>).data);
    const target = attestationToken(emu.stateDir, { tee: 'sevsnp' });
    const tokenFile = join(work, 'token.jwt');
    writeFileSync(tokenFile, target.token);
    const out = okJson([
      'key',
      'release',
      '--name',
      'sealed',
      '--target-attestation-token',
      `@${tokenFile}`,
      '--nonce',
      'abc',
    ]);
    const { material } = unwrapReleased(String(out.value), target.privateKey);
    const n = createPublicKey(
      createPrivateKey({ key: material, format: 'der', type: 'pkcs8' }),
    ).export({ format: 'jwk' }).n;
    assert.equal(n, (key.key as Record<string, unknown>).n);
    const wrong = attestationToken(emu.stateDir, { tee: 'none' });
    const refused = akv(['key', 'release', '--name', 'sealed', '-t', wrong.token]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /403/);
    assert.match(refused.stderr, /release policy/);
    const bad = akv([
      'key',
      'release',
      '--name',
      'sealed',
      '-t',
      target.token,
      '--algorithm',
      'AES',
    ]);
    assert.equal(bad.code, 2);
  });
});

describe('rotation policy', () => {
  it('set from a file, read back; a bad duration is the HSM error', () => {
    okJson(['key', 'create', '--name', 'rot', '--kty', 'EC-HSM']);
    const file = join(work, 'rot.json');
    writeFileSync(
      file,
      JSON.stringify({
        lifetimeActions: [{ trigger: { timeAfterCreate: 'P60D' }, action: { type: 'Rotate' } }],
        attributes: { expiryTime: 'P1Y' },
      }),
    );
    const set = okJson(['key', 'set-rotation-policy', '--name', 'rot', '--value', `@${file}`]);
    assert.deepEqual(set.lifetimeActions, [{ action: 'Rotate', timeAfterCreate: 'P60D' }]);
    const got = okJson(['key', 'get-rotation-policy', '--name', 'rot']);
    assert.equal((got.attributes as Record<string, unknown>).expiryTime, 'P1Y');
    assert.match(String(got.id), /\/keys\/rot\/rotationpolicy$/);
    const bad = akv([
      'key',
      'set-rotation-policy',
      '--name',
      'rot',
      '--value',
      '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"60 days"},"action":{"type":"Rotate"}}]}',
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ISO 8601 duration/);
  });
});

describe('the command name in hints and help', () => {
  it('hints name bin/akv when run from the clone, akv when run from a directory on PATH', () => {
    const fromClone = akv(['key', 'show', '--name', 'missing-key']);
    assert.match(
      fromClone.stderr,
      new RegExp(`\`${AKV_BIN.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} key list`),
    );
    const binDir = join(AKV_BIN, '..');
    const onPath = spawnSync('akv', ['key', 'show', '--name', 'missing-key'], {
      cwd: work,
      env: { ...env, PATH: `${binDir}:${process.env.PATH ?? ''}` },
      encoding: 'utf8',
    });
    assert.match(onPath.stderr, /`akv key list --hsm-name clihsm`/);
  });
  it('akv --help lists --version; akv key --help lists every sub-command', () => {
    assert.match(ok(['--help']), /--version/);
    const help = ok(['key', '--help']);
    for (const sub of [
      'list-deleted',
      'show-deleted',
      'recover',
      'purge',
      'set-attributes',
      'download',
      'backup',
      'restore',
      'release',
      'get-rotation-policy',
      'set-rotation-policy',
    ])
      assert.match(help, new RegExp(`^  ${sub} `, 'm'), sub);
    assert.ok(!existsSync(join(work, 'no-agent.sock')));
  });
});
