/**
 * The access policy end to end, as root (CI): one agent, two real users (www-data and nobody)
 * running the real `openssl` through akv_provider, each allowed one key by the policy. Each signs
 * with its own key and is refused the other's; nobody is refused an operation its rule does not
 * grant on its own key; a SIGHUP reload grants and revokes; the audit lines carry the uid and pid
 * the kernel gave (the pid of the openssl process the test started), not what the client said.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgent, type RunningAgent } from '../helpers/agent.js';
import { AgentClient } from '../../src/client/agent-client.js';
import { AkvError } from '../../src/errors.js';
import {
  AKV_BIN,
  REPO_ROOT,
  emulatorConfig,
  startEmulator,
  type RunningEmulator,
} from '../helpers/emulator.js';
import { socketActivate } from '../helpers/socket-activation.js';
import { opensslCnf } from '../provider/openssl-env.js';

const isRoot = process.getuid?.() === 0;
const userExists = (name: string): boolean =>
  spawnSync('getent', ['passwd', name], { stdio: 'ignore' }).status === 0;
const skip = !isRoot
  ? 'needs root to run openssl as www-data and nobody'
  : !userExists('www-data') || !userExists('nobody')
    ? 'needs the users www-data and nobody'
    : false;

const HSM = 'policyhsm';
/** The socket's group: both users get it as a supplementary group (setpriv --groups). */
const SOCKET_GROUP = 'users';

interface Run {
  status: number | null;
  stderr: string;
  pid: number;
}

function policy(grants: { web: string[]; job: string[]; nobodyOnWeb?: string[] }): object {
  const rules: object[] = [
    { name: 'operators', users: ['root'], keys: [`managedhsm:${HSM}:*`], operations: ['describe'] },
    { name: 'web', users: ['www-data'], keys: [`managedhsm:${HSM}:web-*`], operations: grants.web },
    { name: 'job', users: ['nobody'], keys: [`managedhsm:${HSM}:job-key`], operations: grants.job },
  ];
  if (grants.nobodyOnWeb)
    rules.push({
      name: 'nobody-web',
      users: [65534],
      keys: [`managedhsm:${HSM}:web-key`],
      operations: grants.nobodyOnWeb,
    });
  return { name: 'test-host', rules };
}

describe('access policy: two users, one agent', { skip }, () => {
  let emulator: RunningEmulator;
  let agent: RunningAgent;
  // Readable by www-data and nobody: the provider module, openssl.cnf, the data to sign.
  const open = mkdtempSync(join(tmpdir(), 'akv-policy-'));
  const data = join(open, 'data.txt');
  const cnf = join(open, 'openssl.cnf');

  before(async () => {
    chmodSync(open, 0o755);
    copyFileSync(
      join(REPO_ROOT, 'provider', 'build', 'akv_provider.so'),
      join(open, 'akv_provider.so'),
    );
    writeFileSync(data, 'who may sign this\n');
    emulator = await startEmulator();
    const keys = emulator.keyClient();
    await keys.createKey('web-key', 'EC-HSM', { curve: 'P-256' });
    await keys.createKey('job-key', 'RSA-HSM', { keySize: 2048 });
    agent = await startAgent({
      emulator,
      hsmName: HSM,
      extraConfig: {
        socketGroup: SOCKET_GROUP,
        policy: policy({ web: ['describe', 'sign'], job: ['describe', 'sign'] }) as never,
      },
    });
    chmodSync(agent.dir, 0o711); // the socket's directory is 0750 in SOCKET_GROUP below it
    writeFileSync(cnf, opensslCnf([`agent_socket = ${agent.socket}`, 'autostart = no']));
    chmodSync(cnf, 0o644);
  });

  after(async () => {
    await agent?.stop();
    await emulator?.stop();
    rmSync(open, { recursive: true, force: true });
  });

  /** `openssl ARGS` through akv_provider as USER (the process's pid is the child's: setpriv execs). */
  function opensslAs(user: string, args: string[]): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(
        'setpriv',
        [
          `--reuid=${user}`,
          `--regid=${user === 'nobody' ? 'nogroup' : user}`,
          `--groups=${SOCKET_GROUP}`,
          'openssl',
          ...args,
        ],
        {
          cwd: open,
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            OPENSSL_CONF: cnf,
            OPENSSL_MODULES: open,
            AKV_AGENT_AUTOSTART: '0',
          },
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.resume();
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stderr, pid: child.pid ?? 0 }));
    });
  }

  const sign = (user: string, key: string): Promise<Run> =>
    opensslAs(user, [
      'dgst',
      '-sha256',
      '-sign',
      `managedhsm:${HSM}:${key}`,
      '-out',
      '/dev/null',
      data,
    ]);

  async function audit(pid: number): Promise<Array<Record<string, unknown>>> {
    return (await agent.logLines()).filter((l) => l.audit === true && l.client_pid === pid);
  }

  it('logs the policy in force at start', async () => {
    const lines = await agent.logLines();
    assert.ok(
      lines.some(
        (l) =>
          l.msg ===
            'access policy in force: clients may use only the keys and operations its rules grant' &&
          l.policy === 'test-host' &&
          l.rules === 3,
      ),
      'no "access policy in force" line',
    );
  });

  it('each user signs with its own key; the audit line has the kernel uid and pid', async () => {
    const web = await sign('www-data', 'web-key');
    assert.equal(web.status, 0, `www-data could not sign with web-key: ${web.stderr}`);
    const job = await sign('nobody', 'job-key');
    assert.equal(job.status, 0, `nobody could not sign with job-key: ${job.stderr}`);
    const [webLine] = (await audit(web.pid)).filter((l) => l.op === 'sign');
    assert.ok(webLine, `no audit line with client_pid ${web.pid}`);
    assert.equal(webLine.status, 'OK');
    assert.equal(webLine.uid, 33);
    assert.equal(webLine.pid_source, 'kernel');
    assert.equal(webLine.rule, 'web');
    // The provider pins the version it described: a pattern covers every version.
    assert.match(webLine.uri as string, new RegExp(`^managedhsm:${HSM}:web-key\\?version=`));
    const [jobLine] = (await audit(job.pid)).filter((l) => l.op === 'sign');
    assert.ok(jobLine, `no audit line with client_pid ${job.pid}`);
    assert.equal(jobLine.uid, 65534);
    assert.equal(jobLine.gid, 65534);
    assert.equal(jobLine.rule, 'job');
  });

  it("each is refused the other's key, with ACCESS_DENIED naming policy, peer and key, audited", async () => {
    const web = await sign('www-data', 'job-key');
    assert.notEqual(web.status, 0);
    assert.match(web.stderr, /access denied by the akv agent's policy/);
    assert.match(
      web.stderr,
      new RegExp(
        `access denied by policy "test-host": uid 33 \\(www-data\\), gid 33 \\(www-data\\), pid ${web.pid} may not describe managedhsm:${HSM}:job-key`,
      ),
    );
    const job = await sign('nobody', 'web-key');
    assert.notEqual(job.status, 0);
    assert.match(
      job.stderr,
      new RegExp(
        `uid 65534 \\(nobody\\).* pid ${job.pid} may not describe managedhsm:${HSM}:web-key \\(the rules for this client \\("job"`,
      ),
    );
    const [denied] = await audit(job.pid);
    assert.ok(denied, `no audit line for the refusal of pid ${job.pid}`);
    assert.equal(denied.status, 'ACCESS_DENIED');
    assert.equal(denied.op, 'describe');
    assert.equal(denied.uid, 65534);
    assert.equal(denied.pid_source, 'kernel');
  });

  it('an operation the rule does not grant on an allowed key is refused (nobody decrypting with job-key)', async () => {
    // The public key is exported by root (rule "operators": describe), encryption is local.
    const pub = join(open, 'job.pub');
    const ct = join(open, 'ct.bin');
    const env = {
      ...process.env,
      OPENSSL_CONF: cnf,
      OPENSSL_MODULES: open,
      AKV_AGENT_AUTOSTART: '0',
    };
    let r = spawnSync(
      'openssl',
      ['pkey', '-in', `managedhsm:${HSM}:job-key`, '-pubout', '-out', pub],
      { env, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    r = spawnSync(
      'openssl',
      ['pkeyutl', '-encrypt', '-pubin', '-inkey', pub, '-in', data, '-out', ct],
      { env, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    chmodSync(ct, 0o644);
    const dec = await opensslAs('nobody', [
      'pkeyutl',
      '-decrypt',
      '-inkey',
      `managedhsm:${HSM}:job-key`,
      '-in',
      ct,
      '-out',
      '/dev/null',
    ]);
    assert.notEqual(
      dec.status,
      0,
      'nobody decrypted although its rule grants only describe and sign',
    );
    assert.match(
      dec.stderr,
      new RegExp(`pid ${dec.pid} may not decrypt managedhsm:${HSM}:job-key`),
    );
    const lines = await audit(dec.pid);
    const refused = lines.find((l) => l.op === 'decrypt');
    assert.ok(refused, 'no audit line for the refused decrypt');
    assert.equal(refused.status, 'ACCESS_DENIED');
    assert.equal(refused.uid, 65534);
  });

  it('a SIGHUP reload grants and revokes; a broken policy is refused and the old one stays', async () => {
    const config = JSON.parse(await readFile(agent.configFile, 'utf8')) as Record<string, unknown>;
    // Revoke www-data's sign, grant nobody sign on web-key.
    config.policy = policy({
      web: ['describe'],
      job: ['describe', 'sign'],
      nobodyOnWeb: ['describe', 'sign'],
    });
    await writeFile(agent.configFile, JSON.stringify(config));
    await agent.reload();
    const granted = await sign('nobody', 'web-key');
    assert.equal(
      granted.status,
      0,
      `nobody was not granted web-key by the reload: ${granted.stderr}`,
    );
    const [line] = (await audit(granted.pid)).filter((l) => l.op === 'sign');
    assert.equal(line?.rule, 'nobody-web');
    const revoked = await sign('www-data', 'web-key');
    assert.notEqual(revoked.status, 0, 'www-data still signs after the reload revoked it');
    assert.match(
      revoked.stderr,
      /may not sign managedhsm:policyhsm:web-key \(the rules for this client \("web": describe on/,
    );

    // An unknown user: the whole reload is refused, the policy just loaded stays in force.
    config.policy = {
      rules: [
        {
          name: 'x',
          users: ['no-such-user-akv'],
          keys: [`managedhsm:${HSM}:*`],
          operations: ['sign'],
        },
      ],
    };
    await writeFile(agent.configFile, JSON.stringify(config));
    await agent.reload();
    const lines = await agent.logLines();
    assert.ok(
      lines.some(
        (l) =>
          typeof l.error === 'string' &&
          l.error.includes('there is no user named "no-such-user-akv"'),
      ),
      'the refused reload was not logged',
    );
    const still = await sign('nobody', 'web-key');
    assert.equal(still.status, 0, `the refused reload changed the policy: ${still.stderr}`);
  });
});

describe('no policy', () => {
  it('one info line at start says that no policy is set; audit lines still carry the kernel pid', async () => {
    const emulator = await startEmulator();
    try {
      await emulator.keyClient().createKey('k', 'EC-HSM', { curve: 'P-256' });
      const agent = await startAgent({ emulator, hsmName: HSM });
      try {
        const client = agent.client();
        await client.sign(`managedhsm:${HSM}:k`, 'ES256', Buffer.alloc(32, 1));
        const lines = await agent.logLines();
        assert.equal(
          lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('no access policy set'))
            .length,
          1,
        );
        const audit = lines.find((l) => l.audit === true);
        assert.equal(audit?.client_pid, process.pid);
        assert.equal(audit?.pid_source, 'kernel');
        assert.equal(audit?.uid, process.getuid?.());
      } finally {
        await agent.stop();
      }
    } finally {
      await emulator.stop();
    }
  });
});

describe('a socket passed by systemd (LISTEN_FDS)', () => {
  it('the agent reads peer credentials on it too: the policy is enforced on the kernel pid', async () => {
    const emulator = await startEmulator();
    const dir = mkdtempSync(join(tmpdir(), 'akv-policy-activated-'));
    try {
      await emulator.keyClient().createKey('k', 'EC-HSM', { curve: 'P-256' });
      const logFile = join(dir, 'agent.log');
      const configFile = join(dir, 'config.json');
      const uid = process.getuid?.() ?? 0;
      writeFileSync(
        configFile,
        JSON.stringify({
          socket: join(dir, 'unused.sock'),
          ...emulatorConfig(emulator, HSM),
          log: { level: 'info', file: logFile },
          policy: {
            name: 'activated',
            rules: [
              { name: 'me', users: [uid], keys: [`managedhsm:${HSM}:k`], operations: ['describe'] },
            ],
          },
        }),
      );
      const socket = join(dir, 'agent.sock');
      const activated = await socketActivate(socket, [AKV_BIN, 'agent'], {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        AKV_CONFIG: configFile,
      });
      const client = new AgentClient(socket);
      try {
        const d = await client.describe(`managedhsm:${HSM}:k`);
        assert.equal(d.keyType, 'EC');
        await assert.rejects(
          client.sign(`managedhsm:${HSM}:k`, 'ES256', Buffer.alloc(32, 1)),
          (err: unknown) =>
            err instanceof AkvError &&
            err.code === 'ACCESS_DENIED' &&
            err.message.includes(`pid ${process.pid} may not sign managedhsm:${HSM}:k`),
        );
      } finally {
        await client.close();
        assert.equal(await activated.stop(), 0, activated.stderr());
      }
      const lines = (await readFile(logFile, 'utf8'))
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const refused = lines.find((l) => l.audit === true && l.op === 'sign');
      assert.equal(refused?.status, 'ACCESS_DENIED');
      assert.equal(refused?.client_pid, process.pid);
      assert.equal(refused?.uid, uid);
      assert.equal(refused?.pid_source, 'kernel');
    } finally {
      await emulator.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
