/**
 * The original provider's test suite, src_provider_rust/runtest.sh of
 * microsoft/AzureKeyVaultManagedHSMEngine, against akv on the emulator. Part one runs its commands
 * here, one by one, with its flags, its environment (AKV_LOG_FILE=logs/akv_provider.log,
 * AKV_LOG_LEVEL=3, RUST_LOG, RUST_LOG_STYLE, RUST_BACKTRACE, OPENSSL_CONF unset, the token from
 * `az account get-access-token`), its key names and URIs and a configuration of the shape of its
 * testOpenssl.cnf (`module = libakv_provider`, [req] sections); only paths and the HSM endpoint
 * differ, and one migration setting is added: AKV_RSA_DECRYPT_PADDING=oaep, since its "RSA OAEP
 * decrypt" step names no padding (docs/migrating.md). Nothing akv is started by hand: the
 * provider starts the agent. Part two runs the fetched script itself, unmodified, when a copy of
 * the original repository is on this machine (AKV_ORIGINAL_REPO: a checkout or a bare git
 * directory); it is skipped otherwise, so the repository's tests never depend on it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSync } from '../provider/openssl-env.js';
import {
  createOriginalKeys,
  originalStyleCnf,
  startCompatEnv,
  type CompatEnv,
} from './compat-env.js';

const HSM = 'ManagedHSMOpenSSLEngine'; // runtest.sh's default AKV_VAULT
const RSA = `managedhsm:${HSM}:myrsakey`;
const EC = `managedhsm:${HSM}:ecckey`;
const AES = `managedhsm:${HSM}:myaeskey`;
const P = ['-provider', 'akv_provider', '-provider', 'default'];

let ce: CompatEnv;
let env: NodeJS.ProcessEnv;
let dir: string;
let runtime: string;

/** testOpenssl.cnf's shape: the provider section and the [req] sections runtest.sh relies on. */
const TEST_OPENSSL_CNF = originalStyleCnf(
  'libakv_provider',
  [],
  [
    '[req]',
    'distinguished_name = req_distinguished_name',
    'req_extensions = v3_req',
    'prompt = no',
    '[req_distinguished_name]',
    'C = US',
    'ST = WA',
    'L = Redmond',
    'O = Contoso',
    'OU = AKV',
    'CN = www.Contoso.com',
    '[v3_req]',
    'keyUsage = keyEncipherment, dataEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectAltName = @alt_names',
    '[alt_names]',
    'DNS.1 = www.Contoso.com',
    'DNS.2 = Contoso.com',
  ],
);

before(async () => {
  ce = await startCompatEnv('runtest', HSM);
  runtime = ce.runtime('runtest');
  dir = join(ce.work, 'temp');
  mkdirSync(join(ce.work, 'logs'));
  mkdirSync(dir);
  env = ce.env(runtime, {
    AKV_LOG_FILE: join(ce.work, 'logs', 'akv_provider.log'),
    AKV_LOG_LEVEL: '3',
    RUST_LOG: 'akv_provider=debug,reqwest=warn',
    RUST_LOG_STYLE: 'never',
    RUST_BACKTRACE: '1',
    AKV_RSA_DECRYPT_PADDING: 'oaep',
  });
  createOriginalKeys(ce, env);
  writeFileSync(join(ce.work, 'testOpenssl.cnf'), TEST_OPENSSL_CNF);
  writeFileSync(join(dir, 'input.bin'), 'Azure Managed HSM signing test\n');
});

after(async () => {
  await ce?.close();
});

const f = (name: string): string => join(dir, name);
const run = (args: string[]): void => {
  const r = runSync('openssl', args, env, ce.work);
  assert.equal(r.status, 0, `openssl ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /warning/, `no warning for the original's settings:\n${r.stderr}`);
};

describe("runtest.sh's steps, in its order", () => {
  it('the provider is loadable (openssl list -providers)', () => {
    const r = runSync('openssl', ['list', '-providers', ...P], env, ce.work);
    assert.match(r.stdout, /akv_provider/);
  });

  it('public keys export through the provider', () => {
    run(['pkey', ...P, '-in', RSA, '-pubout', '-out', f('myrsakey_pub.pem')]);
    run(['dgst', '-sha256', '-binary', '-out', f('input.sha256.bin'), f('input.bin')]);
    run(['pkey', ...P, '-in', EC, '-pubout', '-out', f('ecckey_pub.pem')]);
  });

  it('RSA PS256 and RS256 signing round trips', () => {
    const pss = [
      '-sigopt',
      'rsa_padding_mode:pss',
      '-sigopt',
      'rsa_pss_saltlen:digest',
      '-sigopt',
      'rsa_mgf1_md:sha256',
    ];
    run(['dgst', '-sha256', '-sign', RSA, ...P, ...pss, '-out', f('ps256.sig'), f('input.bin')]);
    run([
      'dgst',
      '-sha256',
      '-verify',
      f('myrsakey_pub.pem'),
      '-signature',
      f('ps256.sig'),
      ...pss,
      f('input.bin'),
    ]);
    const pkcs1 = ['-sigopt', 'rsa_padding_mode:pkcs1'];
    run(['dgst', '-sha256', '-sign', RSA, ...P, ...pkcs1, '-out', f('rs256.sig'), f('input.bin')]);
    run([
      'dgst',
      '-sha256',
      '-verify',
      f('myrsakey_pub.pem'),
      '-signature',
      f('rs256.sig'),
      ...pkcs1,
      f('input.bin'),
    ]);
  });

  it('RSA OAEP decrypt round trip, decrypting without -pkeyopt', () => {
    run([
      'pkeyutl',
      '-encrypt',
      '-pubin',
      '-inkey',
      f('myrsakey_pub.pem'),
      '-in',
      f('input.bin'),
      '-out',
      f('rsa_cipher.bin'),
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha1',
      '-pkeyopt',
      'rsa_mgf1_md:sha1',
    ]);
    run([
      'pkeyutl',
      '-decrypt',
      ...P,
      '-inkey',
      RSA,
      '-in',
      f('rsa_cipher.bin'),
      '-out',
      f('rsa_roundtrip.bin'),
    ]);
    assert.deepEqual(readFileSync(f('rsa_roundtrip.bin')), readFileSync(f('input.bin')));
  });

  it('EC ES256 signing round trip', () => {
    run(['dgst', '-sha256', '-sign', EC, ...P, '-out', f('es256.sig'), f('input.bin')]);
    run([
      'dgst',
      '-sha256',
      '-verify',
      f('ecckey_pub.pem'),
      '-signature',
      f('es256.sig'),
      f('input.bin'),
    ]);
  });

  it('CSRs and self-signed certificates with testOpenssl.cnf (RSA, then EC)', () => {
    const cnf = join(ce.work, 'testOpenssl.cnf');
    for (const [key, prefix] of [
      [RSA, ''],
      [EC, 'ec_'],
    ] as const) {
      const rsaOpt = key === RSA ? ['-sigopt', 'rsa_padding_mode:pkcs1'] : [];
      run([
        'req',
        '-config',
        cnf,
        '-new',
        ...P,
        '-key',
        key,
        '-sha256',
        ...rsaOpt,
        '-out',
        f(`${prefix}cert.csr`),
      ]);
      run(['req', '-in', f(`${prefix}cert.csr`), '-noout', '-verify', ...P]);
      run([
        'req',
        '-config',
        cnf,
        '-new',
        '-x509',
        ...P,
        '-propquery',
        '?provider=akv_provider',
        '-key',
        key,
        '-sha256',
        '-days',
        '365',
        '-out',
        f(`${prefix}cert.pem`),
      ]);
      run(['verify', ...P, '-CAfile', f(`${prefix}cert.pem`), f(`${prefix}cert.pem`)]);
    }
  });

  it('AES key wrap and unwrap, and a tampered blob is refused', () => {
    run(['rand', '-out', f('local.key'), '32']);
    run([
      'pkeyutl',
      '-encrypt',
      '-inkey',
      AES,
      ...P,
      '-in',
      f('local.key'),
      '-out',
      f('local.key.wrap'),
    ]);
    run([
      'pkeyutl',
      '-decrypt',
      '-inkey',
      AES,
      ...P,
      '-in',
      f('local.key.wrap'),
      '-out',
      f('local.key.unwrapped'),
    ]);
    assert.deepEqual(readFileSync(f('local.key.unwrapped')), readFileSync(f('local.key')));
    writeFileSync(
      f('local.key.wrap.tampered'),
      Buffer.concat([readFileSync(f('local.key.wrap')), Buffer.from('X\n')]),
    );
    const r = runSync(
      'openssl',
      [
        'pkeyutl',
        '-decrypt',
        '-inkey',
        AES,
        ...P,
        '-in',
        f('local.key.wrap.tampered'),
        '-out',
        f('local.key.bad'),
      ],
      env,
      ce.work,
    );
    assert.notEqual(r.status, 0, 'the tampered key must not unwrap');
    assert.equal(r.signal, null);
  });

  it('its log file holds the provider lines at level 3, the agent logs beside its socket', () => {
    const provider = readFileSync(join(ce.work, 'logs', 'akv_provider.log'), 'utf8')
      .trim()
      .split('\n');
    assert.ok(
      provider.some((l) => / debug /.test(l)),
      'AKV_LOG_LEVEL=3 logs debug lines',
    );
    assert.ok(
      provider.every((l) => / akv_provider pid=\d+ /.test(l)),
      'only provider lines',
    );
    assert.ok(existsSync(join(runtime, 'akv', 'agent.log')));
  });
});

/** A copy of the original repository: AKV_ORIGINAL_REPO, else the fetch tool's mirror when present. */
function originalRepo(): string | undefined {
  const candidates = [
    process.env.AKV_ORIGINAL_REPO,
    '/work/.mirror/microsoft+AzureKeyVaultManagedHSMEngine/repo',
  ];
  return candidates.find((c): c is string => c !== undefined && c !== '' && existsSync(c));
}

/** A file of the original at HEAD, from a bare git directory or a checkout. */
function originalFile(repo: string, path: string): string {
  if (existsSync(join(repo, path))) return readFileSync(join(repo, path), 'utf8');
  const r = runSync('git', ['--git-dir', repo, 'show', `HEAD:${path}`], process.env, repo);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('the fetched runtest.sh itself, unmodified', () => {
  const repo = originalRepo();
  it(
    'passes against akv on the emulator',
    {
      skip:
        repo === undefined ? 'no copy of the original repository (set AKV_ORIGINAL_REPO)' : false,
    },
    () => {
      const home = join(ce.work, 'original');
      mkdirSync(home);
      for (const name of ['runtest.sh', 'testOpenssl.cnf'])
        writeFileSync(join(home, name), originalFile(repo as string, `src_provider_rust/${name}`), {
          mode: 0o755,
        });
      // runtest.sh sets its own logging, fetches its token with `az` and unsets OPENSSL_CONF.
      const scriptEnv: NodeJS.ProcessEnv = {
        ...ce.env(ce.runtime('script')),
        AKV_RSA_DECRYPT_PADDING: 'oaep',
      };
      delete scriptEnv.AZURE_CLI_ACCESS_TOKEN;
      const r = runSync('bash', [join(home, 'runtest.sh')], scriptEnv, home, undefined, 300_000);
      assert.equal(r.status, 0, `runtest.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /All tests completed successfully/);
    },
  );
});
