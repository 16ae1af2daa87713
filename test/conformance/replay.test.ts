/**
 * The client side against real answers: a replay server (replay-server.ts) serves the recorded
 * Managed HSM responses; the agent (through `openssl` with the provider) and `akv` must understand
 * every one. Signatures in the recordings were made by the recorded keys, so they are verified
 * with the recorded public keys; the recorded RSA1_5 ciphertext must decrypt to the recorded
 * plaintext; recorded errors must reach the user with their code and Activity ID.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN } from '../helpers/emulator.js';
import { OPENSSL, PROVIDERS, PROVIDER_MODULES_DIR } from '../provider/openssl-env.js';
import { loadFixtures, type Fixture, type RecordedExchange } from './fixtures.js';
import { startReplay, type ReplayServer } from './replay-server.js';

const HSM = 'replayhsm';
const fixtures = loadFixtures();
const byFile = (f: string): Fixture => fixtures.find((x) => x.file === f) as Fixture;
let replay: ReplayServer;
let dir: string;
let env: NodeJS.ProcessEnv;
let agent: ChildProcess;

before(async () => {
  replay = await startReplay(fixtures);
  dir = mkdtempSync(join(tmpdir(), 'akv-replay-test-'));
  const socket = join(dir, 'agent.sock');
  const config = {
    socket,
    vaults: {
      [HSM]: {
        endpoint: replay.url,
        caFile: replay.caFile,
        disableChallengeResourceVerification: true,
      },
    },
    credential: { type: 'static', token: 'replay-token' },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  env = {
    ...cleanAkvEnv(),
    AKV_CONFIG: join(dir, 'config.json'),
    AKV_AGENT_SOCKET: socket,
    AKV_AGENT_AUTOSTART: '0',
    AKV_HSM_NAME: HSM,
    OPENSSL_MODULES: PROVIDER_MODULES_DIR,
  };
  delete env.OPENSSL_CONF;
  agent = spawn(AKV_BIN, ['agent', '--config', join(dir, 'config.json')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    agent.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (/akv agent listening on /.test(out)) resolve();
    });
    agent.once('exit', (code) => reject(new Error(`agent exited ${code}: ${out}`)));
  });
});
after(async () => {
  if (agent && agent.exitCode === null) {
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
  }
  await replay?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs a command asynchronously: the replay server answers from this process's event loop. */
function run(
  cmd: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function recordedKey(file: string, exchange: string): { n: string; e: string } {
  const x = byFile(file).exchanges.find((e) => e.name === exchange);
  return (x?.response.body as { key: { n: string; e: string } }).key;
}

function recordedExchange(file: string, name: string): RecordedExchange {
  const x = byFile(file).exchanges.find((e) => e.name === name);
  assert.ok(x, `${file}: ${name}`);
  return x;
}

/** The base64url `value` of a recorded body: a request's input, or the HSM's answer. */
function valueOf(body: unknown): string {
  return (body as { value: string }).value;
}

/** `akv ARGS` with this test's environment. */
function akv(...args: string[]): ReturnType<typeof run> {
  return run(AKV_BIN, args);
}

/** `openssl pkeyutl OP` with the provider, on the HSM key named NAME. */
function pkeyutlArgs(op: '-sign' | '-decrypt', name: string, opts: readonly string[]): string[] {
  return ['pkeyutl', op, ...PROVIDERS, '-inkey', `managedhsm:${HSM}:${name}`, ...opts];
}

/**
 * Writes the recorded request's value (a digest, a ciphertext, a wrapped key) to a file, runs the
 * command on it (`cmd ...args <in> FILE <out> OUT`) and returns the recorded exchange, the two
 * file names and what the command wrote, for the caller to hold against the recorded answer.
 */
async function answersAsRecorded(
  file: string,
  exchange: string,
  command: { cmd: string; args: string[]; in: string; out: string },
): Promise<{ x: RecordedExchange; inFile: string; outFile: string; out: Buffer }> {
  const x = recordedExchange(file, exchange);
  const stem = exchange.replace(/\W+/g, '-');
  const [inFile, outFile] = [`${stem}.in`, `${stem}.out`];
  writeFileSync(join(dir, inFile), Buffer.from(valueOf(x.request.body), 'base64url'));
  const r = await run(command.cmd, [...command.args, command.in, inFile, command.out, outFile]);
  assert.equal(r.code, 0, r.stderr);
  return { x, inFile, outFile, out: readFileSync(join(dir, outFile)) };
}

/** `openssl pkeyutl -verify` (no provider) of SIG over DIGEST with a recorded public key. */
async function assertVerifies(
  jwk: Record<string, string>,
  opts: readonly string[],
  digest: string,
  sig: string,
): Promise<void> {
  const pem = `${sig}.pub.pem`;
  const pub = createPublicKey({ key: jwk, format: 'jwk' });
  writeFileSync(join(dir, pem), pub.export({ format: 'pem', type: 'spki' }));
  // The digest is what was signed: openssl pkeyutl verifies a digest as given.
  const v = await run(OPENSSL, [
    'pkeyutl',
    '-verify',
    '-pubin',
    '-inkey',
    pem,
    ...opts,
    '-in',
    digest,
    '-sigfile',
    sig,
  ]);
  assert.equal(v.code, 0, `openssl verify: ${v.stdout}${v.stderr}`);
  assert.match(v.stdout, /Signature Verified Successfully/);
}

const OPENSSL_IO = { cmd: OPENSSL, in: '-in', out: '-out' } as const;

describe('openssl with the provider, through the agent', () => {
  const file = 'python-mhsm-rsa3072-sign.json';
  const rsaKey = 'livekvtestrsa-verify-3072d9ab2daa';

  for (const [alg, opts] of [
    ['RS256', ['-pkeyopt', 'digest:sha256']],
    [
      'PS256',
      [
        '-pkeyopt',
        'digest:sha256',
        '-pkeyopt',
        'rsa_padding_mode:pss',
        '-pkeyopt',
        'rsa_pss_saltlen:digest',
      ],
    ],
  ] as const) {
    it(`${alg}: the recorded signature comes back and verifies with the recorded public key`, async () => {
      const { x, inFile, outFile, out } = await answersAsRecorded(file, `sign ${alg}`, {
        ...OPENSSL_IO,
        args: pkeyutlArgs('-sign', rsaKey, opts),
      });
      assert.equal(out.toString('base64url'), valueOf(x.response.body));
      const { n, e } = recordedKey(file, 'create RSA-HSM 3072');
      await assertVerifies({ kty: 'RSA', n, e }, opts, inFile, outFile);
    });
  }

  it('ES256: the recorded raw r||s comes back as DER and verifies with the recorded EC key', async () => {
    const ec = 'python-mhsm-ec-sign.json';
    const {
      x,
      inFile,
      outFile,
      out: der,
    } = await answersAsRecorded(ec, 'sign ES256', {
      ...OPENSSL_IO,
      args: pkeyutlArgs('-sign', 'livekvtestec-verify-P-256a7e22d2c', [
        '-pkeyopt',
        'digest:sha256',
      ]),
    });
    // The provider turns the HSM's raw r||s into the DER form OpenSSL uses; same r and s.
    const raw = Buffer.from(valueOf(x.response.body), 'base64url');
    const ints: Buffer[] = [];
    for (let i = 2; i < der.length;) {
      const len = der[i + 1] as number;
      ints.push(der.subarray(i + 2, i + 2 + len));
      i += 2 + len;
    }
    const strip = (b: Buffer) => b.subarray(b.findIndex((v) => v !== 0));
    assert.deepEqual(ints.map(strip), [strip(raw.subarray(0, 32)), strip(raw.subarray(32))]);
    const key = (
      recordedExchange(ec, 'create EC-HSM P-256').response.body as { key: { x: string; y: string } }
    ).key;
    await assertVerifies({ kty: 'EC', crv: 'P-256', x: key.x, y: key.y }, [], inFile, outFile);
  });

  it('RSA1_5: the recorded ciphertext decrypts to the recorded plaintext', async () => {
    const { x, out } = await answersAsRecorded(
      'js-mhsm-rsa-encrypt-decrypt.json',
      'decrypt RSA1_5',
      { ...OPENSSL_IO, args: pkeyutlArgs('-decrypt', 'cryptography-client-test', []) },
    );
    assert.equal(out.toString('base64url'), valueOf(x.response.body));
    assert.equal(out.toString('utf8'), 'encrypts and decrypts using RSA');
  });

  it("openssl reads the recorded key's public half (modulus as recorded)", async () => {
    const r = await run(OPENSSL, [
      'pkey',
      ...PROVIDERS,
      '-in',
      `managedhsm:${HSM}:${rsaKey}`,
      '-pubout',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const n = createPublicKey(r.stdout).export({ format: 'jwk' }).n;
    assert.equal(n, recordedKey(file, 'create RSA-HSM 3072').n);
  });
});

describe('RSA-OAEP and unwrapKey answers, through the agent', () => {
  for (const { what, file, exchange, command } of [
    {
      what: 'openssl: the recorded RSA-OAEP ciphertext decrypts to the recorded plaintext',
      file: 'python-mhsm-import-oaep.json',
      exchange: 'decrypt RSA-OAEP',
      command: {
        ...OPENSSL_IO,
        args: pkeyutlArgs('-decrypt', 'livekvtestkeycrypt6aac2ef7', [
          '-pkeyopt',
          'rsa_padding_mode:oaep',
        ]),
      },
    },
    {
      what: 'akv unwrap: the recorded unwrapKey answer is the unwrapped key',
      file: 'python-mhsm-unwrap.json',
      exchange: 'unwrapKey RSA-OAEP',
      command: {
        cmd: AKV_BIN,
        args: [
          'unwrap',
          '--key',
          `managedhsm:${HSM}:livekvtestkeywrapab302d4e`,
          '--alg',
          'RSA-OAEP',
        ],
        in: '--in',
        out: '--out',
      },
    },
  ]) {
    it(what, async () => {
      const { x, out } = await answersAsRecorded(file, exchange, command);
      assert.equal(out.toString('base64url'), valueOf(x.response.body));
    });
  }
});

describe('akv against recorded answers', () => {
  const json = async (args: string[]) => {
    const r = await akv(...args);
    assert.equal(r.code, 0, `akv ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  it('key show: the recorded bundle, key id on this HSM, recovery level as recorded', async () => {
    const k = await json(['key', 'show', '--name', 'livekvtestrsa-verify-3072d9ab2daa']);
    const key = k.key as Record<string, unknown>;
    assert.equal(key.kty, 'RSA-HSM');
    assert.equal(key.n, recordedKey('python-mhsm-rsa3072-sign.json', 'create RSA-HSM 3072').n);
    assert.equal(
      String(key.kid),
      `${replay.url}/keys/livekvtestrsa-verify-3072d9ab2daa/0cfa15d685e50ac706416a2655d5d5d5`,
    );
    const a = k.attributes as Record<string, unknown>;
    assert.equal(a.recoverableDays, 7);
    assert.equal(a.recoveryLevel, 'CustomizedRecoverable+Purgeable');
    assert.equal(a.created, new Date(1650642535 * 1000).toISOString());
  });

  it('key create oct-HSM: the seven operations of a real new AES key', async () => {
    const k = await json([
      'key',
      'create',
      '--name',
      'CRUDKeyName-cancreateanOCTkeywithoptions-',
      '--kty',
      'oct-HSM',
    ]);
    assert.deepEqual([...(k.key as { keyOps: string[] }).keyOps].sort(), [
      'decrypt',
      'deriveKey',
      'encrypt',
      'sign',
      'unwrapKey',
      'verify',
      'wrapKey',
    ]);
  });

  it('key show-deleted and purge: the recorded deleted bundle and the recorded 204', async () => {
    const d = await json(['key', 'show-deleted', '--name', 'cryptography-client-test']);
    assert.equal(d.recoveryId, `${replay.url}/deletedkeys/cryptography-client-test`);
    assert.equal(d.scheduledPurgeDate, new Date(1621546066 * 1000).toISOString());
    const p = await akv('key', 'purge', '--name', 'cryptography-client-test');
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, '');
  });

  it('key import: the recorded answer to a private JWK import (leading zero of n dropped)', async () => {
    const x = recordedExchange('python-mhsm-import-oaep.json', 'import RSA key (PUT, private JWK)');
    const jwk: Record<string, unknown> = {
      ...(x.request.body as { key: Record<string, unknown> }).key,
      kty: 'RSA',
    };
    delete jwk.key_ops;
    writeFileSync(join(dir, 'import.jwk.json'), JSON.stringify(jwk));
    const k = await json([
      'key',
      'import',
      '--name',
      'livekvtestkeycrypt6aac2ef7',
      '--jwk-file',
      'import.jwk.json',
    ]);
    const key = k.key as Record<string, unknown>;
    assert.equal(key.kty, 'RSA-HSM');
    assert.equal(
      key.n,
      recordedKey('python-mhsm-import-oaep.json', 'get imported key (version)').n,
    );
    assert.equal(
      String(key.kid),
      `${replay.url}/keys/livekvtestkeycrypt6aac2ef7/47140b834368028ab30f70c56e859cca`,
    );
  });

  it('key list --include-versions: follows the recorded nextLink to the last page', async () => {
    const r = await akv('key', 'list', '--include-versions', '--name', 'livekvtesttestKey340d29ea');
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { kid?: string; version?: string }[];
    const recorded = byFile('python-mhsm-list-versions.json')
      .exchanges.filter((x) => x.name.startsWith('create version'))
      .map((x) => String((x.response.body as { key: { kid: string } }).key.kid).slice(-32));
    assert.equal(list.length, 7, r.stdout);
    assert.deepEqual(
      list.map((v) => String(v.kid ?? v.version).slice(-32)).sort(),
      [...recorded].sort(),
    );
  });

  it('key list: follows the recorded nextLinks through all thirteen pages of keys', async () => {
    const r = await akv('key', 'list');
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as {
      name: string;
      kid: string;
      attributes: Record<string, unknown>;
      tags?: Record<string, string>;
    }[];
    const recorded = byFile('python-mhsm-list-keys.json')
      .exchanges.filter((x) => x.name.startsWith('list keys'))
      .flatMap((x) => (x.response.body as { value: { kid: string }[] }).value)
      .map((item) => item.kid.split('/').pop() as string);
    assert.equal(recorded.length, 78);
    assert.deepEqual(list.map((k) => k.name).sort(), [...recorded].sort());
    const byName = new Map(list.map((k) => [k.name, k]));
    // Attributes and tags the recorded items carry reach the user as they were recorded.
    assert.equal(
      byName.get('livekvtestrsa-expired3a5634ad')?.attributes.expires,
      '2000-01-01T00:00:00.000Z',
    );
    assert.equal(
      byName.get('livekvtestrsa-not-yet-valid3a5634ad')?.attributes.notBefore,
      '3000-01-01T00:00:00.000Z',
    );
    assert.deepEqual(byName.get('livekvtestcrud-ec-key3e722c4f')?.tags, {
      purpose: 'unit test',
      'test name': 'CreateECKeyTest',
    });
    assert.equal(
      byName.get('livekvtestkey05c9027ba')?.kid,
      `${replay.url}/keys/livekvtestkey05c9027ba`,
    );
  });

  it('key list-deleted and recover: the recorded deleted listing and recover answer', async () => {
    const d = (await akv('key', 'list-deleted', '--output', 'json')).stdout;
    const deleted = JSON.parse(d) as { name: string; recoveryId: string }[];
    assert.deepEqual(
      deleted.map((k) => k.name),
      ['livekvtestkey43311274c', 'livekvtestkey53311274c', 'livekvtestkey63311274c'],
    );
    assert.equal(deleted[0]?.recoveryId, `${replay.url}/deletedkeys/livekvtestkey43311274c`);
    const k = await json(['key', 'recover', '--name', 'livekvtestkey23311274c']);
    const key = k.key as Record<string, unknown>;
    assert.equal(
      String(key.kid),
      `${replay.url}/keys/livekvtestkey23311274c/57ac3ee5b78106a5211af716dafad7b6`,
    );
    assert.equal(
      (k.attributes as Record<string, unknown>).recoveryLevel,
      'CustomizedRecoverable+Purgeable',
    );
  });

  // Refused creates: by the HSM (its recorded 400), or by akv before anything is sent.
  for (const { what, name, args, code, sent, says } of [
    {
      what: 'a recorded 400 reaches the user with its code, message and Activity ID',
      name: 'exportablenopolicy-57012',
      args: ['--kty', 'RSA-HSM', '--exportable', 'true'],
      code: 1,
      sent: true,
      says: [
        /400 BadParameter/,
        /Exportable keys must have release policy \(Activity ID: 1ef7668c-de11-11ec-9e7b-000d3a602e9a\)/,
      ],
    },
    {
      what: 'an oct key size the real HSM refuses (400 Invalid key size) is refused before sending',
      name: 'testoctkey754238b',
      args: ['--kty', 'oct-HSM', '--size', '64'],
      code: 2,
      sent: false,
      says: [/--size for oct-HSM must be one of 128, 192, 256/],
    },
  ]) {
    it(what, async () => {
      const r = await akv('key', 'create', '--name', name, ...args);
      assert.equal(r.code, code, r.stdout + r.stderr);
      for (const pattern of says) assert.match(r.stderr, pattern);
      assert.equal(
        replay.seen.some((request) => request.includes(name)),
        sent,
        replay.seen.join('\n'),
      );
    });
  }

  it('key release: prints the recorded JWS, whose payload holds the wrapped key', async () => {
    const r = await json([
      'key',
      'release',
      '--name',
      'exportkey164011273934905946',
      '--target-attestation-token',
      'eyJ.eyJ.sig',
    ]);
    const [, payload] = String(r.value).split('.');
    const p = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as {
      response: { key: { key: { key_hsm: string; kty: string } } };
    };
    assert.equal(p.response.key.key.kty, 'RSA');
    const hsm = JSON.parse(Buffer.from(p.response.key.key.key_hsm, 'base64url').toString()) as {
      header: { enc: string };
    };
    assert.equal(hsm.header.enc, 'CKM_RSA_AES_KEY_WRAP');
  });

  it('every akv client began with the recorded 401 challenge and went on with a token', () => {
    // Six akv processes above (one SDK client each): each was challenged at least once. The agent
    // is not: with a static token and disableChallengeResourceVerification it sends the token on
    // its first request (docs/configuration.md), so the recorded answers reach it directly.
    assert.ok(replay.challenges() >= 6, `challenges served: ${replay.challenges()}`);
    assert.ok(replay.seen.length > replay.challenges());
  });
});
