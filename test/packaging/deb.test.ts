/**
 * `npm run package` (scripts/package.mjs): the .deb's fields and contents, and nothing in it that
 * points into this checkout. As root, the package is installed for real (apt-get, no
 * recommends), used from `/` (`akv --help`, doctor finds the provider in OpenSSL's modules
 * directory, an agent socket-activated by systemd-socket-activate runs as the akv user and serves
 * the installed provider), upgraded and reinstalled (a changed config survives), removed (config
 * and user stay) and purged (nothing is left), so the machine ends as it started. Without root,
 * or when akv is already installed here, that part is skipped with the reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, emulatorConfig, startEmulator } from '../helpers/emulator.js';
import { signAndVerify, socketActivate } from '../helpers/socket-activation.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
};
const scratch = mkdtempSync(join(tmpdir(), 'akv-deb-'));
chmodSync(scratch, 0o755); // the installed agent (user akv) reads its config and CA from here
let deb: string;
let buildOutput: string;

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    cwd: opts.cwd ?? '/',
    env: opts.env ?? process.env,
    maxBuffer: 64 << 20,
    timeout: 600_000,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
function ok(cmd: string, args: string[], opts?: { cwd?: string; env?: NodeJS.ProcessEnv }) {
  const r = sh(cmd, args, opts);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

const MODULES_DIR = /MODULESDIR:\s*"([^"]+)"/.exec(ok('openssl', ['version', '-m']))![1]!;
const ARCH = ok('dpkg', ['--print-architecture']).trim();

before(() => {
  // What `npm run package` runs after `npm run build` (which npm test has just done).
  const r = sh(process.execPath, [join(REPO_ROOT, 'scripts', 'package.mjs'), '--out', scratch], {
    cwd: REPO_ROOT,
  });
  buildOutput = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, buildOutput);
  deb = r.stdout.trimEnd().split('\n').at(-1)!;
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('npm run package builds akv_<version>_<arch>.deb and prints its path last', () => {
  assert.equal(pkg.scripts.package, 'npm run build && node scripts/package.mjs');
  assert.equal(deb, join(scratch, `akv_${pkg.version}_${ARCH}.deb`));
  assert.ok(existsSync(deb), buildOutput);
  const field = (name: string): string => ok('dpkg-deb', ['--field', deb, name]).trim();
  assert.equal(field('Package'), 'akv');
  assert.equal(field('Version'), pkg.version);
  assert.equal(field('Architecture'), ARCH);
  assert.equal(field('Depends'), 'nodejs (>= 20.19), libssl3, adduser');
  const conffiles = ok('sh', [
    '-c',
    `dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles`,
    'sh',
    deb,
  ]);
  assert.deepEqual(conffiles.trim().split('\n'), [
    '/etc/akv/config.json',
    '/etc/akv/openssl.cnf',
    '/etc/logrotate.d/akv',
  ]);
});

test('the .deb holds the CLI, node_modules, the provider, units, config and docs', () => {
  const listing = ok('dpkg-deb', ['--contents', deb]);
  const paths = new Set(listing.split('\n').map((l) => l.split(/\s+/)[5]?.replace(/^\./, '')));
  for (const p of [
    '/usr/lib/akv/bin/akv',
    '/usr/lib/akv/package.json',
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
    '/usr/share/doc/akv/deployment.md',
    '/usr/share/doc/akv/copyright',
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
    assert.ok(!p?.includes('/node_modules/typescript/'), 'no dev dependency');
    if (p?.startsWith('/usr/lib/akv/dist/'))
      assert.ok(
        !p.startsWith('/usr/lib/akv/dist/test/') && !p.endsWith('.map'),
        `no tests or maps: ${p}`,
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

const isRoot = process.getuid?.() === 0;
const alreadyThere = (): string | undefined => {
  if (sh('dpkg-query', ['-W', 'akv']).status === 0) return 'a package named akv is installed';
  if (sh('getent', ['passwd', 'akv']).status === 0) return 'a user akv exists';
  for (const p of ['/etc/akv', '/usr/lib/akv', '/var/log/akv', `${MODULES_DIR}/akv_provider.so`])
    if (existsSync(p)) return `${p} exists`;
  return undefined;
};
/** apt can satisfy `Depends: nodejs (>= 20.19)` only with Node.js as a Debian package. */
const nodejsPackage = (): boolean => {
  const v = sh('dpkg-query', ['-W', '-f', '${Version}', 'nodejs']);
  return v.status === 0 && sh('dpkg', ['--compare-versions', v.stdout, 'ge', '20.19']).status === 0;
};
const skipInstall = !isRoot
  ? 'installing the package needs root (run npm test as root)'
  : !nodejsPackage()
    ? 'Node.js is not installed as the nodejs Debian package (>= 20.19), which the package depends on'
    : alreadyThere()
      ? `akv is already on this machine (${alreadyThere()}): not touching it`
      : false;

/** What the package may touch, as a comparable snapshot. */
function machineState(): Record<string, string | boolean> {
  const exists = (p: string): boolean => {
    try {
      lstatSync(p);
      return true;
    } catch {
      return false;
    }
  };
  return {
    dpkg: sh('dpkg-query', ['-W', '-f', '${Status}', 'akv']).stdout,
    user: sh('getent', ['passwd', 'akv']).stdout,
    group: sh('getent', ['group', 'akv']).stdout,
    etc: exists('/etc/akv'),
    lib: exists('/usr/lib/akv'),
    bin: exists('/usr/bin/akv'),
    module: exists(`${MODULES_DIR}/akv_provider.so`),
    units:
      exists('/lib/systemd/system/akv-agent.socket') ||
      exists('/lib/systemd/system/akv-agent.service'),
    logrotate: exists('/etc/logrotate.d/akv'),
    logs: exists('/var/log/akv'),
    doc: exists('/usr/share/doc/akv'),
    enabled: sh('find', ['/etc/systemd/system', '-lname', '*/akv-agent.*']).stdout,
  };
}

describe('installed for real (root)', { skip: skipInstall }, () => {
  const aptGet = (args: string[]): string =>
    // unsafe-io: no fsync per file (this is a test install, removed a minute later).
    ok(
      'apt-get',
      [
        '-o',
        'DPkg::Lock::Timeout=300',
        '-o',
        'DPkg::Options::=--force-unsafe-io',
        '-y',
        '-q',
        ...args,
      ],
      {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      },
    );
  let before: ReturnType<typeof machineState>;

  test('apt-get install ./akv_*.deb, then akv works from /', () => {
    before = machineState();
    aptGet(['install', '--no-install-recommends', deb]);
    assert.equal(ok('/usr/bin/akv', ['--version']).trim(), `akv ${pkg.version}`);
    assert.match(ok('/usr/bin/akv', ['--help']), /^Usage: akv <command>/);
    assert.equal(readlinkSync('/usr/bin/akv'), '../lib/akv/bin/akv');
    const user = ok('getent', ['passwd', 'akv']).trim().split(':');
    assert.ok(Number(user[2]) < 1000, 'a system user');
    assert.equal(user[6], '/usr/sbin/nologin');
    const verify = sh('systemd-analyze', [
      'verify',
      '/lib/systemd/system/akv-agent.socket',
      '/lib/systemd/system/akv-agent.service',
    ]);
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(
      `${verify.stdout}${verify.stderr}`.trim(),
      '',
      'the installed units verify cleanly',
    );
  });

  test("akv doctor finds the installed provider in OpenSSL's modules directory", () => {
    const env = { ...process.env };
    delete env.OPENSSL_MODULES;
    const r = sh('/usr/bin/akv', ['doctor', '--json', '--socket', join(scratch, 'none.sock')], {
      env,
    });
    const json = JSON.parse(r.stdout) as {
      checks: Array<{ name: string; status: string; detail: string }>;
    };
    const provider = json.checks.find((c) => c.name === 'provider loadable');
    assert.equal(provider?.status, 'ok', r.stdout);
    assert.match(
      provider!.detail,
      new RegExp(`loads from ${MODULES_DIR} \\(OpenSSL's modules directory\\)`),
    );
  });

  test('a socket-activated agent (user akv) serves the installed provider', async () => {
    const emulator = await startEmulator();
    try {
      await emulator.keyClient().createKey('deb-ec', 'EC-HSM', { curve: 'P-256' });
      const ca = join(scratch, 'ca.pem');
      copyFileSync(emulator.caFile, ca);
      chmodSync(ca, 0o644);
      const config = join(scratch, 'agent.json');
      const vaults = emulatorConfig(emulator, 'debhsm');
      (vaults.vaults.debhsm as { caFile: string }).caFile = ca;
      writeFileSync(config, JSON.stringify({ socket: join(scratch, 'unused.sock'), ...vaults }));
      chmodSync(config, 0o644);
      const socket = join(scratch, 'agent.sock');
      const agent = await socketActivate(
        socket,
        ['setpriv', '--reuid=akv', '--regid=akv', '--init-groups', '/usr/bin/akv', 'agent'],
        { PATH: '/usr/bin:/bin', AKV_CONFIG: config },
      );
      try {
        // The provider from OpenSSL's modules directory (no OPENSSL_MODULES); it talks to an agent
        // of another uid only when told to (agent_user / AKV_AGENT_USER).
        signAndVerify({
          uri: 'managedhsm:debhsm:deb-ec',
          socket,
          dir: scratch,
          env: { AKV_AGENT_USER: 'akv' },
        });
      } finally {
        assert.equal(await agent.stop(), 0, agent.stderr());
      }
      assert.match(agent.stdout(), /\(socket passed by systemd\)/);
    } finally {
      await emulator.stop();
    }
  });

  test('reinstall and upgrade keep a changed /etc/akv/config.json', () => {
    const changed = '{ "socket": "/run/akv/agent.sock", "keyCacheTtlMs": 1234 }\n';
    writeFileSync('/etc/akv/config.json', changed);
    ok('dpkg', ['--force-unsafe-io', '-i', deb]);
    assert.equal(readFileSync('/etc/akv/config.json', 'utf8'), changed);
    // The same package as version <version>+upgrade.
    const tree = mkdtempSync(join(scratch, 'upgrade-'));
    ok('dpkg-deb', ['-R', deb, tree]);
    const control = join(tree, 'DEBIAN', 'control');
    writeFileSync(
      control,
      readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${pkg.version}+upgrade`),
    );
    const upgraded = join(scratch, 'upgraded.deb');
    ok('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', tree, upgraded]);
    ok('dpkg', ['--force-unsafe-io', '-i', upgraded]);
    assert.equal(ok('dpkg-query', ['-W', '-f', '${Version}', 'akv']), `${pkg.version}+upgrade`);
    assert.equal(readFileSync('/etc/akv/config.json', 'utf8'), changed);
  });

  test('dpkg -r removes the files and keeps /etc/akv and the user; dpkg -P removes them too', () => {
    ok('dpkg', ['--force-unsafe-io', '-r', 'akv']);
    for (const p of [
      '/usr/bin/akv',
      '/usr/lib/akv',
      `${MODULES_DIR}/akv_provider.so`,
      '/lib/systemd/system/akv-agent.service',
    ])
      assert.ok(!existsSync(p), `${p} removed`);
    assert.ok(existsSync('/etc/akv/config.json'), 'config kept on remove');
    assert.equal(sh('getent', ['passwd', 'akv']).status, 0, 'user kept on remove');
    ok('dpkg', ['--force-unsafe-io', '-P', 'akv']);
    assert.deepEqual(machineState(), before, 'the machine is as before the install');
  });

  after(() => {
    // Whatever failed above: leave nothing behind.
    if (sh('dpkg-query', ['-W', 'akv']).status === 0) sh('dpkg', ['-P', 'akv']);
  });
});
