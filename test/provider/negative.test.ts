/**
 * Failures a person runs into, each through the real openssl command: malformed URIs, an unknown
 * key, a key whose key_ops forbid the operation, refused algorithms (SHA-1, a PSS salt the HSM
 * cannot make, private-key export), a throttled or hanging HSM, the agent down, the agent killed
 * in the middle of an operation, and garbage on the agent socket. Every case must end with a
 * non-zero exit status, no crash, and an error that says what to do.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../helpers/agent.js';
import { cleanAkvEnv } from '../helpers/dev.js';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import {
  assertCleanFailure,
  OPENSSL,
  PROVIDER_MODULES_DIR,
  PROVIDERS,
  runAsync as runOpensslAsync,
  runSync,
  type Run,
} from './openssl-env.js';

const HSM = 'neghsm';
let emulator: RunningEmulator;
let agent: RunningAgent;
let work: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'akv-negative-'));
  emulator = await startEmulator();
  agent = await startAgent({
    emulator,
    hsmName: HSM,
    // Short deadline and fast retries keep the HSM-fault cases quick.
    extraConfig: { deadlineMs: 2500, retry: { maxRetries: 3, baseDelayMs: 10, maxDelayMs: 40 } },
  });
  // These tests stop and kill the agent on purpose: no autostart (test/provider/autostart.test.ts
  // covers it), so a missing agent is the error under test.
  env = {
    ...cleanAkvEnv(),
    AKV_AGENT_SOCKET: agent.socket,
    OPENSSL_MODULES: PROVIDER_MODULES_DIR,
    AKV_AGENT_AUTOSTART: '0',
  };
  delete env.OPENSSL_CONF;
  const keys = emulator.keyClient();
  await keys.createRsaKey('rsa', { keySize: 2048, hsm: true });
  await keys.createEcKey('ec', { curve: 'P-256', hsm: true });
  await keys.createRsaKey('verify-only', {
    keySize: 2048,
    hsm: true,
    keyOps: ['verify', 'encrypt'],
  });
  writeFileSync(join(work, 'data.txt'), 'negative tests\n');
});

after(async () => {
  await agent?.stop();
  await emulator?.stop();
  rmSync(work, { recursive: true, force: true });
});

function openssl(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Run {
  return runSync(OPENSSL, args, { ...env, ...extraEnv }, work, undefined, 60_000);
}

const sign = (uri: string, extra: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Run =>
  openssl(
    [
      'dgst',
      '-sha256',
      ...PROVIDERS,
      '-sign',
      uri,
      ...extra,
      '-out',
      join(work, 'sig.bin'),
      'data.txt',
    ],
    extraEnv,
  );

describe('bad input', () => {
  it('malformed URIs are refused with the accepted forms', () => {
    for (const uri of [
      'managedhsm::key',
      'managedhsm:x:key',
      `managedhsm:${HSM}:bad_name`,
      `managedhsm:${HSM}:rsa?version=nothex`,
      'akv:name=rsa',
      `keyvault:${HSM}:a:b`,
    ]) {
      const r = openssl(['pkey', ...PROVIDERS, '-in', uri, '-pubout']);
      assertCleanFailure(
        r,
        /(malformed key URI|invalid (key )?URI).*Accepted forms|Accepted forms/s,
        uri,
      );
    }
  });

  it('an unknown key says so and how to list the keys', () => {
    const r = sign(`managedhsm:${HSM}:no-such-key`);
    assertCleanFailure(r, /key not found.*no-such-key/s, 'unknown key');
  });

  it('a key whose key_ops exclude sign cannot sign, and says which operations it allows', () => {
    const r = sign(`managedhsm:${HSM}:verify-only`);
    assertCleanFailure(r, /does not allow sign \(its key_ops: .*verify/, 'verify-only key');
    const d = openssl([
      'pkeyutl',
      ...PROVIDERS,
      '-decrypt',
      '-inkey',
      `managedhsm:${HSM}:verify-only`,
      '-in',
      'data.txt',
    ]);
    assertCleanFailure(d, /does not allow decrypt/, 'decrypt with a verify-only key');
  });

  it('SHA-1 signatures are refused with the digests to use instead', () => {
    const r = openssl([
      'dgst',
      '-sha1',
      ...PROVIDERS,
      '-sign',
      `managedhsm:${HSM}:rsa`,
      '-out',
      'sig.bin',
      'data.txt',
    ]);
    assertCleanFailure(r, /SHA-1 signatures are refused.*SHA-256/, 'sha1');
  });

  it('a PSS salt length other than the digest length is refused with the option to use', () => {
    for (const salt of ['max', '20']) {
      const r = sign(`managedhsm:${HSM}:rsa`, [
        '-sigopt',
        'rsa_padding_mode:pss',
        '-sigopt',
        `rsa_pss_saltlen:${salt}`,
      ]);
      assertCleanFailure(
        r,
        /salt length .* not supported.*rsa_pss_saltlen:digest/,
        `saltlen ${salt}`,
      );
    }
  });

  it('RSA pkeyutl -sign without a digest algorithm asks for -pkeyopt digest', () => {
    writeFileSync(join(work, 'digest.bin'), Buffer.alloc(32, 7));
    const r = openssl([
      'pkeyutl',
      ...PROVIDERS,
      '-sign',
      '-inkey',
      `managedhsm:${HSM}:rsa`,
      '-in',
      'digest.bin',
    ]);
    assertCleanFailure(r, /-pkeyopt digest:sha256/, 'pkeyutl without digest');
  });

  it('the private key cannot be exported; the public key can', () => {
    const r = openssl(['pkey', ...PROVIDERS, '-in', `managedhsm:${HSM}:ec`, '-out', 'private.pem']);
    assertCleanFailure(r, /stays in the HSM.*-pubout/, 'private export');
    const ok = openssl(['pkey', ...PROVIDERS, '-in', `managedhsm:${HSM}:ec`, '-pubout']);
    assert.equal(ok.status, 0, ok.stderr);
  });

  it('a malformed key-reference file names the problem and how to rewrite it', () => {
    // Valid PEM framing and label, DER that is not an AKVKeyReference (version 2).
    const der = Buffer.from([0x30, 0x08, 0x02, 0x01, 0x02, 0x0c, 0x00, 0x0c, 0x01, 0x78]);
    const pem = `-----BEGIN AKV KEY REFERENCE-----\n${der.toString('base64')}\n-----END AKV KEY REFERENCE-----\n`;
    writeFileSync(join(work, 'bad.ref.pem'), pem);
    const r = openssl(['pkey', ...PROVIDERS, '-in', 'bad.ref.pem', '-pubout']);
    assertCleanFailure(r, /AKV KEY REFERENCE block is malformed.*akv keyref/, 'bad keyref');
  });
});

describe('HSM faults surface through the agent', () => {
  it('a throttled HSM: the agent retries, then the error says so', async () => {
    await emulator.setFaults({ mode: 'throttle', count: 1000, operations: ['sign'] });
    try {
      const r = sign(`managedhsm:${HSM}:ec`);
      assertCleanFailure(r, /HSM throttled.*(retried|retries)/is, 'throttled');
    } finally {
      await emulator.clearFaults();
    }
  });

  it('a hanging HSM ends at the agent deadline with a timeout error, not a hang', async () => {
    await emulator.setFaults({ mode: 'hang', operations: ['sign'] });
    try {
      const r = sign(`managedhsm:${HSM}:rsa`);
      assertCleanFailure(r, /TIMEOUT|did not answer|deadline/i, 'hang');
    } finally {
      await emulator.clearFaults();
    }
  });
});

describe('agent trouble', () => {
  it('agent down: the error names the socket and how to start the agent', () => {
    const r = sign(`managedhsm:${HSM}:rsa`, [], {
      AKV_AGENT_SOCKET: join(work, 'nobody-here.sock'),
    });
    assertCleanFailure(
      r,
      /akv agent not reachable at .*nobody-here\.sock.*it is not started automatically: AKV_AGENT_AUTOSTART=0.*; hint: .*akv agent/,
      'agent down',
    );
  });

  it('garbage on the agent socket is reported as such', async () => {
    const path = join(work, 'garbage.sock');
    const server: Server = createServer((socket) => {
      socket.on('data', () => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const r = await runAsync(['pkey', ...PROVIDERS, '-in', `managedhsm:${HSM}:rsa`, '-pubout'], {
        AKV_AGENT_SOCKET: path,
      });
      assertCleanFailure(r, /invalid frame header \(magic\)/, 'garbage');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('agent killed in the middle of an operation: clean error, and a restarted agent serves again', async () => {
    // The HSM holds the sign request (until the agent's deadline): the agent is mid-operation.
    await emulator.setFaults({ mode: 'hang', operations: ['sign'] });
    await emulator.resetStats();
    try {
      const pending = runAsync([
        'dgst',
        '-sha256',
        ...PROVIDERS,
        '-sign',
        `managedhsm:${HSM}:rsa`,
        '-out',
        join(work, 'killed.sig'),
        'data.txt',
      ]);
      for (let i = 0; i < 400 && ((await emulator.stats()).requests.sign ?? 0) === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.ok(
        ((await emulator.stats()).requests.sign ?? 0) > 0,
        'the sign request never reached the HSM',
      );
      await agent.kill('SIGKILL');
      const r = await pending;
      assertCleanFailure(r, /akv agent|connection to the akv agent/, 'agent killed');
    } finally {
      await emulator.clearFaults();
    }
    await agent.restart();
    const again = sign(`managedhsm:${HSM}:rsa`);
    assert.equal(again.status, 0, again.stderr);
  });
});

/** Runs openssl without blocking the event loop (a test-side server must keep answering). */
function runAsync(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runOpensslAsync(OPENSSL, args, { ...env, ...extraEnv }, work);
}
