#!/usr/bin/env node
// `npm run package`: builds akv_<version>_<arch>.deb with dpkg-deb from the built tree (npm run
// build runs first) and prints its path as the last line. The layout (docs/deployment.md):
//   /usr/lib/akv/{bin/akv, dist/src, native/build/akv_peercred.node, node_modules (production), package.json}
//   /usr/bin/akv -> ../lib/akv/bin/akv
//   <OpenSSL's modules directory>/akv_provider.so (its built-in agent command is /usr/bin/akv),
//   with links libakv_provider.so and libakv_provider -> akv_provider.so (the original Managed
//   HSM provider's names, docs/migrating.md; `make install` makes them)
//   /usr/lib/<multiarch>/pkcs11/libakv_pkcs11.so, /usr/share/p11-kit/modules/akv.module
//   /lib/systemd/system/akv-agent.{socket,service}
//   /etc/akv/{config.json, openssl.cnf}, /etc/logrotate.d/akv (conffiles)
//   /usr/share/doc/akv (README, docs, copyright)
// The version comes from package.json only. Nothing installed may point into this checkout: the
// script checks every staged file for the checkout's path and fails if one does.
// Options: --out DIR (default: the repository root).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = pkg.version;
const outIndex = process.argv.indexOf('--out');
const outDir = resolve(outIndex > 0 ? process.argv[outIndex + 1] : root);

const say = (msg) => console.log(`package: ${msg}`);
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
function fail(message, hint) {
  console.error(`package: ${message}; hint: ${hint}`);
  process.exit(1);
}

if (!/^\d+\.\d+\.\d+([~+.-][0-9A-Za-z.+~-]+)?$/.test(version ?? ''))
  fail(`package.json's version ${JSON.stringify(version)} is not a Debian version`, 'use x.y.z');
for (const built of ['dist/src/cli/main.js', 'native/build/akv_peercred.node'])
  try {
    lstatSync(join(root, built));
  } catch {
    fail(`${built} is missing`, 'run `npm run build` first (`npm run package` does)');
  }

const arch = run('dpkg', ['--print-architecture']).trim();
const modulesDir = /MODULESDIR:\s*"([^"]+)"/.exec(run('openssl', ['version', '-m']))?.[1];
if (!modulesDir) fail('`openssl version -m` names no modules directory', 'install OpenSSL 3');

const work = mkdtempSync(join(tmpdir(), 'akv-package-'));
const stage = join(work, 'root');
const lib = join(stage, 'usr/lib/akv');
try {
  // The TypeScript build, without tests, benches or source maps (they name sources not shipped).
  say(`staging akv ${version} for ${arch} in ${work}`);
  mkdirSync(lib, { recursive: true });
  cpSync(join(root, 'dist/src'), join(lib, 'dist/src'), {
    recursive: true,
    filter: (src) => !src.endsWith('.map'),
  });
  // The agent's peer-credentials addon, where dist/src/agent/peer-credentials.js looks for it.
  mkdirSync(join(lib, 'native/build'), { recursive: true });
  copyFileSync(
    join(root, 'native/build/akv_peercred.node'),
    join(lib, 'native/build/akv_peercred.node'),
  );
  mkdirSync(join(lib, 'bin'));
  copyFileSync(join(root, 'bin/akv'), join(lib, 'bin/akv'));
  chmodSync(join(lib, 'bin/akv'), 0o755);
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(root, f), join(lib, f));

  // Production dependencies exactly as locked (no install scripts: none is needed at run time).
  say('installing production node_modules (npm ci --omit=dev)');
  run(
    'npm',
    ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
    { cwd: lib, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  rmSync(join(lib, 'package-lock.json'));
  // What Node needs at run time ("type": "module") and what `akv --version` reads.
  const { name, version: v, description, license, type, engines, dependencies } = pkg;
  writeFileSync(
    join(lib, 'package.json'),
    `${JSON.stringify({ name, version: v, description, license, type, private: true, engines, dependencies }, null, 2)}\n`,
  );
  rmSync(join(lib, 'node_modules/.package-lock.json'), { force: true });
  // Type declarations and source maps are never loaded at run time: two thirds of the files.
  for (const f of walk(join(lib, 'node_modules')))
    if (/\.(map|d\.ts|d\.cts|d\.mts)$/.test(f)) rmSync(f);

  mkdirSync(join(stage, 'usr/bin'), { recursive: true });
  symlinkSync('../lib/akv/bin/akv', join(stage, 'usr/bin/akv'));

  // The provider, built apart from the checkout's build so that its agent command is /usr/bin/akv.
  say(
    'building and installing akv_provider.so and its libakv_provider links (make install PREFIX=/usr)',
  );
  run(
    'make',
    [
      '-s',
      '-C',
      join(root, 'provider'),
      `BUILD=${join(work, 'provider-build')}`,
      'install',
      `DESTDIR=${stage}`,
      'PREFIX=/usr',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  // The PKCS#11 module and its p11-kit module file, built the same way (docs/pkcs11.md).
  say('building and installing libakv_pkcs11.so (make install PREFIX=/usr)');
  run(
    'make',
    [
      '-s',
      '-C',
      join(root, 'pkcs11'),
      `BUILD=${join(work, 'pkcs11-build')}`,
      'install',
      `DESTDIR=${stage}`,
      'PREFIX=/usr',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );

  const install = (from, to, mode = 0o644) => {
    mkdirSync(dirname(join(stage, to)), { recursive: true });
    copyFileSync(join(root, from), join(stage, to));
    chmodSync(join(stage, to), mode);
  };
  install('packaging/systemd/akv-agent.socket', 'lib/systemd/system/akv-agent.socket');
  install('packaging/systemd/akv-agent.service', 'lib/systemd/system/akv-agent.service');
  install('packaging/debian/config.json', 'etc/akv/config.json');
  install('packaging/debian/openssl.cnf', 'etc/akv/openssl.cnf');
  install('packaging/debian/logrotate', 'etc/logrotate.d/akv');
  const conffiles = ['/etc/akv/config.json', '/etc/akv/openssl.cnf', '/etc/logrotate.d/akv'];

  const doc = 'usr/share/doc/akv';
  install('README.md', `${doc}/README.md`);
  for (const f of readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')))
    install(`docs/${f}`, `${doc}/${f}`);
  writeFileSync(
    join(stage, doc, 'copyright'),
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: akv\n\nFiles: *\nLicense: MIT\n ${readFileSync(
      join(root, 'LICENSE'),
      'utf8',
    )
      .trim()
      .split('\n')
      .map((l) => (l.trim() === '' ? '.' : l))
      .join('\n ')}\n`,
  );
  writeFileSync(
    join(stage, doc, 'changelog.gz'),
    gzipSync(`akv ${version}: built from package.json's version by npm run package.\n`, {
      level: 9,
    }),
  );

  // Nothing may point into the checkout (nor into the staging directory).
  const files = walk(stage);
  for (const f of files) {
    const st = lstatSync(f);
    const text = st.isSymbolicLink() ? readlinkText(f) : readFileSync(f).toString('latin1');
    for (const bad of [root, work])
      if (text.includes(bad))
        fail(
          `${relative(stage, f)} contains the path ${bad}`,
          'it must not depend on the build tree',
        );
  }

  const debian = join(stage, 'DEBIAN');
  mkdirSync(debian);
  const installedKiB = Math.ceil(files.reduce((n, f) => n + lstatSync(f).size, 0) / 1024);
  writeFileSync(
    join(debian, 'control'),
    [
      'Package: akv',
      `Version: ${version}`,
      `Architecture: ${arch}`,
      'Maintainer: The akv authors <akv@localhost>',
      `Installed-Size: ${installedKiB}`,
      'Depends: nodejs (>= 20.19), libssl3, adduser',
      'Recommends: logrotate',
      'Section: admin',
      'Priority: optional',
      'Description: Azure Managed HSM keys for every OpenSSL 3 application',
      ' akv_provider is an OpenSSL 3 provider through which nginx, HAProxy, curl, the openssl',
      ' command and other OpenSSL 3 applications use RSA and EC keys that stay in Azure Key Vault',
      ' Managed HSM. It forwards private-key operations over a Unix socket to the akv agent',
      ' (Node.js), run by systemd with socket activation (akv-agent.socket). libakv_pkcs11.so, a',
      ' PKCS#11 module registered with p11-kit, gives the same keys to Java, OpenSSH and GnuTLS.',
      '',
    ].join('\n'),
  );
  writeFileSync(join(debian, 'conffiles'), `${conffiles.join('\n')}\n`);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    copyFileSync(join(root, 'packaging/debian', script), join(debian, script));
    chmodSync(join(debian, script), 0o755);
  }
  const md5 = files
    .filter((f) => !lstatSync(f).isSymbolicLink() && !conffiles.includes(`/${relative(stage, f)}`))
    .map(
      (f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(stage, f)}`,
    );
  writeFileSync(join(debian, 'md5sums'), `${md5.join('\n')}\n`);

  mkdirSync(outDir, { recursive: true });
  const deb = join(outDir, `akv_${version}_${arch}.deb`);
  run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, deb], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  console.log(deb);
} finally {
  rmSync(work, { recursive: true, force: true });
}

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

function readlinkText(p) {
  return execFileSync('readlink', [p], { encoding: 'utf8' });
}
