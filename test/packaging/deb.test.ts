/**
 * `npm run package` (scripts/package.mjs, dpkg-buildpackage + debhelper): the .deb's fields and
 * contents, the -dbgsym package, nothing in it that points into this checkout, and lintian with
 * every tag (pedantic and experimental included) either fixed or overridden with a reason.
 * Installing it on the host is deb-install.test.ts (same build: test/helpers/deb-build.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { builtDeb } from '../helpers/deb-build.js';
import { ok, opensslModulesDir, pkg, scratchDir, sh } from '../helpers/host-commands.js';
import { REPO_ROOT } from '../helpers/emulator.js';

const scratch = scratchDir();
let deb: string;
let buildOutput: string;

const MODULES_DIR = opensslModulesDir();
const ARCH = ok('dpkg', ['--print-architecture']).trim();

before(() => {
  // What `npm run package` runs after `npm run build` (which npm test has just done); shared with
  // deb-install.test.ts (test/helpers/deb-build.ts).
  const built = builtDeb();
  deb = built.deb;
  buildOutput = built.output;
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('npm run package builds akv_<version>_<arch>.deb and prints its path last', () => {
  assert.equal(pkg.scripts.package, 'npm run build && node scripts/package.mjs');
  // The last line of the build's output is the path of the .deb in --out (test/helpers/deb-build.ts).
  assert.equal(deb, join(dirname(deb), `akv_${pkg.version}_${ARCH}.deb`));
  assert.equal(buildOutput.trimEnd().split('\n').at(-1), deb);
  assert.ok(existsSync(deb), buildOutput);
  const field = (name: string): string => ok('dpkg-deb', ['--field', deb, name]).trim();
  assert.equal(field('Package'), 'akv');
  assert.equal(field('Version'), pkg.version);
  assert.equal(field('Architecture'), ARCH);
  // Hand-written: nodejs and adduser; dh_shlibdeps: the C libraries the provider links.
  const depends = field('Depends').split(/,\s*/);
  for (const d of [/^adduser$/, /^nodejs \(>= 20\.19\)$/, /^libc6 \(>= [\d.]+\)$/, /^libssl3 /])
    assert.ok(
      depends.some((x) => d.test(x)),
      `Depends ${field('Depends')} has ${d}`,
    );
  assert.match(field('Maintainer'), /^[^<]+ <[^@\s]+@[^@\s]+\.[a-z]+>$/);
  assert.doesNotMatch(field('Maintainer'), /localhost/);
  const conffiles = ok('sh', [
    '-c',
    `dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles`,
    'sh',
    deb,
  ]);
  assert.deepEqual(conffiles.trim().split('\n').sort(), [
    '/etc/akv/config.json',
    '/etc/akv/openssl.cnf',
    '/etc/logrotate.d/akv',
  ]);
  // debhelper wrote the maintainer scripts' systemd parts (no systemctl of our own).
  const postinst = ok('sh', [
    '-c',
    `dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./postinst`,
    'sh',
    deb,
  ]);
  assert.match(postinst, /Automatically added by dh_installsystemd/);
  assert.match(postinst, /adduser --system/);
});

test("a -dbgsym package holds the provider's debug symbols; the shipped module is stripped", () => {
  const dbgsym = deb.replace(/\/akv_/, '/akv-dbgsym_');
  assert.ok(existsSync(dbgsym), `${dbgsym}\n${buildOutput}`);
  assert.match(
    ok('dpkg-deb', ['--contents', dbgsym]),
    /\/usr\/lib\/debug\/\.build-id\/.*\.debug$/m,
  );
  const tree = mkdtempSync(join(scratch, 'strip-'));
  ok('dpkg-deb', ['-x', deb, tree]);
  const sections = ok('readelf', ['-S', '-W', join(tree, MODULES_DIR, 'akv_provider.so')]);
  assert.doesNotMatch(sections, /\.debug_info|\.symtab/, 'no debug info or symbol table');
  assert.match(sections, /\.gnu_debuglink/, 'linked to its -dbgsym file');
  rmSync(tree, { recursive: true, force: true });
});

test('the .deb holds the CLI, node_modules, the provider, units, config, docs, man pages and completion', () => {
  const listing = ok('dpkg-deb', ['--contents', deb]);
  const paths = new Set(listing.split('\n').map((l) => l.split(/\s+/)[5]?.replace(/^\./, '')));
  for (const p of [
    '/usr/lib/akv/bin/akv',
    '/usr/lib/akv/package.json',
    '/usr/lib/akv/dist/bundle/akv.cjs',
    '/usr/lib/akv/dist/bundle/akv.cjs.cache',
    '/usr/lib/akv/bin/package.json',
    '/usr/lib/akv/dist/bundle/agent.cjs',
    '/usr/lib/akv/dist/bundle/agent.cjs.cache',
    '/usr/lib/akv/dist/bundle/worker.js',
    '/usr/lib/akv/dist/src/cli/main.js',
    '/usr/lib/akv/dist/src/agent/agent.js',
    '/usr/lib/akv/node_modules/@azure/keyvault-keys/package.json',
    '/usr/lib/akv/node_modules/prom-client/package.json',
    `${MODULES_DIR}/akv_provider.so`,
    '/lib/systemd/system/akv-agent.socket',
    '/lib/systemd/system/akv-agent.service',
    '/etc/akv/config.json',
    '/etc/akv/openssl.cnf',
    '/etc/logrotate.d/akv',
    '/usr/share/doc/akv/README.md',
    '/usr/share/doc/akv/CHANGELOG.md',
    '/usr/share/doc/akv/deployment.md',
    '/usr/share/doc/akv/copyright',
    '/usr/share/doc/akv/changelog.gz',
    '/usr/share/man/man1/akv.1.gz',
    '/usr/share/man/man8/akv-agent.8.gz',
    '/usr/share/man/man7/akv_provider.7.gz',
    '/usr/share/man/man5/akv.json.5.gz',
    '/usr/share/bash-completion/completions/akv',
    '/usr/share/zsh/vendor-completions/_akv',
    '/usr/lib/akv/native/build/akv_peercred.node',
    '/usr/share/p11-kit/modules/akv.module',
  ])
    assert.ok(paths.has(p), `${p} is in the package`);
  assert.match(
    listing,
    /^lrwxrwxrwx \S+ +0 \S+ \S+ \.\/usr\/bin\/akv -> \.\.\/lib\/akv\/bin\/akv$/m,
  );
  // The original Managed HSM provider's module names (docs/migrating.md).
  for (const name of ['libakv_provider.so', 'libakv_provider'])
    assert.ok(
      listing.includes(`.${MODULES_DIR}/${name} -> akv_provider.so`),
      `${name} links to akv_provider.so:\n${listing}`,
    );
  for (const p of paths) {
    if (p === undefined || p === '') continue;
    for (const dev of ['typescript', '@grpc', 'protobufjs', 'eslint'])
      assert.ok(!p.includes(`/node_modules/${dev}/`), `no dev dependency: ${p}`);
    if (p.includes('/node_modules/')) {
      const base = p.replace(/\/$/, '').split('/').at(-1)!;
      assert.doesNotMatch(
        base,
        /^\.npmignore$|\.md$|\.d\.ts$|\.map$|^\.|\.html$/,
        `run-time files only: ${p}`,
      );
      assert.doesNotMatch(
        p,
        /\/(test|tests|__tests__|docs?|examples?)\//,
        `no tests or docs: ${p}`,
      );
      if (p.endsWith('/'))
        assert.ok(
          [...paths].some((q) => q !== p && q?.startsWith(p)),
          `empty: ${p}`,
        );
    }
    // Source maps only for the bundle bin/akv runs (AKV_DEBUG's stack traces), not its metafile.
    if (p.startsWith('/usr/lib/akv/dist/'))
      assert.ok(
        !p.startsWith('/usr/lib/akv/dist/test/') &&
          (!p.endsWith('.map') || p.startsWith('/usr/lib/akv/dist/bundle/')) &&
          !p.endsWith('/metafile.json'),
        `no tests, no maps but the bundle's, no metafile: ${p}`,
      );
  }
});

test('nothing in the .deb points into the checkout', () => {
  const tree = mkdtempSync(join(scratch, 'tree-'));
  ok('dpkg-deb', ['-R', deb, tree]);
  const r = sh('grep', ['-r', '-l', '--binary-files=text', REPO_ROOT, tree]);
  assert.equal(r.status, 1, `files naming ${REPO_ROOT}:\n${r.stdout}`);
  const so = readFileSync(join(tree, MODULES_DIR, 'akv_provider.so')).toString('latin1');
  assert.ok(so.includes('/usr/bin/akv'), "the provider's built-in agent command is /usr/bin/akv");
  const config = JSON.parse(readFileSync(join(tree, 'etc/akv/config.json'), 'utf8')) as object;
  assert.deepEqual(config, { socket: '/run/akv/agent.sock', log: { level: 'info' } });
  assert.match(readFileSync(join(tree, 'etc/akv/openssl.cnf'), 'utf8'), /^agent_user = akv$/m);
  rmSync(tree, { recursive: true, force: true });
});

test('lintian: no error or warning, and every other tag overridden with a reason', () => {
  const r = sh('lintian', [
    '--info',
    '--pedantic',
    '--display-experimental',
    '--show-overrides',
    deb,
  ]);
  const lines = `${r.stdout}${r.stderr}`.split('\n');
  const tags = lines.filter((l) => /^[EWIPX]: /.test(l));
  assert.deepEqual(tags, [], `lintian ${deb}:\n${r.stdout}${r.stderr}`);
  assert.ok(
    lines.some((l) => l.startsWith('O: akv: ')),
    'the overrides are there and lintian read them',
  );
  // Each override says why (a comment right above it).
  const overrides = readFileSync(join(REPO_ROOT, 'debian/akv.lintian-overrides'), 'utf8').split(
    '\n',
  );
  overrides.forEach((l, i) => {
    if (l.startsWith('akv: '))
      assert.ok(overrides[i - 1]?.startsWith('#'), `override "${l}" has a comment saying why`);
  });
});
