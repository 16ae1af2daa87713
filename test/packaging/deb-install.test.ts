/**
 * The .deb of `npm run package` (built once with deb.test.ts: test/helpers/deb-build.ts)
 * INSTALLED ON THIS HOST for real, as root (apt-get, no recommends; one host install at a time:
 * flock /run/lock/akv-host-deb.lock, and apt waits for the dpkg lock): used from `/` (`akv
 * --version`, `--help`, man pages, doctor finds the provider in OpenSSL's modules directory, an
 * agent socket-activated by systemd-socket-activate runs as the akv user and serves the installed
 * provider), reinstalled and upgraded (a changed config survives), removed (config and user stay)
 * and purged (what the admin wrote and the system user stay; the test removes those itself), so
 * the machine ends as it started. Without root, or when akv is already installed here, it is
 * skipped with the reason.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { builtDeb } from '../helpers/deb-build.js';
import { APT_ENV, APT_GET_ARGS, hostInstallLock } from '../helpers/host-deb.js';
import { ok, opensslModulesDir, pkg, scratchDir, sh } from '../helpers/host-commands.js';
import { emulatorConfig, startEmulator } from '../helpers/emulator.js';
import { signAndVerify, socketActivate } from '../helpers/socket-activation.js';

const scratch = scratchDir();
let deb: string;

const MODULES_DIR = opensslModulesDir();

before(() => {
  // What `npm run package` runs after `npm run build` (which npm test has just done); shared with
  // deb-install.test.ts (test/helpers/deb-build.ts).
  const built = builtDeb();
  deb = built.deb;
});
after(() => rmSync(scratch, { recursive: true, force: true }));

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

describe('INSTALLS akv ON THIS HOST (root; purged again at the end)', { skip: skipInstall }, () => {
  let lock: { release: () => void } | undefined;
  before(async () => {
    console.log(
      `# deb.test: installing ${deb} on this host with apt-get (waiting for /run/lock/akv-host-deb.lock and the dpkg lock); it is purged when the test ends`,
    );
    lock = await hostInstallLock();
  });
  const aptGet = (args: string[]): string =>
    ok('apt-get', [...APT_GET_ARGS, ...args], { env: APT_ENV });
  let initial: ReturnType<typeof machineState> | undefined;

  test('apt-get install ./akv_*.deb, then akv works from /', () => {
    initial = machineState();
    aptGet(['install', '--no-install-recommends', deb]);
    const versions = ok('/usr/bin/akv', ['--version']).split('\n');
    assert.equal(versions[0], `akv ${pkg.version}`);
    assert.equal(versions[2], `provider: ${pkg.version} in ${MODULES_DIR}`);
    assert.match(ok('man', ['-w', 'akv-agent']), /\/usr\/share\/man\/man8\/akv-agent\.8\.gz/);
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
    aptGet(['install', '--reinstall', '--no-install-recommends', deb]);
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
    aptGet(['install', '--no-install-recommends', upgraded]);
    assert.equal(ok('dpkg-query', ['-W', '-f', '${Version}', 'akv']), `${pkg.version}+upgrade`);
    assert.equal(readFileSync('/etc/akv/config.json', 'utf8'), changed);
  });

  test('remove keeps /etc/akv and the user; purge keeps only what the admin wrote and the user', () => {
    aptGet(['remove', 'akv']);
    for (const p of [
      '/usr/bin/akv',
      '/usr/lib/akv',
      `${MODULES_DIR}/akv_provider.so`,
      '/lib/systemd/system/akv-agent.service',
    ])
      assert.ok(!existsSync(p), `${p} removed`);
    assert.ok(existsSync('/etc/akv/config.json'), 'config kept on remove');
    assert.equal(sh('getent', ['passwd', 'akv']).status, 0, 'user kept on remove');
    // What the README and docs/deployment.md tell the administrator to write.
    const dropIn = '/etc/systemd/system/akv-agent.socket.d/group.conf';
    mkdirSync('/etc/systemd/system/akv-agent.socket.d', { recursive: true });
    writeFileSync(dropIn, '[Socket]\nSocketGroup=www-data\n');
    writeFileSync('/etc/akv/agent.env', 'AZURE_TENANT_ID=test\n', { mode: 0o600 });
    try {
      aptGet(['purge', 'akv']);
      assert.equal(
        readFileSync(dropIn, 'utf8'),
        '[Socket]\nSocketGroup=www-data\n',
        'drop-in kept',
      );
      assert.ok(existsSync('/etc/akv/agent.env'), "the admin's agent.env kept");
      assert.ok(!existsSync('/etc/akv/config.json'), 'conffiles purged');
      assert.equal(
        sh('getent', ['passwd', 'akv']).status,
        0,
        'the system user stays (as Debian does)',
      );
    } finally {
      rmSync('/etc/systemd/system/akv-agent.socket.d', { recursive: true, force: true });
      rmSync('/etc/akv', { recursive: true, force: true });
    }
    // Only the user and group are left of the install: this test removes them, which leaves the
    // machine as it was.
    if (!initial?.user) sh('deluser', ['--system', 'akv']);
    if (!initial?.group && sh('getent', ['group', 'akv']).status === 0)
      sh('delgroup', ['--system', 'akv']);
    assert.deepEqual(machineState(), initial, 'the machine is as before the install');
  });

  after(() => {
    // Whatever failed above: leave nothing behind, then let the next host install in.
    try {
      if (sh('dpkg-query', ['-W', 'akv']).status === 0)
        sh('apt-get', ['-o', 'DPkg::Lock::Timeout=900', '-y', '-q', 'purge', 'akv']);
      if (initial && !initial.user && sh('getent', ['passwd', 'akv']).status === 0)
        sh('deluser', ['--system', 'akv']);
      if (initial && !initial.group && sh('getent', ['group', 'akv']).status === 0)
        sh('delgroup', ['--system', 'akv']);
    } finally {
      lock?.release();
    }
  });
});
