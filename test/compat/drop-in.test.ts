/**
 * What a user of the original provider (microsoft/AzureKeyVaultManagedHSMEngine) brings along,
 * tried one thing at a time (issue 18, items 1-8; docs/migrating.md): its numeric AKV_LOG_LEVEL,
 * its AKV_LOG_FILE, its module file name, its RSA decryption default, its other environment
 * variables, its lenient akv: URIs, and URIs that name an HSM but no key (a key-reference file of a
 * missing key: missing-keyref.test.ts). Every command is the user's own `openssl`, against the emulator.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  MAKE_OPENSSL_ARGS,
  PROVIDER_DIR,
  PROVIDER_MODULES_DIR,
  assertCleanFailure,
  runSync,
} from '../provider/openssl-env.js';
import { startCompatEnv, originalStyleCnf, type CompatEnv } from './compat-env.js';

const HSM = 'compathsm';
let ce: CompatEnv;
let shared: string;
const P = ['-provider', 'akv_provider', '-provider', 'default'];
const rsa = `managedhsm:${HSM}:myrsakey`;
const ec = `managedhsm:${HSM}:ecckey`;

before(async () => {
  ce = await startCompatEnv('compat', HSM);
  shared = ce.runtime('shared');
  const env = ce.env(shared);
  ce.akv(
    [
      'key',
      'create',
      '--hsm-name',
      HSM,
      '--name',
      'myrsakey',
      '--kty',
      'RSA-HSM',
      '--size',
      '2048',
    ],
    env,
  );
  ce.akv(
    ['key', 'create', '--hsm-name', HSM, '--name', 'ecckey', '--kty', 'EC-HSM', '--curve', 'P-256'],
    env,
  );
  writeFileSync(ce.file('input.bin'), 'Azure Managed HSM signing test\n');
  ce.opensslOk(['pkey', ...P, '-in', rsa, '-pubout', '-out', ce.file('rsa_pub.pem')], env);
});

after(async () => {
  await ce?.close();
});

const lines = (path: string): string[] =>
  existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];

describe('1. AKV_LOG_LEVEL takes the original numbers 0-3 (0 error, 1 info, 2 debug, 3 trace)', () => {
  it('AKV_LOG_LEVEL=3, as runtest.sh sets it: the autostarted agent starts and both log in detail', () => {
    const run = ce.runtime('level3');
    const log = ce.file('level3-provider.log');
    ce.opensslOk(
      ['pkey', ...P, '-in', ec, '-pubout'],
      ce.env(run, { AKV_LOG_LEVEL: '3', AKV_LOG_FILE: log }),
    );
    assert.ok(
      lines(log).some((l) => / debug provider settings: /.test(l)),
      `3 is the most detailed level: the provider logs debug lines:\n${lines(log).join('\n')}`,
    );
    const agentLog = lines(join(run, 'akv', 'agent.log'));
    assert.ok(
      agentLog.some((l) => l.includes('"level":"debug"')),
      `the agent took 3 as trace too:\n${agentLog.join('\n')}`,
    );
  });

  it('0 logs errors only and 1 adds info without debug', () => {
    for (const [level, info, debug] of [
      ['0', false, false],
      ['1', true, false],
      ['2', true, true],
    ] as const) {
      const log = ce.file(`level${level}.log`);
      ce.opensslOk(
        ['pkey', ...P, '-in', ec, '-pubout'],
        ce.env(shared, { AKV_LOG_LEVEL: level, AKV_LOG_FILE: log }),
      );
      const text = lines(log).join('\n');
      assert.equal(/ info op=describe /.test(text), info, `level ${level}, info lines:\n${text}`);
      assert.equal(/ debug /.test(text), debug, `level ${level}, debug lines:\n${text}`);
    }
  });

  it('the akv command takes the numbers too', () => {
    const r = ce.akv(['key', 'list', '--hsm-name', HSM], ce.env(shared, { AKV_LOG_LEVEL: '2' }));
    assert.match(r.stdout, /myrsakey/);
  });

  it('a level the agent cannot read does not stop the agent the provider starts: it is a warning in its log', () => {
    const run = ce.runtime('badlevel');
    ce.opensslOk(['pkey', ...P, '-in', ec, '-pubout'], ce.env(run, { AKV_LOG_LEVEL: 'verbose' }));
    const agentLog = lines(join(run, 'akv', 'agent.log')).join('\n');
    assert.match(agentLog, /AKV_LOG_LEVEL=verbose is not a log level/);
  });
});

describe("2. AKV_LOG_FILE is the provider's; the agent it starts logs to its own file", () => {
  it('the provider file holds only provider text lines; agent.log beside the socket holds the agent JSON', () => {
    const run = ce.runtime('logfile');
    const log = ce.file('logfile-provider.log');
    ce.opensslOk(
      ['dgst', '-sha256', '-sign', ec, ...P, '-out', ce.file('lf.sig'), ce.file('input.bin')],
      ce.env(run, { AKV_LOG_LEVEL: '3', AKV_LOG_FILE: log }),
    );
    const provider = lines(log);
    assert.ok(provider.length > 0, 'the provider wrote its log');
    for (const l of provider)
      assert.match(l, /^\d{4}-\d\d-\d\dT[\d:.]+Z akv_provider pid=\d+ /, `a provider line: ${l}`);
    const agent = lines(join(run, 'akv', 'agent.log')).filter((l) => l.startsWith('{'));
    assert.ok(
      agent.some((l) => (JSON.parse(l) as { msg?: string }).msg === 'akv agent listening'),
      'the agent logged to DIR/akv/agent.log',
    );
  });
});

describe('3. the module is also libakv_provider.so, the original name', () => {
  it('the build tree has the links (libakv_provider.so, and libakv_provider: OpenSSL adds no suffix to `module =`)', () => {
    for (const name of ['libakv_provider.so', 'libakv_provider']) {
      const link = join(PROVIDER_MODULES_DIR, name);
      assert.ok(lstatSync(link).isSymbolicLink(), `${link} is a link`);
      assert.equal(readlinkSync(link), 'akv_provider.so');
    }
  });

  it("the README's quick test: OPENSSL_CONF=testOpenssl.cnf, then openssl req with no -provider", () => {
    const cnf = ce.file('testOpenssl.cnf');
    writeFileSync(
      cnf,
      originalStyleCnf(
        'libakv_provider',
        [],
        [
          '[req]',
          'distinguished_name = req_distinguished_name',
          'prompt = no',
          '[req_distinguished_name]',
          'CN = www.Contoso.com',
        ],
      ),
    );
    const env = ce.env(shared, { OPENSSL_CONF: cnf });
    for (const key of ['myrsakey', 'ecckey']) {
      const out = ce.file(`quick-${key}.csr`);
      ce.opensslOk(
        ['req', '-new', '-key', `managedhsm:${HSM}:${key}`, '-subj', '/CN=Test', '-out', out],
        env,
      );
      ce.opensslOk(['req', '-in', out, '-noout', '-verify'], env);
    }
  });

  it("testOpenssl.cnf's `module = libakv_provider` and the examples' absolute .../libakv_provider.so load akv", () => {
    for (const module of ['libakv_provider', join(PROVIDER_MODULES_DIR, 'libakv_provider.so')]) {
      // no -provider on these command lines: the configuration alone must load akv
      const cnf = ce.file(`module-${module.length}.cnf`);
      writeFileSync(cnf, originalStyleCnf(module));
      const r = ce.opensslOk(
        ['dgst', '-sha256', '-sign', ec, '-out', ce.file('m.sig'), ce.file('input.bin')],
        ce.env(shared, { OPENSSL_CONF: cnf }),
      );
      assert.equal(r.stderr, '');
      const list = ce.opensslOk(['list', '-providers'], ce.env(shared, { OPENSSL_CONF: cnf }));
      assert.match(list.stdout, /akv_provider/);
    }
  });

  it('make install puts the link beside the module', () => {
    const dest = mkdtempSync(join(ce.work, 'destdir-'));
    const r = runSync(
      'make',
      [
        '-s',
        '-C',
        PROVIDER_DIR,
        'install',
        `DESTDIR=${dest}`,
        `BUILD=${join(dest, 'build')}`,
        ...MAKE_OPENSSL_ARGS,
      ],
      process.env,
      ce.work,
    );
    assert.equal(r.status, 0, r.stderr);
    const modules = /MODULESDIR: "([^"]+)"/.exec(
      runSync('openssl', ['version', '-m'], process.env, ce.work).stdout,
    )?.[1];
    assert.ok(modules);
    for (const name of ['libakv_provider.so', 'libakv_provider']) {
      const link = join(dest, modules, name);
      assert.ok(lstatSync(link).isSymbolicLink(), `${link} is a link`);
      assert.equal(readlinkSync(link), 'akv_provider.so');
    }
    assert.ok(existsSync(join(dest, modules, 'akv_provider.so')));
  });
});

describe('4. RSA decryption: PKCS#1 v1.5 by default, OAEP by a setting, and a failure that says so', () => {
  const encrypt = (out: string, padding: string[]): void => {
    ce.opensslOk(
      [
        'pkeyutl',
        '-encrypt',
        '-pubin',
        '-inkey',
        ce.file('rsa_pub.pem'),
        '-in',
        ce.file('input.bin'),
        '-out',
        ce.file(out),
        ...padding,
      ],
      ce.env(shared),
    );
  };
  const decrypt = (input: string, env: NodeJS.ProcessEnv) =>
    ce.openssl(
      [
        'pkeyutl',
        '-decrypt',
        ...P,
        '-inkey',
        rsa,
        '-in',
        ce.file(input),
        '-out',
        ce.file(`${input}.out`),
      ],
      env,
    );

  before(() => {
    // runtest.sh's "RSA OAEP encrypt" line
    encrypt('oaep.bin', [
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha1',
      '-pkeyopt',
      'rsa_mgf1_md:sha1',
    ]);
    encrypt('pkcs1.bin', []);
  });

  it("the original's OAEP ciphertext, decrypted without -pkeyopt, fails with what to do", () => {
    const r = decrypt('oaep.bin', ce.env(shared));
    assertCleanFailure(r, /-pkeyopt rsa_padding_mode:oaep/, 'default decryption of OAEP data');
    assert.match(r.stderr, /rsa_decrypt_padding = oaep/);
    assert.match(r.stderr, /AKV_RSA_DECRYPT_PADDING=oaep/);
  });

  it('AKV_RSA_DECRYPT_PADDING=oaep makes OAEP the default', () => {
    const r = decrypt('oaep.bin', ce.env(shared, { AKV_RSA_DECRYPT_PADDING: 'oaep' }));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readFileSync(ce.file('oaep.bin.out')), readFileSync(ce.file('input.bin')));
  });

  it("rsa_decrypt_padding = oaep in the provider's openssl.cnf section makes OAEP the default", () => {
    const cnf = ce.file('oaep.cnf');
    writeFileSync(cnf, originalStyleCnf(undefined, ['rsa_decrypt_padding = oaep']));
    const r = ce.openssl(
      [
        'pkeyutl',
        '-decrypt',
        '-inkey',
        rsa,
        '-in',
        ce.file('oaep.bin'),
        '-out',
        ce.file('cnf.out'),
      ],
      ce.env(shared, { OPENSSL_CONF: cnf }),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readFileSync(ce.file('cnf.out')), readFileSync(ce.file('input.bin')));
  });

  it('PKCS#1 v1.5 stays the default, and an explicit padding beats the setting', () => {
    assert.equal(decrypt('pkcs1.bin', ce.env(shared)).status, 0);
    const r = ce.openssl(
      [
        'pkeyutl',
        '-decrypt',
        ...P,
        '-inkey',
        rsa,
        '-in',
        ce.file('pkcs1.bin'),
        '-pkeyopt',
        'rsa_padding_mode:pkcs1',
      ],
      ce.env(shared, { AKV_RSA_DECRYPT_PADDING: 'oaep' }),
    );
    assert.equal(r.status, 0, r.stderr);
  });

  it('a padding akv does not know is refused, naming the variable', () => {
    const r = decrypt('pkcs1.bin', ce.env(shared, { AKV_RSA_DECRYPT_PADDING: 'oaep256' }));
    assertCleanFailure(
      r,
      /AKV_RSA_DECRYPT_PADDING=oaep256 is not an RSA decryption padding/,
      'bad padding',
    );
  });
});

describe("5. the original's environment variables: honoured, or one warning naming akv's way", () => {
  const sign = (env: NodeJS.ProcessEnv) =>
    ce.opensslOk(
      ['dgst', '-sha256', '-sign', ec, ...P, '-out', ce.file('w.sig'), ce.file('input.bin')],
      env,
    );

  for (const [name, value, pattern] of [
    ['AKV_DEFAULT_VAULT', 'ManagedHSMOpenSSLEngine', /managedhsm:NAME:KEY/],
    ['AZURE_MANAGEDHSM_URL', 'https://x.managedhsm.azure.net', /vaults\.NAME\.endpoint/],
    ['RUST_LOG', 'akv_provider=debug,reqwest=warn', /AKV_LOG_FILE=PATH/],
  ] as const) {
    it(`${name} (not usable here): exactly one warning, and the command works`, () => {
      const r = sign(ce.env(shared, { [name]: value }));
      const warnings = r.stderr.split('\n').filter((l) => l.includes(`warning: ${name} is set`));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0] ?? '', pattern);
    });
  }

  it("AKV_PROVIDER_LOG (the original README's name) is the log file, RUST_LOG its level", () => {
    const log = ce.file('provider-log.log');
    const r = sign(
      ce.env(shared, { AKV_PROVIDER_LOG: log, RUST_LOG: 'akv_provider=debug,reqwest=warn' }),
    );
    assert.equal(r.stderr, '');
    assert.ok(
      lines(log).some((l) => / debug /.test(l)),
      lines(log).join('\n'),
    );
  });

  it('AZURE_CLI_ACCESS_TOKEN, AKV_LOG_FILE and AKV_LOG_LEVEL work without a warning', () => {
    const r = sign(ce.env(shared, { AKV_LOG_FILE: ce.file('quiet.log'), AKV_LOG_LEVEL: '2' }));
    assert.equal(r.stderr, '');
  });
});

describe('6. akv: URIs: unknown and repeated fields are refused, saying the original accepted them', () => {
  it("a misspelt field names itself, the likely field and the original's leniency", () => {
    const r = ce.openssl(
      [
        'pkey',
        ...P,
        '-in',
        `akv:vault=${HSM},name=ecckey,verison=0123456789abcdef0123456789abcdef`,
        '-pubout',
      ],
      ce.env(shared),
    );
    assertCleanFailure(r, /unknown field "verison" \(did you mean version=\?\)/, 'misspelt field');
    assert.match(r.stderr, /original Managed HSM provider ignored unknown fields/);
  });

  it('a repeated field is refused, saying the original let the last one win', () => {
    const r = ce.openssl(
      ['pkey', ...P, '-in', `akv:vault=${HSM},name=ecckey,name=myrsakey`, '-pubout'],
      ce.env(shared),
    );
    assertCleanFailure(r, /field "name" is given twice/, 'repeated field');
    assert.match(r.stderr, /original Managed HSM provider let the last one win/);
  });
});

describe('8. a URI that names an HSM but no key says so', () => {
  for (const uri of [`managedhsm:${HSM}`, `akv:vault=${HSM}`]) {
    it(`openssl pkey -in ${uri}`, () => {
      const r = ce.openssl(['pkey', ...P, '-in', uri, '-pubout'], ce.env(shared));
      assertCleanFailure(r, /names an HSM or vault but no key/, uri);
      assert.match(r.stderr, uri.startsWith('akv:') ? /,name=KEY/ : /:KEY/);
    });
  }

  it("listing the HSM's keys still works (openssl storeutl)", () => {
    const r = ce.opensslOk(['storeutl', ...P, `managedhsm:${HSM}:`], ce.env(shared));
    assert.match(r.stdout, /ecckey/);
  });
});
