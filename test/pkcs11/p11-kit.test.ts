/**
 * p11-kit loading the package's module file itself: `make install` writes akv.module (as the
 * .deb ships it); with its `module:` line pointed at this build, it is put where p11-kit looks for
 * modules, and `p11-kit list-modules`, `p11tool` without --provider (GnuTLS loads p11-kit's
 * modules) and `pkcs11-tool --module p11-kit-proxy.so` (the proxy module, for programs that take
 * one module) show the akv token and sign with its key; the signatures verify with OpenSSL.
 * (`p11tool --provider p11-kit-proxy.so` fails to initialise with or without akv: GnuTLS already
 * runs p11-kit itself.)
 * Where: as root (CI), p11-kit reads no user configuration, so the test bind-mounts a modules
 * directory over the system one (/usr/share/p11-kit/modules) in a private mount namespace that
 * only the commands see; as another user, p11-kit's user directory ($XDG_CONFIG_HOME/pkcs11/modules).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startProviderEnv, type ProviderEnv } from '../provider/openssl-env.js';
import {
  keyId,
  makeModule,
  MODULE,
  PKCS11_DIR,
  providerPublicKey,
  run,
  runOk,
} from './pkcs11-env.js';

const HSM = 'p11kithsm';
let pe: ProviderEnv;
let modulesDir = '';
let systemModules = '';
let proxy = '';
const asRoot = process.getuid?.() === 0;

before(async () => {
  makeModule();
  pe = await startProviderEnv('pkcs11-p11kit', HSM);
  pe.createKey('kit-ec', '--kty', 'EC-HSM', '--curve', 'P-256');
  const dest = pe.file('install');
  runOk(pe, 'make', [
    '-s',
    '-C',
    PKCS11_DIR,
    'install',
    `DESTDIR=${dest}`,
    'PREFIX=/usr',
    `BUILD=${pe.file('install-build')}`,
  ]);
  const pkg = (v: string) =>
    runOk(pe, 'pkg-config', [`--variable=${v}`, 'p11-kit-1']).stdout.trim();
  systemModules = pkg('p11_module_configs');
  proxy = pkg('proxy_module');
  const packaged = readFileSync(join(dest, systemModules.replace(/^\//, ''), 'akv.module'), 'utf8');
  assert.match(packaged, /^module: \/usr\/lib\/.*\/pkcs11\/libakv_pkcs11\.so$/m);
  const forThisBuild = packaged.replace(/^module: .*$/m, `module: ${MODULE}`);
  if (asRoot) {
    // the system's module files and ours, in a directory mounted over the system one
    modulesDir = pe.file('p11-kit-modules');
    mkdirSync(modulesDir);
    for (const f of readdirSync(systemModules))
      copyFileSync(join(systemModules, f), join(modulesDir, f));
  } else {
    modulesDir = pe.file('config/pkcs11/modules');
    mkdirSync(modulesDir, { recursive: true });
  }
  writeFileSync(join(modulesDir, 'akv.module'), forThisBuild);
});

after(async () => {
  await pe?.down();
});

/** Runs a command where p11-kit sees the modules directory (see the file's comment). */
function withModules(cmd: string, args: string[]): ReturnType<typeof run> {
  if (!asRoot)
    return run(pe, cmd, args, { env: { ...pe.env, XDG_CONFIG_HOME: pe.file('config') } });
  return run(pe, 'unshare', [
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$1" "$2" && shift 2 && exec "$@"',
    'with-modules',
    modulesDir,
    systemModules,
    cmd,
    ...args,
  ]);
}

/** withModules, skipping where no mount namespace can be made (a container without the right). */
function ok(t: TestContext, cmd: string, args: string[]): ReturnType<typeof run> | undefined {
  const r = withModules(cmd, args);
  if (
    r.status !== 0 &&
    /unshare: .*(Operation not permitted|Invalid argument)|mount: .*permission/i.test(r.stderr)
  ) {
    t.skip(`no private mount namespace here (${r.stderr.trim()})`);
    return undefined;
  }
  assert.equal(
    r.status,
    0,
    `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`,
  );
  return r;
}

describe('p11-kit with the package module file', () => {
  it('p11-kit list-modules shows the akv module and its token', (t) => {
    const r = ok(t, 'p11-kit', ['list-modules']);
    if (!r) return;
    const block = r.stdout.split(/\n(?=\S)/).find((b) => b.startsWith('akv: '));
    assert.ok(block, r.stdout);
    assert.match(block, new RegExp(`^akv: ${MODULE}\\n`));
    assert.match(block, /library-manufacturer: akv\n/);
    assert.match(
      block,
      new RegExp(`token: ${HSM}\\n\\s+manufacturer: akv\\n\\s+model: Managed HSM\\n`),
    );
  });

  it('p11tool finds the token through p11-kit (no --provider) and signs by pkcs11: URI', (t) => {
    const tokens = ok(t, 'p11tool', ['--list-tokens']);
    if (!tokens) return;
    assert.match(
      tokens.stdout,
      new RegExp(
        `URL: pkcs11:model=Managed%20HSM;manufacturer=akv;serial=[0-9a-f]{16};token=${HSM}\\n`,
      ),
    );
    const r = ok(t, 'p11tool', ['--test-sign', `pkcs11:token=${HSM};object=kit-ec;type=private`]);
    assert.match(r?.stderr ?? '', /Signing using ECDSA-SHA256\.\.\. ok/);
    assert.match(r?.stderr ?? '', /Verifying against public key in the token\.\.\. ok/);
  });

  it('pkcs11-tool --module p11-kit-proxy.so lists the token and signs; OpenSSL verifies', (t) => {
    const slots = ok(t, 'pkcs11-tool', ['--module', proxy, '-L']);
    if (!slots) return;
    assert.match(
      slots.stdout,
      new RegExp(`token label\\s+: ${HSM}\\n\\s+token manufacturer\\s*: akv\\n`),
    );
    writeFileSync(pe.file('data.txt'), 'signed through p11-kit-proxy\n');
    ok(t, 'pkcs11-tool', [
      '--module',
      proxy,
      '--token-label',
      HSM,
      '--sign',
      '-m',
      'ECDSA-SHA256',
      '--id',
      keyId(pe, 'kit-ec'),
      '--signature-format',
      'openssl',
      '-i',
      pe.file('data.txt'),
      '-o',
      pe.file('data.sig'),
    ]);
    const verified = pe.opensslOk([
      'dgst',
      '-sha256',
      '-verify',
      providerPublicKey(pe, 'kit-ec'),
      '-signature',
      pe.file('data.sig'),
      pe.file('data.txt'),
    ]);
    assert.match(verified.stdout, /Verified OK/);
  });
});
