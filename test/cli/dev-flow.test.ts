/**
 * The CLI as a person types it: `akv dev up`, `akv key ...`, `akv sign/verify/encrypt/decrypt/
 * wrap/unwrap`, `akv doctor`, `akv dev down`, each run as a real `bin/akv` process with the
 * environment that `dev up`'s export lines set.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  createDecipheriv,
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  verify,
} from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanAkvEnv, devDown, devUp, parseExports } from '../helpers/dev.js';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';
import { malformedDerSignatures } from '../helpers/malformed-ecdsa.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

/** Runs `bin/akv ARGS` with the exported variables, optional stdin, in the work directory. */
function akv(args: string[], env: Record<string, string>, input?: Buffer | string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(AKV_BIN, args, {
      cwd: work,
      env: { ...cleanAkvEnv(), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const o = Buffer.concat(out);
      resolve({ code, stdout: o.toString(), stderr: Buffer.concat(err).toString(), out: o });
    });
    child.stdin.end(input ?? '');
  });
}

async function ok(
  args: string[],
  env: Record<string, string>,
  input?: Buffer | string,
): Promise<Run> {
  const r = await akv(args, env, input);
  assert.equal(r.code, 0, `akv ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r;
}

/** Runs an akv command that must succeed and parses what it printed (JSON). */
async function okJson<T>(args: string[], env: Record<string, string>): Promise<T> {
  return JSON.parse((await ok(args, env)).stdout) as T;
}

const work = mkdtempSync(join(tmpdir(), 'akv-cli-'));
const dirA = join(work, 'a');
const dirB = join(work, 'b');
let env: Record<string, string>;
const HSM = 'clihsm';

before(async () => {
  env = await devUp(dirA, HSM);
});

after(async () => {
  await devDown(dirA);
  await devDown(dirB);
  rmSync(work, { recursive: true, force: true });
});

describe('akv dev up', () => {
  it('exports what the provider and the CLI need', () => {
    assert.equal(env.AKV_CONFIG, join(dirA, 'akv.json'));
    assert.equal(env.AKV_AGENT_SOCKET, join(dirA, 'akv', 'agent.sock'));
    assert.equal(env.OPENSSL_MODULES, join(REPO_ROOT, 'provider', 'build'));
    assert.equal(env.AKV_HSM_NAME, HSM);
    assert.ok(existsSync(env.AKV_AGENT_SOCKET as string));
    const config = JSON.parse(readFileSync(env.AKV_CONFIG as string, 'utf8')) as {
      vaults: Record<string, { endpoint: string }>;
    };
    assert.match(config.vaults[HSM]?.endpoint ?? '', /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('is idempotent: a second run prints the same lines and keeps the same processes', async () => {
    const pidsBefore =
      readFileSync(join(dirA, 'agent.pid'), 'utf8') +
      readFileSync(join(dirA, 'emulator.pid'), 'utf8');
    const again = await ok(['dev', 'up', '--dir', dirA, '--hsm-name', HSM], {});
    assert.deepEqual(parseExports(again.stdout), env);
    const pidsAfter =
      readFileSync(join(dirA, 'agent.pid'), 'utf8') +
      readFileSync(join(dirA, 'emulator.pid'), 'utf8');
    assert.equal(pidsAfter, pidsBefore);
  });

  it('runs a second environment side by side on other ports', async () => {
    const envB = await devUp(dirB, 'otherhsm');
    const endpoint = (e: Record<string, string>, name: string) =>
      (
        JSON.parse(readFileSync(e.AKV_CONFIG as string, 'utf8')) as {
          vaults: Record<string, { endpoint: string }>;
        }
      ).vaults[name]?.endpoint;
    assert.notEqual(endpoint(envB, 'otherhsm'), endpoint(env, HSM));
    await ok(
      ['key', 'create', '--hsm-name', 'otherhsm', '--name', 'b-key', '--kty', 'EC-HSM'],
      envB,
    );
    const listA = await okJson<Array<{ name: string }>>(['key', 'list', '--hsm-name', HSM], env);
    assert.ok(!listA.some((k) => k.name === 'b-key'), 'the environments do not share keys');
    await devDown(dirB);
  });

  it('adds another HSM name to a running environment', async () => {
    const env2 = await devUp(dirA, 'second-hsm');
    assert.equal(env2.AKV_HSM_NAME, 'second-hsm');
    assert.equal(env2.AKV_CONFIG, env.AKV_CONFIG);
    await ok(
      ['key', 'create', '--hsm-name', 'second-hsm', '--name', 'k2', '--kty', 'EC-HSM'],
      env2,
    );
    writeFileSync(join(work, 'second.txt'), 'second');
    await ok(
      [
        'sign',
        '--key',
        'managedhsm:second-hsm:k2',
        '--alg',
        'ES256',
        '--in',
        'second.txt',
        '--out',
        'second.sig',
      ],
      env2,
    );
    const v = await ok(
      [
        'verify',
        '--key',
        'managedhsm:second-hsm:k2',
        '--alg',
        'ES256',
        '--in',
        'second.txt',
        '--signature',
        'second.sig',
      ],
      env2,
    );
    assert.match(v.stdout, /Verified OK/);
  });

  it('refuses bad input with a usage error', async () => {
    const r = await akv(['dev', 'up', '--dir', dirA], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--hsm-name/);
    const bad = await akv(['dev', 'up', '--dir', dirA, '--hsm-name', 'no_underscores'], {});
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not a valid HSM name/);
  });
});

describe('akv key', () => {
  it('creates keys like az keyvault key create and prints the bundle without private parts', async () => {
    const ec = await okJson<{
      key: Record<string, unknown>;
      attributes: { enabled: boolean };
    }>(
      [
        'key',
        'create',
        '--hsm-name',
        HSM,
        '--name',
        'eckey',
        '--kty',
        'EC-HSM',
        '--curve',
        'P-384',
        '--ops',
        'sign',
        'verify',
      ],
      env,
    );
    assert.equal(ec.key.kty, 'EC-HSM');
    assert.equal(ec.key.crv, 'P-384');
    assert.deepEqual(
      [...(ec.key.keyOps as string[])].sort(),
      ['sign', 'verify'],
      'key_ops come in any order, as from a real HSM',
    );
    assert.equal(ec.key.d, undefined);
    assert.equal(ec.attributes.enabled, true);
    const rsa = await okJson<{ key: { n: string } }>(
      [
        'key',
        'create',
        '--hsm-name',
        HSM,
        '--name',
        'rsakey',
        '--kty',
        'RSA-HSM',
        '--size',
        '3072',
      ],
      env,
    );
    assert.equal(Buffer.from(rsa.key.n, 'base64url').length, 384);
    await ok(
      ['key', 'create', '--hsm-name', HSM, '--name', 'aeskey', '--kty', 'oct-HSM', '--size', '128'],
      env,
    );
  });

  it('lists, shows and rotates', async () => {
    const list = await okJson<Array<{ name: string }>>(['key', 'list', '--hsm-name', HSM], env);
    assert.deepEqual(
      list.map((k) => k.name).filter((n) => ['aeskey', 'eckey', 'rsakey'].includes(n)),
      ['aeskey', 'eckey', 'rsakey'],
    );
    const shown = await okJson<{ key: { kid: string } }>(
      ['key', 'show', '--id', `managedhsm:${HSM}:eckey`],
      env,
    );
    const rotated = await okJson<{ key: { kid: string; crv: string; keyOps: string[] } }>(
      ['key', 'rotate', '--hsm-name', HSM, '--name', 'eckey'],
      env,
    );
    assert.notEqual(rotated.key.kid, shown.key.kid);
    assert.equal(rotated.key.crv, 'P-384');
    assert.deepEqual([...rotated.key.keyOps].sort(), ['sign', 'verify']);
    const versions = await okJson<unknown[]>(
      ['key', 'list', '--hsm-name', HSM, '--name', 'eckey', '--include-versions'],
      env,
    );
    assert.equal(versions.length, 2);
    const oldVersion = shown.key.kid.split('/').pop() as string;
    const old = await okJson<{ key: { kid: string } }>(
      ['key', 'show', '--hsm-name', HSM, '--name', 'eckey', '--version', oldVersion],
      env,
    );
    assert.equal(old.key.kid, shown.key.kid);
  });

  it('imports a PEM private key that then signs in the HSM', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(work, 'imported.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const r = await okJson<{ key: { kty: string; x: string } }>(
      ['key', 'import', '--hsm-name', HSM, '--name', 'imported', '--pem-file', 'imported.pem'],
      env,
    );
    assert.equal(r.key.kty, 'EC-HSM');
    writeFileSync(join(work, 'msg.txt'), 'imported key message');
    await ok(
      [
        'sign',
        '--key',
        `managedhsm:${HSM}:imported`,
        '--alg',
        'ES256',
        '--in',
        'msg.txt',
        '--out',
        'msg.sig',
      ],
      env,
    );
    const sig = readFileSync(join(work, 'msg.sig'));
    assert.ok(
      verify(
        'sha256',
        Buffer.from('imported key message'),
        { key: publicKey, dsaEncoding: 'ieee-p1363' },
        sig,
      ),
    );
  });

  it('imports an AES key from a JWK file; its wraps unwrap with the same key locally', async () => {
    const k = randomBytes(32);
    writeFileSync(
      join(work, 'aes.jwk'),
      JSON.stringify({ kty: 'oct', k: k.toString('base64url'), key_ops: ['wrapKey', 'unwrapKey'] }),
    );
    const r = await okJson<{ key: { kty: string; k?: string } }>(
      ['key', 'import', '--hsm-name', HSM, '--name', 'imported-aes', '--jwk-file', 'aes.jwk'],
      env,
    );
    assert.equal(r.key.kty, 'oct-HSM');
    assert.equal(r.key.k, undefined, 'no key material in the output');
    const dek = randomBytes(32);
    const wrapped = await ok(
      [
        'wrap',
        '--key',
        `managedhsm:${HSM}:imported-aes`,
        '--alg',
        'A256KW',
        '--in',
        '-',
        '--out',
        '-',
      ],
      env,
      dek,
    );
    const decipher = createDecipheriv('id-aes256-wrap', k, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
    assert.deepEqual(Buffer.concat([decipher.update(wrapped.out), decipher.final()]), dek);
  });

  it('deletes a key', async () => {
    await ok(['key', 'create', '--hsm-name', HSM, '--name', 'doomed', '--kty', 'RSA-HSM'], env);
    await ok(['key', 'delete', '--hsm-name', HSM, '--name', 'doomed'], env);
    const r = await akv(['key', 'show', '--hsm-name', HSM, '--name', 'doomed'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not exist/);
  });

  it('explains bad flags', async () => {
    const soft = await akv(
      ['key', 'create', '--hsm-name', HSM, '--name', 'x', '--kty', 'RSA'],
      env,
    );
    assert.equal(soft.code, 2);
    assert.match(soft.stderr, /RSA-HSM/);
    const size = await akv(
      ['key', 'create', '--hsm-name', HSM, '--name', 'x', '--kty', 'RSA-HSM', '--size', '1024'],
      env,
    );
    assert.equal(size.code, 2);
    assert.match(size.stderr, /2048, 3072, 4096/);
    const op = await akv(
      ['key', 'create', '--hsm-name', HSM, '--name', 'x', '--kty', 'EC-HSM', '--ops', 'sing'],
      env,
    );
    assert.equal(op.code, 2);
    assert.match(op.stderr, /unknown operation "sing"/);
    const unknown = await akv(['key', 'create', '--hsm-nmae', HSM], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /hsm-nmae/);
  });

  it('without AKV_CONFIG, points at dev up', async () => {
    const r = await akv(['key', 'list', '--hsm-name', 'nosuchhsm-akvtest'], {
      XDG_CONFIG_HOME: join(work, 'noconfig'),
      HOME: join(work, 'nohome'),
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /AKV_CONFIG is not set/);
  });
});

describe('akv sign / verify / encrypt / decrypt / wrap / unwrap', () => {
  before(() => writeFileSync(join(work, 'data.txt'), 'the data to sign\n'));

  for (const [key, alg] of [
    ['eckey', 'ES384'],
    ['rsakey', 'PS256'],
    ['rsakey', 'RS512'],
  ] as const) {
    it(`signs with ${alg} and verifies; a changed file fails`, async () => {
      const uri = `managedhsm:${HSM}:${key}`;
      await ok(
        ['sign', '--key', uri, '--alg', alg, '--in', 'data.txt', '--out', `data.${alg}.sig`],
        env,
      );
      const good = await ok(
        [
          'verify',
          '--key',
          uri,
          '--alg',
          alg,
          '--in',
          'data.txt',
          '--signature',
          `data.${alg}.sig`,
        ],
        env,
      );
      assert.match(good.stdout, /Verified OK/);
      const bad = await akv(
        ['verify', '--key', uri, '--alg', alg, '--in', '-', '--signature', `data.${alg}.sig`],
        env,
        'other data\n',
      );
      assert.equal(bad.code, 1);
      assert.match(bad.stdout, /Verification failure/);
    });
  }

  it('signs a digest from stdin and writes DER that openssl verifies', async () => {
    const uri = `managedhsm:${HSM}:eckey`;
    const digest = createHash('sha384').update('the data to sign\n').digest();
    const r = await ok(
      ['sign', '--key', uri, '--alg', 'ES384', '--digest', '--der', '--in', '-', '--out', '-'],
      env,
      digest,
    );
    writeFileSync(join(work, 'data.der.sig'), r.out);
    const shown = await okJson<{ key: { x: string; y: string } }>(
      ['key', 'show', '--id', uri],
      env,
    );
    const pub = createPublicKey({
      key: { kty: 'EC', crv: 'P-384', x: shown.key.x, y: shown.key.y },
      format: 'jwk',
    });
    writeFileSync(join(work, 'ec-pub.pem'), pub.export({ type: 'spki', format: 'pem' }));
    const o = spawnSync(
      'openssl',
      ['dgst', '-sha384', '-verify', 'ec-pub.pem', '-signature', 'data.der.sig', 'data.txt'],
      { cwd: work, encoding: 'utf8' },
    );
    assert.equal(o.status, 0, o.stderr);
    assert.match(o.stdout, /Verified OK/);
  });

  it('verify refuses DER with a non-minimal or negative INTEGER r, as openssl does', async () => {
    // data.der.sig and ec-pub.pem: the HSM's ES384 signature and public key, from the test above.
    const uri = `managedhsm:${HSM}:eckey`;
    const der = readFileSync(join(work, 'data.der.sig'));
    const opensslVerify = (sig: string) =>
      spawnSync(
        'openssl',
        ['dgst', '-sha384', '-verify', 'ec-pub.pem', '-signature', sig, 'data.txt'],
        {
          cwd: work,
          encoding: 'utf8',
        },
      );
    const akvVerify = (sig: string) =>
      akv(['verify', '--key', uri, '--alg', 'ES384', '--in', 'data.txt', '--signature', sig], env);
    assert.match((await akvVerify('data.der.sig')).stdout, /Verified OK/);
    const bad = malformedDerSignatures(der);
    for (const what of Object.keys(bad).filter((w) => /^r /.test(w))) {
      writeFileSync(join(work, 'bad.sig'), bad[what] as Buffer);
      const o = opensslVerify('bad.sig');
      assert.equal(o.status, 1, `openssl dgst -verify accepted ${what}: ${o.stdout}`);
      assert.doesNotMatch(o.stdout, /Verified OK/);
      const r = await akvVerify('bad.sig');
      assert.equal(r.code, 1, `akv verify with ${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /Verification failure/);
    }
  });

  it('encrypts locally and decrypts in the HSM', async () => {
    const uri = `managedhsm:${HSM}:rsakey`;
    const secret = randomBytes(48);
    const ct = await ok(
      ['encrypt', '--key', uri, '--alg', 'RSA-OAEP-256', '--in', '-', '--out', '-'],
      env,
      secret,
    );
    assert.equal(ct.out.length, 384);
    const pt = await ok(
      ['decrypt', '--key', uri, '--alg', 'RSA-OAEP-256', '--in', '-', '--out', '-'],
      env,
      ct.out,
    );
    assert.deepEqual(pt.out, secret);
  });

  it('wraps and unwraps with an AES key', async () => {
    const uri = `managedhsm:${HSM}:aeskey`;
    const secret = randomBytes(32);
    writeFileSync(join(work, 'dek.bin'), secret);
    await ok(
      ['wrap', '--key', uri, '--alg', 'A128KW', '--in', 'dek.bin', '--out', 'dek.wrapped'],
      env,
    );
    assert.equal(readFileSync(join(work, 'dek.wrapped')).length, 40);
    await ok(
      ['unwrap', '--key', uri, '--alg', 'A128KW', '--in', 'dek.wrapped', '--out', 'dek.back'],
      env,
    );
    assert.deepEqual(readFileSync(join(work, 'dek.back')), secret);
  });

  it('names the problem: bad URI, missing option, key that does not allow the operation', async () => {
    const badUri = await akv(
      [
        'sign',
        '--key',
        'managedhsm:only-one-part',
        '--alg',
        'ES256',
        '--in',
        'data.txt',
        '--out',
        'x',
      ],
      env,
    );
    assert.equal(badUri.code, 1);
    assert.match(badUri.stderr, /managedhsm:<hsm>:<key>/);
    const missing = await akv(['sign', '--alg', 'ES256', '--in', 'data.txt'], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--key/);
    const forbidden = await akv(
      [
        'decrypt',
        '--key',
        `managedhsm:${HSM}:eckey`,
        '--alg',
        'RSA-OAEP',
        '--in',
        'data.txt',
        '--out',
        '-',
      ],
      env,
    );
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /refused decrypt with managedhsm:\S+:eckey \(403 Forbidden/);
    assert.match(forbidden.stderr, /decrypt not in its key_ops/);
  });

  it('every command has --help', async () => {
    for (const cmd of [
      'dev',
      'key',
      'sign',
      'verify',
      'encrypt',
      'decrypt',
      'wrap',
      'unwrap',
      'doctor',
    ]) {
      const r = await ok([cmd, '--help'], env);
      assert.match(r.stdout, new RegExp(`Usage: akv ${cmd}`));
    }
  });
});

describe('akv doctor', () => {
  it('passes every link that works', async () => {
    const r = await akv(['doctor', `managedhsm:${HSM}:eckey`], env);
    for (const link of [
      'agent reachable',
      'credential',
      'HSM reachable',
      'key usable',
      'test signature',
    ]) {
      assert.match(r.stdout, new RegExp(`\\[ ok \\] ${link}:`), r.stdout);
    }
    const providerBuilt = existsSync(join(REPO_ROOT, 'provider', 'build', 'akv_provider.so'));
    if (providerBuilt) {
      assert.match(r.stdout, /\[ ok \] provider loadable/);
      assert.equal(r.code, 0, r.stdout);
    } else {
      assert.match(r.stdout, /\[FAIL\] provider loadable/);
      assert.equal(r.code, 1);
    }
  });

  it('fails on a stopped agent and names it', async () => {
    await devDown(dirA);
    // Autostart off: doctor would otherwise start the agent as the provider does.
    const r = await akv(['doctor', `managedhsm:${HSM}:eckey`], {
      ...env,
      AKV_AGENT_AUTOSTART: '0',
    });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /\[FAIL\] agent reachable: akv agent not reachable at .*agent\.sock/);
    assert.match(
      r.stdout,
      /agent\.sock \(ENOENT\), and it is not started automatically: autostart is off \(AKV_AGENT_AUTOSTART\); hint: start it with `akv agent`/,
    );
    assert.match(r.stdout, /\[skip\] test signature/);
  });

  it('dev down is harmless when nothing runs', async () => {
    const r = await ok(['dev', 'down', '--dir', dirA], {});
    assert.match(r.stderr, /nothing was running/);
  });
});
