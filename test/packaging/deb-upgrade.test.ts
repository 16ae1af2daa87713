/**
 * `apt upgrade` of the installed .deb under load, as root ON THIS HOST (issue 24; one host install
 * at a time: flock /run/lock/akv-host-deb.lock; apt waits for dpkg's lock; purged at the end,
 * always). The package of this checkout (test/helpers/deb-build.ts) is installed, and the same
 * package with a higher version (repackWithVersion) is installed over it while akv-sign-bench
 * signs through the installed akv_provider.so from 8 threads against the emulator with 100 ms of
 * HSM latency. The agent runs as akv-agent.socket runs it: as the akv user, on a socket a holder
 * process keeps across agents and passes with LISTEN_FDS (test/helpers/socket-holder.ts), as
 * systemd does; systemd itself does not run here. What happens, as on a systemd host:
 *  1. the upgrade unpacks the new files under the running (old) agent;
 *  2. the old agent's first management call after that (a key listing, which loads the Key Vault
 *     SDK on first use) is refused cleanly instead of loading the new version's code
 *     (src/installation.ts), and the old agent stops, answering what is in flight;
 *  3. the next connection starts the new agent (systemd's socket activation; here the holder);
 *  4. postinst restarts akv-agent.service only, never the socket (checked in the installed
 *     postinst; here the test sends the SIGTERM and starts the next agent, as systemd does).
 * Asserted: no signature fails across all of it, the only refused call is that listing, the agent
 * answering at the end is the new version (HELLO) and lists keys. docs/deployment.md, "Upgrades".
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/client/agent-client.js';
import { AkvError } from '../../src/errors.js';
import { builtDeb } from '../helpers/deb-build.js';
import { REPO_ROOT, emulatorConfig, startEmulator } from '../helpers/emulator.js';
import type { RunningEmulator } from '../helpers/emulator.js';
import { APT_ENV, APT_GET_ARGS, hostInstallLock, repackWithVersion } from '../helpers/host-deb.js';
import { holdSocket, type SocketHolder } from '../helpers/socket-holder.js';

const HSM = 'upgradehsm';
const KEY_NAME = 'upgrade-ec';
const KEY = `managedhsm:${HSM}:${KEY_NAME}`;
const THREADS = 8;
const ROUND_MS = 3000;
const SIGN_BENCH = join(REPO_ROOT, 'bench', 'driver', 'build', 'akv-sign-bench');
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
};
const OLD = pkg.version;
const NEW = `${pkg.version}+upgrade1`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: '/', maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** apt-get without blocking this process (the holder's and the load's output keep arriving). */
function aptGet(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('apt-get', [...APT_GET_ARGS, ...args], { cwd: '/', env: APT_ENV });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`apt-get ${args.join(' ')} (${code}):\n${out}`)),
    );
  });
}

const isRoot = process.getuid?.() === 0;
const MODULES_DIR = /MODULESDIR:\s*"([^"]+)"/.exec(sh('openssl', ['version', '-m']).out)?.[1];
const nodejsPackage = (): boolean => {
  const v = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'nodejs'], { encoding: 'utf8' });
  return v.status === 0 && sh('dpkg', ['--compare-versions', v.stdout, 'ge', '20.19']).status === 0;
};
const alreadyThere = (): string | undefined => {
  if (sh('dpkg-query', ['-W', 'akv']).status === 0) return 'a package named akv is installed';
  if (sh('getent', ['passwd', 'akv']).status === 0) return 'a user akv exists';
  for (const p of ['/etc/akv', '/usr/lib/akv', `${MODULES_DIR}/akv_provider.so`])
    if (existsSync(p)) return `${p} exists`;
  return undefined;
};
const skip = !isRoot
  ? 'installing the package needs root (run npm test as root)'
  : sh('dpkg', ['--version']).status !== 0
    ? 'dpkg is not installed: this is not a Debian system'
    : !nodejsPackage()
      ? 'Node.js is not installed as the nodejs Debian package (>= 20.19), which the package depends on'
      : alreadyThere()
        ? `akv is already on this machine (${alreadyThere()}): not touching it`
        : false;

interface Round {
  ops: number;
  errors: number;
  status: number | null;
  stderr: string;
}

describe(
  'INSTALLS akv ON THIS HOST: apt upgrade under load (root; purged at the end)',
  { skip },
  () => {
    let lock: { release: () => void } | undefined;
    let scratch: string;
    let emulator: RunningEmulator | undefined;
    let holder: SocketHolder | undefined;
    let logFile: string;
    let oldDeb: string;
    let newDeb: string;
    let hadUser = false;
    let hadGroup = false;

    before(async () => {
      const built = spawnSync('make', ['-s', '-C', join(REPO_ROOT, 'bench', 'driver')], {
        encoding: 'utf8',
      });
      assert.equal(built.status, 0, `building bench/driver: ${built.stderr}`);
      oldDeb = builtDeb().deb;
      scratch = mkdtempSync(join(tmpdir(), 'akv-deb-upgrade-'));
      chmodSync(scratch, 0o755); // the installed agent (user akv) reads its config and CA here
      newDeb = join(scratch, `akv_${NEW}.deb`);
      repackWithVersion(oldDeb, NEW, scratch, newDeb);
      console.log(
        `# deb-upgrade.test: installing ${oldDeb} on this host, then ${NEW} over it (waiting for /run/lock/akv-host-deb.lock and the dpkg lock); purged when the test ends`,
      );
      lock = await hostInstallLock();
      hadUser = sh('getent', ['passwd', 'akv']).status === 0;
      hadGroup = sh('getent', ['group', 'akv']).status === 0;
    });

    after(async () => {
      try {
        await holder?.stop();
        await emulator?.stop();
        if (sh('dpkg-query', ['-W', 'akv']).status === 0)
          sh('apt-get', [...APT_GET_ARGS, 'purge', 'akv']);
        if (!hadUser && sh('getent', ['passwd', 'akv']).status === 0)
          sh('deluser', ['--system', 'akv']);
        if (!hadGroup && sh('getent', ['group', 'akv']).status === 0)
          sh('delgroup', ['--system', 'akv']);
        if (scratch) rmSync(scratch, { recursive: true, force: true });
      } finally {
        lock?.release();
      }
    });

    const okBy = (pid: number): number => {
      let text = '';
      try {
        text = readFileSync(logFile, 'utf8');
      } catch {
        return 0;
      }
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.audit === true && l.pid === pid && l.status === 'OK').length;
    };
    const logOf = (pid: number): Array<Record<string, unknown>> =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.pid === pid);

    /** One akv-sign-bench run through the installed provider (OpenSSL's modules directory). */
    const round = (): Promise<Round> => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        AKV_AGENT_SOCKET: holder!.path,
        AKV_AGENT_AUTOSTART: '0',
        AKV_AGENT_USER: 'akv',
      };
      delete env.OPENSSL_MODULES;
      delete env.OPENSSL_CONF;
      return new Promise((resolve, reject) => {
        const child = spawn(
          SIGN_BENCH,
          [
            ...['--key', KEY, '--provider', 'akv_provider', '--provider', 'default'],
            ...['--threads', String(THREADS), '--duration-ms', String(ROUND_MS)],
          ],
          { env, cwd: '/' },
        );
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('error', reject);
        child.on('close', (status) => {
          let parsed: { ops?: number; errors?: number } = {};
          try {
            parsed = JSON.parse(out.trim().split('\n').pop() ?? '') as typeof parsed;
          } catch {
            /* asserted by the caller */
          }
          resolve({ ops: parsed.ops ?? -1, errors: parsed.errors ?? -1, status, stderr: err });
        });
      });
    };

    it('dpkg replaces the files under a running agent, the agent restarts: no signature fails, the new version answers', async (t) => {
      await aptGet(['install', '--no-install-recommends', oldDeb]);
      assert.equal(sh('dpkg-query', ['-W', '-f', '${Version}', 'akv']).out, OLD);

      emulator = await startEmulator();
      await emulator.keyClient().createKey(KEY_NAME, 'EC-HSM', { curve: 'P-256' });
      await emulator.setLatency(100);
      const ca = join(scratch, 'ca.pem');
      copyFileSync(emulator.caFile, ca);
      chmodSync(ca, 0o644);
      const logDir = join(scratch, 'log');
      mkdirSync(logDir);
      const akv = sh('id', ['-u', 'akv']).out.trim();
      chownSync(logDir, Number(akv), Number(sh('id', ['-g', 'akv']).out.trim()));
      logFile = join(logDir, 'agent.log');
      const config = join(scratch, 'agent.json');
      const vaults = emulatorConfig(emulator, HSM);
      (vaults.vaults[HSM] as { caFile: string }).caFile = ca;
      writeFileSync(
        config,
        JSON.stringify({
          socket: join(scratch, 'unused.sock'),
          ...vaults,
          log: { level: 'info', file: logFile },
        }),
      );
      chmodSync(config, 0o644);
      // akv-agent.service's ExecStart as its User=akv, on a socket kept across agents.
      holder = await holdSocket(
        join(scratch, 'agent.sock'),
        ['setpriv', '--reuid=akv', '--regid=akv', '--init-groups', '/usr/bin/akv', 'agent'],
        { PATH: '/usr/bin:/bin', AKV_CONFIG: config },
      );
      const first = await holder.startAgent();
      const hello = async (): Promise<string> => {
        const client = new AgentClient(holder!.path);
        try {
          return (await client.hello()).agentVersion;
        } finally {
          await client.close();
        }
      };
      assert.equal(await hello(), OLD);

      // The load: rounds of akv-sign-bench back to back until a round has run on the last agent.
      const rounds: Round[] = [];
      let lastAgentUp = false;
      const load = (async () => {
        for (;;) {
          const endsAfterLastAgent = lastAgentUp;
          rounds.push(await round());
          if (endsAfterLastAgent) return;
        }
      })();
      for (let i = 0; okBy(first) < 2 * THREADS; i++) {
        if (i > 1200) assert.fail(`the load did not start: ${holder.output()}`);
        await sleep(50);
      }

      // 1. The upgrade, under load. postinst would restart the service only when systemd runs.
      const beforeUpgrade = okBy(first);
      await aptGet(['install', '--no-install-recommends', newDeb]);
      assert.equal(sh('dpkg-query', ['-W', '-f', '${Version}', 'akv']).out, NEW);
      const postinst = readFileSync('/var/lib/dpkg/info/akv.postinst', 'utf8');
      assert.match(
        postinst,
        /deb-systemd-invoke \$_dh_action 'akv-agent\.service' >/,
        'postinst restarts akv-agent.service on upgrade',
      );
      assert.doesNotMatch(
        postinst,
        /deb-systemd-invoke (\$_dh_action|restart|try-restart)[^\n]*akv-agent\.socket/,
        'postinst must not restart akv-agent.socket (it would remove the socket and drop queued connections)',
      );
      assert.ok(okBy(first) > beforeUpgrade, 'the old agent did not sign during the upgrade');

      // 2. The old agent's first management call after its files were replaced.
      const client = new AgentClient(holder.path);
      const refused = await client.list(HSM).then(
        (names) =>
          assert.fail(`the old agent listed ${names.join(',')} with the new version's SDK`),
        (err: unknown) => err,
      );
      await client.close();
      assert.ok(refused instanceof AkvError, String(refused));
      assert.equal(refused.code, 'UNAVAILABLE');
      assert.match(
        refused.message,
        new RegExp(
          `akv ${NEW.replace(/\+/g, '\\+')} was installed in place of this running agent \\(akv ${OLD}\\)`,
        ),
      );
      assert.equal(await holder.exited(first), 0, 'the old agent did not stop cleanly');
      const stopping = logOf(first).find((l) => l.msg === 'stopping: finishing requests in flight');
      assert.equal(stopping?.signal, `akv ${NEW} installed in its place`);
      assert.equal(logOf(first).find((l) => l.msg === 'akv agent stopped')?.drained, true);

      // 3. The next connection starts the next agent (systemd's socket activation).
      const second = await holder.startAgent();
      assert.equal(await hello(), NEW);
      for (let i = 0; okBy(second) === 0; i++) {
        if (i > 1200) assert.fail(`the load did not come back: ${holder.output()}`);
        await sleep(50);
      }

      // 4. postinst's `deb-systemd-invoke restart akv-agent.service`: SIGTERM, then the next agent.
      process.kill(second, 'SIGTERM');
      assert.equal(await holder.exited(second), 0);
      const third = await holder.startAgent();
      lastAgentUp = true;
      await load;

      const ops = rounds.reduce((n, r) => n + r.ops, 0);
      const errors = rounds.reduce((n, r) => n + r.errors, 0);
      t.diagnostic(
        `${rounds.length} rounds: ${ops} signatures, ${errors} failed across apt upgrade ${OLD} -> ${NEW}, the old agent's refusal and stop, and postinst's restart (signatures by agent: ${okBy(first)}, ${okBy(second)}, ${okBy(third)})`,
      );
      for (const r of rounds) assert.equal(r.status, 0, `akv-sign-bench: ${r.stderr}`);
      assert.equal(errors, 0, `signatures failed: ${rounds.map((r) => r.stderr).join('')}`);
      assert.ok(okBy(third) > 0, 'the last agent signed nothing: the load did not come back');
      assert.equal(await hello(), NEW);
      const after = new AgentClient(holder.path);
      try {
        assert.deepEqual(await after.list(HSM), [KEY_NAME], 'the new agent lists keys');
      } finally {
        await after.close();
      }
    });
  },
);
