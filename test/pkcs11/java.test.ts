/**
 * Java's SunPKCS11 with libakv_pkcs11.so against the emulator and agent: a SunPKCS11
 * configuration naming the module; `keytool -list` shows the keys that have a certificate (named
 * with `akv pkcs11 set-certificate`); `jarsigner` signs a jar with an HSM RSA key and an HSM EC
 * key and `jarsigner -verify` accepts it (and rejects the jar once a signed file changed); a small
 * Java TLS server (test/pkcs11/java/AkvTlsServer.java) on 127.0.0.1 holding an HSM key completes
 * TLS 1.3 and TLS 1.2 handshakes with curl.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';
import {
  freePort,
  PROVIDERS,
  startProviderEnv,
  type ProviderEnv,
} from '../provider/openssl-env.js';
import { makeModule, MODULE, run, runOk } from './pkcs11-env.js';

let pe: ProviderEnv;
const HSM = 'javahsm';
const SERVER = join(REPO_ROOT, 'test', 'pkcs11', 'java', 'AkvTlsServer.java');
const servers: ChildProcess[] = [];

/** keytool/jarsigner options that open the HSM token as a PKCS11 keystore (no PIN). */
function keystore(): string[] {
  return [
    '-keystore',
    'NONE',
    '-storetype',
    'PKCS11',
    '-providerClass',
    'sun.security.pkcs11.SunPKCS11',
    '-providerArg',
    pe.file('sunpkcs11.cfg'),
    '-storepass',
    '',
  ];
}

/** A certificate for the HSM key (CN and SAN localhost, for curl), named in the agent config. */
function certify(key: string): void {
  const cert = pe.file(`${key}.crt`);
  pe.opensslOk([
    'req',
    '-new',
    '-x509',
    ...PROVIDERS,
    '-key',
    `managedhsm:${HSM}:${key}`,
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-days',
    '2',
    '-out',
    cert,
  ]);
  runOk(pe, AKV_BIN, [
    'pkcs11',
    'set-certificate',
    '--hsm-name',
    HSM,
    '--key',
    key,
    '--cert',
    cert,
  ]);
}

async function startServer(key: string): Promise<number> {
  const port = await freePort();
  const proc = spawn('java', [SERVER, pe.file('sunpkcs11.cfg'), key, String(port)], {
    cwd: pe.dir,
    env: pe.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(proc);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`java server did not start:\n${out}`)),
      120_000,
    );
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`java server exited (${code}):\n${out}`));
    });
  });
  return port;
}

before(async () => {
  makeModule();
  pe = await startProviderEnv('pkcs11-java', HSM);
  pe.createKey('java-rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('java-ec', '--kty', 'EC-HSM', '--curve', 'P-256');
  pe.createKey('no-cert', '--kty', 'EC-HSM', '--curve', 'P-384');
  certify('java-rsa');
  certify('java-ec');
  process.kill(Number(readFileSync(join(pe.dir, 'dev', 'agent.pid'), 'utf8').trim()), 'SIGHUP');
  writeFileSync(pe.file('sunpkcs11.cfg'), `name = akv\nlibrary = ${MODULE}\nslotListIndex = 0\n`);
  writeFileSync(pe.file('hello.txt'), 'signed in the HSM\n');
  runOk(pe, 'jar', ['cf', pe.file('app.jar'), '-C', pe.dir, 'hello.txt']);
});

after(async () => {
  for (const s of servers) {
    if (s.exitCode === null) {
      const exited = new Promise((r) => s.on('exit', r));
      s.kill('SIGTERM');
      await exited;
    }
  }
  await pe?.down();
});

describe('keytool and jarsigner', () => {
  it('keytool -list shows the keys with a certificate as PrivateKeyEntry (a key without one is not a keystore entry)', async () => {
    let out = '';
    for (let i = 0; i < 50 && !/java-ec, PrivateKeyEntry/.test(out); i++) {
      await new Promise((r) => setTimeout(r, 100));
      out = run(pe, 'keytool', ['-list', ...keystore()]).stdout;
    }
    assert.match(out, /Keystore provider: SunPKCS11-akv/);
    assert.match(out, /Your keystore contains 2 entries/);
    assert.match(out, /java-rsa, PrivateKeyEntry/);
    assert.match(out, /java-ec, PrivateKeyEntry/);
    assert.doesNotMatch(out, /no-cert/);
    const fingerprint = pe
      .opensslOk(['x509', '-in', pe.file('java-ec.crt'), '-noout', '-fingerprint', '-sha256'])
      .stdout.split('=')[1]
      ?.trim();
    assert.ok(fingerprint && out.includes(fingerprint), `${fingerprint} not in:\n${out}`);
  });

  for (const [key, alg] of [
    ['java-rsa', 'SHA256withRSA'],
    ['java-ec', 'SHA256withECDSA'],
  ] as const) {
    it(`jarsigner signs with ${key}; jarsigner -verify accepts it and rejects a changed file`, () => {
      const signed = pe.file(`${key}.jar`);
      runOk(pe, 'jarsigner', [...keystore(), '-signedjar', signed, pe.file('app.jar'), key], {
        timeoutMs: 180_000,
      });
      const v = runOk(pe, 'jarsigner', ['-verify', '-verbose', '-certs', signed], {
        timeoutMs: 180_000,
      });
      assert.match(v.stdout, /jar verified\./);
      assert.match(v.stdout, new RegExp(`Signature algorithm: ${alg}`));
      assert.match(v.stdout, /Signed by "CN=localhost"/);
      // the signature covers hello.txt: change it in the signed jar and verification fails
      writeFileSync(pe.file('hello.txt'), 'changed after signing\n');
      const tampered = pe.file(`${key}-tampered.jar`);
      writeFileSync(tampered, readFileSync(signed));
      runOk(pe, 'jar', ['uf', tampered, '-C', pe.dir, 'hello.txt']);
      writeFileSync(pe.file('hello.txt'), 'signed in the HSM\n');
      const bad = run(pe, 'jarsigner', ['-verify', tampered], { timeoutMs: 180_000 });
      assert.doesNotMatch(bad.stdout, /^jar verified\./m);
      assert.match(bad.stdout + bad.stderr, /SHA-256 digest error|SecurityException|invalid/i);
    });
  }
});

describe('a Java TLS server with an HSM key, and curl', () => {
  for (const key of ['java-rsa', 'java-ec']) {
    it(`${key}: curl completes TLS 1.3 and TLS 1.2 handshakes and verifies the certificate`, async () => {
      const port = await startServer(key);
      const url = `https://localhost:${port}/`;
      const resolve = [
        '--resolve',
        `localhost:${port}:127.0.0.1`,
        '--cacert',
        pe.file(`${key}.crt`),
      ];
      const tls13 = runOk(pe, 'curl', ['-sS', '--tlsv1.3', ...resolve, url]);
      assert.match(tls13.stdout, new RegExp(`^hello from java: ${key} TLSv1\\.3 TLS_`));
      const tls12 = runOk(pe, 'curl', ['-sS', '--tlsv1.2', '--tls-max', '1.2', ...resolve, url]);
      const suite = key === 'java-rsa' ? 'TLS_ECDHE_RSA_' : 'TLS_ECDHE_ECDSA_';
      assert.match(tls12.stdout, new RegExp(`^hello from java: ${key} TLSv1\\.2 ${suite}`));
    });
  }
});
