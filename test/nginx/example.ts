/**
 * Drives examples/nginx from the tests the way a person does: the step scripts with a settings
 * file of the test's own (free ports, a private state directory, a unique HSM name), so that test
 * files can run side by side. Also a small TLS client (node:tls, no session reuse, so every
 * connection is a full handshake that the HSM key signs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  exampleEnv,
  makeTestDir as makeDir,
  mustSucceed,
  runExampleScript,
  uniqueHsmName,
  type ScriptResult,
} from '../helpers/example-scripts.js';
import { matrixExampleEnv } from '../provider/openssl-env.js';

export {
  processAlive,
  readPid,
  uniqueHsmName,
  type ScriptResult,
} from '../helpers/example-scripts.js';

export const REPO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const EXAMPLE_DIR = join(REPO_DIR, 'examples', 'nginx');

/**
 * Why the example cannot run in this checkout (the provider or an akv command not built yet), or
 * undefined. `npm test` builds everything first, so there this is always undefined.
 */
export function missingPrerequisite(): string | undefined {
  const needed = [
    join(REPO_DIR, 'provider', 'build', 'akv_provider.so'),
    ...['agent', 'emulator', 'key', 'keyref'].map((c) =>
      join(REPO_DIR, 'dist', 'src', 'cli', 'commands', `${c}.js`),
    ),
  ];
  const missing = needed.find((f) => !existsSync(f));
  return missing ? `not built: ${missing} (run npm run build)` : undefined;
}

/** The settings a running example was set up with (the .env file) and the paths derived from them. */
export interface ExampleSettings {
  envFile: string;
  hsmName: string;
  rsaKey: string;
  ecKey: string;
  rsaPort: number;
  ecPort: number;
  stateDir: string;
  rsaCert: string;
  ecCert: string;
  agentLog: string;
  agentPidFile: string;
  nginxPidFile: string;
  nginxPrefix: string;
  opensslCnf: string;
}

/** Runs one script of examples/nginx (asynchronously, so a test's own servers keep running). */
export function runScript(
  script: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<ScriptResult> {
  return runExampleScript(EXAMPLE_DIR, script, args, { ...matrixExampleEnv(), ...extraEnv });
}

/** Fails with the script's whole output when it did not exit 0. */
export async function runStep(script: string, args: string[]): Promise<ScriptResult> {
  return mustSucceed(await runScript(script, args), script, args);
}

export function readSettings(envFile: string): ExampleSettings {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) vars[m[1] as string] = m[2] as string;
  }
  const get = (name: string): string => {
    const v = vars[name];
    if (!v) throw new Error(`${envFile} does not set ${name}`);
    return v;
  };
  const stateDir = get('STATE_DIR');
  return {
    envFile,
    hsmName: get('AKV_HSM_NAME'),
    rsaKey: get('RSA_KEY_NAME'),
    ecKey: get('EC_KEY_NAME'),
    rsaPort: Number(get('RSA_PORT')),
    ecPort: Number(get('EC_PORT')),
    stateDir,
    rsaCert: join(stateDir, 'certs', 'rsa.crt'),
    ecCert: join(stateDir, 'certs', 'ec.crt'),
    // examples/nginx/lib/common.sh: `bin/akv dev up --dir STATE_DIR/dev` in emulator mode, the
    // agent alone as the service akv-agent of STATE_DIR/dev for Azure.
    ...(vars.AKV_MODE === 'azure'
      ? {
          agentLog: join(stateDir, 'logs', 'agent.log'),
          agentPidFile: join(stateDir, 'dev', 'akv-agent.pid'),
        }
      : {
          agentLog: join(stateDir, 'dev', 'agent.log'),
          agentPidFile: join(stateDir, 'dev', 'agent.pid'),
        }),
    nginxPidFile: join(stateDir, 'nginx', 'nginx.pid'),
    nginxPrefix: join(stateDir, 'nginx'),
    opensslCnf: join(stateDir, 'openssl.cnf'),
  };
}

/** A private directory for one test file's settings file. */
export function makeTestDir(label: string): string {
  return makeDir('nginx', label);
}

/**
 * Sets the example up and starts it: setup.sh, start.sh.
 * Call `stopExample` afterwards (also after a failure).
 */
export async function startExample(label: string, workers: number): Promise<ExampleSettings> {
  const dir = makeTestDir(label);
  const envFile = join(dir, '.env');
  await runStep('setup.sh', [
    '--env-file',
    envFile,
    '--hsm-name',
    uniqueHsmName(label),
    '--workers',
    String(workers),
  ]);
  const settings = readSettings(envFile);
  await runStep('start.sh', ['--env-file', envFile]);
  return settings;
}

/** Stops nginx, the agent and the emulator, and removes everything the example made. */
export async function stopExample(settings: ExampleSettings | undefined): Promise<void> {
  if (!settings) return;
  await runScript('stop.sh', ['--env-file', settings.envFile, '--all']);
  rmSync(dirname(settings.envFile), { recursive: true, force: true });
}

/** The pids of a process's children (nginx workers of a master), sorted. */
export function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent) out.push(Number(name));
    } catch {
      // the process exited while we looked
    }
  }
  return out.sort((a, b) => a - b);
}

/** Runs nginx on the example's prefix and configuration with extra arguments (e.g. -s reload). */
export function nginxSignal(settings: ExampleSettings, signal: string): ScriptResult {
  const nginx = spawnSync('sh', ['-c', 'command -v nginx || echo /usr/sbin/nginx'], {
    encoding: 'utf8',
  }).stdout.trim();
  const r = spawnSync(
    nginx,
    [
      '-p',
      settings.nginxPrefix,
      '-c',
      join(settings.nginxPrefix, 'nginx.conf'),
      '-e',
      join(settings.nginxPrefix, 'logs', 'error.log'),
      '-s',
      signal,
    ],
    { encoding: 'utf8', env: exampleEnv({ OPENSSL_CONF: settings.opensslCnf }) },
  );
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** How many successful signatures the agent logged for one key (examples/nginx/lib/agent-log.mjs). */
export function loggedSignatures(settings: ExampleSettings, keyName: string): number {
  const r = spawnSync(
    process.execPath,
    [join(EXAMPLE_DIR, 'lib', 'agent-log.mjs'), settings.agentLog, settings.hsmName, keyName],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`agent-log.mjs failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

export interface HttpsAnswer {
  status: number;
  body: string;
  protocol: string;
  cipher: string;
}

/**
 * One full TLS handshake with 127.0.0.1:port (name localhost, certificate verified against ca, no
 * session reuse) and one HTTP/1.1 GET over it.
 */
export function httpsGet(
  port: number,
  ca: string,
  path = '/',
  versions: { minVersion?: tls.SecureVersion; maxVersion?: tls.SecureVersion } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca,
      ...versions,
    });
    socket.setTimeout(20000, () =>
      socket.destroy(new Error(`no answer from 127.0.0.1:${port} within 20 s`)),
    );
    let data = '';
    let protocol = '';
    let cipher = '';
    socket.on('secureConnect', () => {
      protocol = socket.getProtocol() ?? '';
      cipher = socket.getCipher().standardName;
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', reject);
    socket.on('end', () => {
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/.exec(data);
      if (!m)
        return reject(
          new Error(
            `not an HTTP answer from 127.0.0.1:${port}: ${JSON.stringify(data.slice(0, 200))}`,
          ),
        );
      resolve({ status: Number(m[1]), body: m[2] as string, protocol, cipher });
    });
  });
}

/** Polls `check` every 100 ms until it is true; false after `ms`. */
export async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
