#!/usr/bin/env node
// Prepares a fresh clone: Debian packages the build and tests need (installed when running as
// root, otherwise the exact apt-get line is printed) and npm dependencies from the lock file.
// Plain Node with no dependencies, because it runs before `npm ci`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const say = (msg) => quiet || console.log(`setup: ${msg}`);

// Debian package -> a file or command that shows it is present (so non-Debian hosts can pass too).
const PACKAGES = {
  'libssl-dev': () => pkgConfigHas('openssl'),
  'pkg-config': () => hasCommand('pkg-config'),
  openssl: () => hasCommand('openssl'),
  gcc: () => hasCommand('gcc'),
  make: () => hasCommand('make'),
  nginx: () => hasCommand('nginx') || existsSync('/usr/sbin/nginx'),
  'gnutls-bin': () => hasCommand('gnutls-cli'),
  curl: () => hasCommand('curl'),
  valgrind: () => hasCommand('valgrind'),
  // systemd-socket-activate and systemd-analyze for the socket-activation and unit tests (the
  // package installs the tools and units only: it does not start systemd in a container).
  systemd: () => hasCommand('systemd-socket-activate') && hasCommand('systemd-analyze'),
  'libclang-rt-14-dev': () => true, // optional: gcc's own ASan runtime (libasan) is used
  // The C style check of the lint test (scripts/format-c.mjs): Debian 12's clang-format 14.
  'clang-format': () => hasCommand('clang-format'),
  // The shell-script check of the lint test (scripts/shellcheck.mjs, .shellcheckrc).
  shellcheck: () => hasCommand('shellcheck'),
  // The application matrix (test/applications, docs/applications.md). Debian 12's osslsigncode
  // 2.5 signs with key-reference files as well as backports' 2.9, so no extra apt source.
  osslsigncode: () => hasCommand('osslsigncode'),
  'apache2-bin': () => existsSync('/usr/lib/apache2/modules/mod_ssl.so'),
  stunnel4: () => hasCommand('stunnel'),
  haproxy: () => hasCommand('haproxy'),
  // nginx's stream module, for the original Managed HSM provider's gRPC sidecars (test/compat).
  'libnginx-mod-stream': () => existsSync('/usr/share/nginx/modules/ngx_stream_module.so'),
  python3: () => hasCommand('python3'),
  // The PKCS#11 module (pkcs11/, docs/pkcs11.md): p11-kit's pkcs11.h to build it, and the programs
  // its tests drive: pkcs11-tool, p11tool, OpenSSH's client and server, Java's SunPKCS11.
  'libp11-kit-dev': () => pkgConfigHas('p11-kit-1'),
  'p11-kit': () => hasCommand('p11-kit'),
  opensc: () => hasCommand('pkcs11-tool'),
  'openssh-client': () => hasCommand('ssh-keygen'),
  'openssh-server': () => existsSync('/usr/sbin/sshd'),
  'openjdk-17-jdk-headless': () => hasCommand('jarsigner'),
};

function hasCommand(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name} || test -x /usr/sbin/${name}`], {
    stdio: 'ignore',
  });
  return r.status === 0;
}
function pkgConfigHas(lib) {
  const r = spawnSync('pkg-config', ['--exists', lib], { stdio: 'ignore' });
  return r.status === 0;
}

const missing = Object.entries(PACKAGES)
  .filter(([, present]) => !present())
  .map(([name]) => name);
if (missing.length > 0) {
  const line = `apt-get install -y ${missing.join(' ')}`;
  if (process.getuid && process.getuid() === 0) {
    say(`installing missing system packages: ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      stdio: 'inherit',
      env,
    });
  } else {
    console.error(`setup: missing system packages: ${missing.join(' ')}`);
    console.error(`setup: install them with:  sudo ${line}`);
    process.exit(1);
  }
}

// npm dependencies: (re)install when node_modules is missing or older than the lock file.
const lock = join(root, 'package-lock.json');
const marker = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  say('installing npm dependencies (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}
say('ready');
