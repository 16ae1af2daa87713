/**
 * OpenSSH with libakv_pkcs11.so against the emulator and agent, as docs/pkcs11.md shows it:
 * `ssh-keygen -D` prints the HSM keys' public keys (the same keys the provider exports);
 * `ssh-keygen -s CA.pub -D module` signs user certificates with an HSM CA key (EC and RSA);
 * a local sshd (its own config, host key and files in a temp dir, on a loopback port, -D in the
 * foreground) with TrustedUserCAKeys accepts those certificates and refuses one from another CA;
 * `ssh -I module` logs in with an HSM user key (RSA: CKM_RSA_PKCS over a SHA-512 DigestInfo; EC).
 * sshd must run as root to log a user in; run as another user, those tests are skipped.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { freePort, startProviderEnv, type ProviderEnv } from '../provider/openssl-env.js';
import { makeModule, MODULE, providerPublicKey, run, runOk } from './pkcs11-env.js';

let pe: ProviderEnv;
let sshd: ChildProcess | undefined;
let startLog = '';
let port = 0;
const isRoot = process.getuid?.() === 0;
const user = userInfo().username;

/** The module's keys as `ssh-keygen -D` prints them: comment (key name) -> "type base64". */
function moduleKeys(): Map<string, string> {
  const out = runOk(pe, 'ssh-keygen', ['-D', MODULE]).stdout;
  const keys = new Map<string, string>();
  for (const line of out.split('\n').filter((l) => l.trim() !== '')) {
    const [type, blob, comment] = line.split(' ');
    keys.set(comment ?? '', `${type} ${blob}`);
  }
  return keys;
}

function writePub(name: string, line: string): string {
  const file = pe.file(name);
  writeFileSync(file, `${line}\n`);
  return file;
}

async function waitForPort(p: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(p, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until)
      throw new Error(`sshd did not listen on ${p}:\n${startLog}${sshdLog()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What sshd logged so far (-E: one file, also for the connections' processes). */
function sshdLog(): string {
  return readFileSync(pe.file('sshd.log'), 'utf8');
}

function ssh(extra: string[]): ReturnType<typeof run> {
  return run(pe, 'ssh', [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=${pe.file('known_hosts')}`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-p',
    String(port),
    ...extra,
    `${user}@127.0.0.1`,
    'echo akv-ssh-login-ok',
  ]);
}

before(async () => {
  makeModule();
  pe = await startProviderEnv('pkcs11-ssh', 'sshhsm');
  pe.createKey('ssh-ca-ec', '--kty', 'EC-HSM', '--curve', 'P-256');
  pe.createKey('ssh-ca-rsa', '--kty', 'RSA-HSM', '--size', '3072');
  pe.createKey('user-rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('user-ec', '--kty', 'EC-HSM', '--curve', 'P-384');
  if (!isRoot) return;
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 }); // sshd's privsep dir
  runOk(pe, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', pe.file('host_ed25519')]);
  writePub('ca.pub', moduleKeys().get('ssh-ca-ec') ?? '');
  writeFileSync(pe.file('authorized_keys'), '');
  chmodSync(pe.file('authorized_keys'), 0o600);
  port = await freePort();
  writeFileSync(
    pe.file('sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${pe.file('host_ed25519')}`,
      `PidFile ${pe.file('sshd.pid')}`,
      `AuthorizedKeysFile ${pe.file('authorized_keys')}`,
      `TrustedUserCAKeys ${pe.file('ca.pub')}`,
      'AuthenticationMethods publickey',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  writeFileSync(pe.file('sshd.log'), '');
  sshd = spawn('/usr/sbin/sshd', ['-D', '-E', pe.file('sshd.log'), '-f', pe.file('sshd_config')], {
    cwd: pe.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  sshd.stderr?.on('data', (c: Buffer) => (startLog += c.toString()));
  await waitForPort(port, 15_000);
});

after(async () => {
  if (sshd && sshd.exitCode === null) {
    const exited = new Promise((r) => sshd?.on('exit', r));
    sshd.kill('SIGTERM');
    await exited;
  }
  await pe?.down();
});

describe('ssh-keygen', () => {
  it('ssh-keygen -D prints each HSM key as the provider exports it, with the key name', () => {
    const keys = moduleKeys();
    for (const [name, type] of [
      ['ssh-ca-ec', 'ecdsa-sha2-nistp256'],
      ['ssh-ca-rsa', 'ssh-rsa'],
      ['user-rsa', 'ssh-rsa'],
      ['user-ec', 'ecdsa-sha2-nistp384'],
    ]) {
      const fromModule = keys.get(name ?? '');
      assert.ok(fromModule?.startsWith(`${type} `), `${name}: ${fromModule}`);
      const fromProvider = runOk(pe, 'ssh-keygen', [
        '-i',
        '-m',
        'PKCS8',
        '-f',
        providerPublicKey(pe, name ?? ''),
      ]).stdout.trim();
      assert.equal(fromModule, fromProvider, name);
    }
  });

  for (const ca of ['ssh-ca-ec', 'ssh-ca-rsa']) {
    it(`ssh-keygen -s with -D signs a user certificate with the HSM key ${ca}`, () => {
      const caPub = writePub(`${ca}.pub`, moduleKeys().get(ca) ?? '');
      const key = pe.file(`user-of-${ca}`);
      runOk(pe, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      runOk(pe, 'ssh-keygen', [
        '-s',
        caPub,
        '-D',
        MODULE,
        '-I',
        `akv-test-${ca}`,
        '-n',
        user,
        '-V',
        '+1h',
        `${key}.pub`,
      ]);
      const shown = runOk(pe, 'ssh-keygen', ['-L', '-f', `${key}-cert.pub`]).stdout;
      assert.match(shown, new RegExp(`Key ID: "akv-test-${ca}"`));
      const fingerprint = runOk(pe, 'ssh-keygen', ['-l', '-f', caPub]).stdout.split(' ')[1];
      assert.ok(
        fingerprint &&
          shown.includes(`Signing CA: ${ca === 'ssh-ca-ec' ? 'ECDSA' : 'RSA'} ${fingerprint}`),
        shown,
      );
      if (ca === 'ssh-ca-rsa') assert.match(shown, /using rsa-sha2-512/);
    });
  }
});

describe(
  'sshd and ssh',
  { skip: isRoot ? false : 'sshd must run as root to log a user in' },
  () => {
    it('sshd with TrustedUserCAKeys (the HSM CA) accepts a certificate the HSM signed', () => {
      writeFileSync(pe.file('authorized_keys'), '');
      const key = pe.file('user-of-ssh-ca-ec');
      const r = ssh(['-i', key, '-o', `CertificateFile=${key}-cert.pub`]);
      assert.equal(r.status, 0, `${r.stderr}\nsshd:\n${sshdLog()}`);
      assert.equal(r.stdout.trim(), 'akv-ssh-login-ok');
      assert.match(sshdLog(), /Accepted publickey for .* ED25519-CERT .* ID akv-test-ssh-ca-ec/);
    });

    it('a certificate from a CA sshd does not trust is refused', () => {
      writeFileSync(pe.file('authorized_keys'), '');
      const key = pe.file('user-of-ssh-ca-rsa');
      const r = ssh(['-i', key, '-o', `CertificateFile=${key}-cert.pub`]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Permission denied/);
    });

    for (const key of ['user-rsa', 'user-ec']) {
      it(`ssh -I libakv_pkcs11.so logs in with the HSM key ${key}`, () => {
        const line = moduleKeys().get(key) ?? '';
        writeFileSync(pe.file('authorized_keys'), `${line} ${key}\n`);
        // -i with the key's public half picks that HSM key (IdentitiesOnly keeps ~/.ssh out)
        const r = ssh(['-I', MODULE, '-i', writePub(`${key}.pub`, line)]);
        assert.equal(r.status, 0, `${r.stderr}\nsshd:\n${sshdLog()}`);
        assert.equal(r.stdout.trim(), 'akv-ssh-login-ok');
        const fp = runOk(pe, 'ssh-keygen', ['-l', '-f', pe.file(`${key}.pub`)]).stdout.split(
          ' ',
        )[1];
        assert.ok(
          fp && sshdLog().includes(`Accepted publickey for ${user} from 127.0.0.1`),
          sshdLog(),
        );
        assert.ok(sshdLog().includes(fp), `sshd did not log ${fp}:\n${sshdLog()}`);
      });
    }

    it('ssh -I with no authorized HSM key is refused', () => {
      writeFileSync(pe.file('authorized_keys'), '');
      const r = ssh(['-I', MODULE]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Permission denied/);
    });
  },
);
