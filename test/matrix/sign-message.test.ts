/**
 * The OpenSSL 3.4+ signature API (EVP_PKEY_sign_message_init, EVP_PKEY_sign_init_ex2) with the
 * composite RSA-SHA256/384/512 and ECDSA-SHA256/384/512 algorithms, through
 * provider/tools/sign_message.c built against the OpenSSL this run selects (openssl-env.ts):
 * each signs in the HSM and verifies with the public key; the default provider's composite given
 * an HSM key fails with akv's reason. On OpenSSL < 3.4 the API does not exist: the driver says so.
 */
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  makeProvider,
  OPENSSL,
  PROVIDER_BUILD_DIR,
  PROVIDER_DIR,
  runSync,
  startProviderEnv,
  type ProviderEnv,
} from '../provider/openssl-env.js';

const DRIVER = join(PROVIDER_BUILD_DIR, 'sign_message');
let pe: ProviderEnv;
let env: NodeJS.ProcessEnv;
let hasApi: boolean;

before(async () => {
  makeProvider('all');
  makeProvider(relative(PROVIDER_DIR, DRIVER));
  pe = await startProviderEnv('sign-message', 'signmsghsm');
  env = { ...pe.env, OPENSSL_CONF: pe.writeOpensslCnf() };
  const version = /OpenSSL (\d+)\.(\d+)/.exec(pe.opensslOk(['version']).stdout);
  assert.ok(version, 'openssl version printed no version');
  hasApi = Number(version[1]) * 100 + Number(version[2]) >= 304;
  pe.createKey('rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('ec', '--kty', 'EC-HSM', '--curve', 'P-256');
});

after(async () => {
  await pe?.down();
});

describe(`sign_message API with ${OPENSSL}`, () => {
  for (const key of ['rsa', 'ec']) {
    it(`${key}: composite algorithms sign in the HSM, verify, and the default provider's refuse`, () => {
      const r = runSync(DRIVER, [`managedhsm:${pe.hsm}:${key}`], env, pe.dir);
      if (!hasApi) {
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /no sign_message API \(3\.4\+\)/);
        return;
      }
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      const passes = r.stdout.split('\n').filter((l) => l.startsWith('PASS '));
      assert.equal(passes.length, 12, r.stdout);
      assert.doesNotMatch(r.stdout, /^FAIL/m);
    });
  }
});
