/**
 * A key-reference file (`akv keyref`) whose key cannot be used says why (issue 18, item 7). OpenSSL
 * 3.0's file store dropped the decoder's error, so `openssl pkey -in missing.pem` printed only
 * "STORE routines::unsupported"; the failure now travels as a key that raises the agent's own
 * message at its first use (provider/src/decoder.c). Runs on every OpenSSL the runner is given.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertCleanFailure } from '../provider/openssl-env.js';
import { originalStyleCnf, startCompatEnv, type CompatEnv } from './compat-env.js';

const HSM = 'refhsm';
let ce: CompatEnv;
let env: NodeJS.ProcessEnv;

before(async () => {
  ce = await startCompatEnv('keyref', HSM);
  const cnf = ce.file('openssl.cnf');
  writeFileSync(cnf, originalStyleCnf(undefined));
  env = ce.env(ce.runtime('keyref'), { OPENSSL_CONF: cnf });
  ce.akv(['key', 'create', '--hsm-name', HSM, '--name', 'present', '--kty', 'EC-HSM'], env);
  ce.akv(['keyref', `managedhsm:${HSM}:present`, '--out', ce.file('present.pem')], env);
  ce.akv(['keyref', `managedhsm:${HSM}:nosuchkey`, '--out', ce.file('missing.pem')], env);
  writeFileSync(ce.file('data.txt'), 'signed with a key that is not there\n');
});

after(async () => {
  await ce?.close();
});

const NOT_FOUND = /managedhsm:refhsm:nosuchkey does not exist \(404 KeyNotFound\)/;

describe('a key-reference file of a missing key', () => {
  it('openssl pkey -in missing.pem -pubout', () => {
    const r = ce.openssl(['pkey', '-in', ce.file('missing.pem'), '-pubout'], env);
    assertCleanFailure(r, NOT_FOUND, 'pkey -pubout');
    assert.match(r.stderr, /akv key list --hsm-name refhsm/);
  });

  it('openssl pkey -in missing.pem', () => {
    assertCleanFailure(ce.openssl(['pkey', '-in', ce.file('missing.pem')], env), NOT_FOUND, 'pkey');
  });

  it('openssl dgst -sign missing.pem', () => {
    const r = ce.openssl(
      [
        'dgst',
        '-sha256',
        '-sign',
        ce.file('missing.pem'),
        '-out',
        ce.file('x.sig'),
        ce.file('data.txt'),
      ],
      env,
    );
    assertCleanFailure(r, NOT_FOUND, 'dgst -sign');
  });

  it('openssl req -new -key missing.pem', () => {
    const r = ce.openssl(['req', '-new', '-key', ce.file('missing.pem'), '-subj', '/CN=x'], env);
    assertCleanFailure(r, NOT_FOUND, 'req -new');
  });

  it('with no agent to ask, the file says that instead', () => {
    const r = ce.openssl(['pkey', '-in', ce.file('missing.pem'), '-pubout'], {
      ...env,
      AKV_AGENT_AUTOSTART: '0',
      AKV_AGENT_SOCKET: join(ce.work, 'nobody-here', 'agent.sock'),
    });
    assertCleanFailure(
      r,
      /akv_provider:.*akv agent not reachable at .*nobody-here\/agent\.sock/,
      'no agent',
    );
    assert.match(r.stderr, /hint: start it/);
  });

  it('a file of a key that exists still works', () => {
    const r = ce.opensslOk(['pkey', '-in', ce.file('present.pem'), '-pubout'], env);
    assert.match(r.stdout, /BEGIN PUBLIC KEY/);
    ce.opensslOk(
      [
        'dgst',
        '-sha256',
        '-sign',
        ce.file('present.pem'),
        '-out',
        ce.file('ok.sig'),
        ce.file('data.txt'),
      ],
      env,
    );
  });
});
