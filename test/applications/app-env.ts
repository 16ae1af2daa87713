/**
 * Shared set-up of the application tests: one dev environment (emulator + agent from
 * `bin/akv dev up`) per test file, HSM keys with key-reference files and certificates, an
 * openssl.cnf activating the provider for applications that only read PEM files, and what every
 * test checks the same way:
 *   - results are verified with plain OpenSSL (`plainEnv`: no provider, no akv variable);
 *   - public keys are compared with the one the HSM reports (`akv key show`, converted by
 *     node:crypto, so the provider takes no part in the comparison);
 *   - the agent's audit log shows the HSM signatures an action made, and which process asked.
 * Servers are in servers.ts, the TLS checks in tls-checks.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  runSync,
  startProviderEnv,
  type ProviderEnv,
  type ProviderEnvOptions,
  type Run,
} from '../provider/openssl-env.js';

export { freePort, type Run } from '../provider/openssl-env.js';

/** The variables that would let a process find the provider or the agent. */
const AKV_VARIABLES = [
  'OPENSSL_CONF',
  'OPENSSL_MODULES',
  'AKV_CONFIG',
  'AKV_AGENT_SOCKET',
  'AKV_HSM_NAME',
  'AKV_LOG_FILE',
  'AKV_LOG_LEVEL',
];

/** Why a test of an application cannot run here (its command is missing), or undefined. */
export function missingCommand(command: string, debianPackage: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command} || test -x /usr/sbin/${command}`], {
    stdio: 'ignore',
  });
  if (found.status === 0) return undefined;
  return `${command} is not installed: as root, npm test installs it (scripts/setup.mjs); or run apt-get install ${debianPackage}`;
}

/** A key in the HSM with its key-reference file and a self-signed certificate. */
export interface HsmKey {
  name: string;
  uri: string;
  /** `bin/akv keyref URI --out FILE`. */
  keyref: string;
  cert: string;
  /** SubjectPublicKeyInfo PEM of the HSM key, from `akv key show` (not through the provider). */
  publicKeyPem: string;
}

export interface KeySpec {
  kty: 'RSA-HSM' | 'EC-HSM';
  /** `-subj` of the certificate (default /CN=localhost). */
  subject?: string;
  /** `-addext` values for the certificate (default: subjectAltName=DNS:localhost). */
  extensions?: string[];
}

export interface AppEnv extends ProviderEnv {
  /** An openssl.cnf activating default then akv_provider (agent_socket filled in). */
  opensslCnf: string;
  /** `env` plus OPENSSL_CONF=opensslCnf: what an application without -provider options needs. */
  cnfEnv: NodeJS.ProcessEnv;
  /** An environment in which nothing can reach the provider or the agent. */
  plainEnv: NodeJS.ProcessEnv;
  /** Creates an HSM key, its key-reference file and a certificate made with the HSM key. */
  hsmKey(name: string, spec: KeySpec): HsmKey;
  /** Runs plain `openssl ARGS` (no provider) and asserts exit 0. */
  plainOpensslOk(args: string[], input?: string): Run;
  /** Runs COMMAND ARGS to its end with `env` (default cnfEnv). */
  run(command: string, args: string[], env?: NodeJS.ProcessEnv, input?: string): Run;
  /** Runs ACTION and returns its result with the HSM signatures the agent logged meanwhile. */
  signedDuring<T>(key: HsmKey, action: () => T): { result: T; made: LoggedSignature[] };
}

export interface LoggedSignature {
  alg: string;
  clientPid: number;
}

/** Starts the dev environment for one test file. */
export async function startAppEnv(
  prefix: string,
  hsm: string,
  options: ProviderEnvOptions = {},
): Promise<AppEnv> {
  const pe = await startProviderEnv(prefix, hsm, options);
  const opensslCnf = pe.writeOpensslCnf();
  const plainEnv = { ...pe.env };
  for (const name of AKV_VARIABLES) delete plainEnv[name];
  const cnfEnv = { ...pe.env, OPENSSL_CONF: opensslCnf };
  const agentLog = join(pe.dir, 'dev', 'agent.log');

  const app: AppEnv = Object.assign(pe, {
    opensslCnf,
    cnfEnv,
    plainEnv,
    hsmKey(name: string, spec: KeySpec): HsmKey {
      const args =
        spec.kty === 'RSA-HSM' ? ['--kty', 'RSA-HSM', '--size', '2048'] : ['--kty', 'EC-HSM'];
      const uri = pe.createKey(name, ...args);
      const keyref = pe.file(`${name}.ref.pem`);
      pe.akv(['keyref', uri, '--out', keyref]);
      const cert = pe.file(`${name}.crt`);
      const extensions = spec.extensions ?? ['subjectAltName=DNS:localhost'];
      pe.opensslOk(
        [
          'req',
          '-new',
          '-x509',
          '-key',
          keyref,
          '-subj',
          spec.subject ?? '/CN=localhost',
          ...extensions.flatMap((e) => ['-addext', e]),
          '-days',
          '2',
          '-out',
          cert,
        ],
        { env: cnfEnv },
      );
      return { name, uri, keyref, cert, publicKeyPem: hsmPublicKeyPem(pe, name) };
    },
    plainOpensslOk(args: string[], input?: string): Run {
      const r = runSync('openssl', args, plainEnv, pe.dir, input);
      assert.equal(r.status, 0, `plain openssl ${args.join(' ')} failed:\n${r.stderr}`);
      return r;
    },
    run(command: string, args: string[], env = cnfEnv, input?: string): Run {
      return runSync(command, args, env, pe.dir, input);
    },
    signedDuring<T>(key: HsmKey, action: () => T): { result: T; made: LoggedSignature[] } {
      const before = readSignatures(agentLog, key.uri).length;
      const result = action();
      return { result, made: readSignatures(agentLog, key.uri).slice(before) };
    },
  });
  return app;
}

/** The HSM's public key (`akv key show`) as SubjectPublicKeyInfo PEM. */
function hsmPublicKeyPem(pe: ProviderEnv, name: string): string {
  const shown = JSON.parse(pe.akv(['key', 'show', '--hsm-name', pe.hsm, '--name', name]).stdout)
    .key as Record<string, string>;
  const jwk = shown.kty?.startsWith('EC')
    ? { kty: 'EC', crv: shown.crv, x: shown.x, y: shown.y }
    : { kty: 'RSA', n: shown.n, e: shown.e };
  return createPublicKey({ key: jwk, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
}

/** Successful `sign` lines of the agent's audit log for one key URI (any pinned version). */
function readSignatures(logFile: string, uri: string): LoggedSignature[] {
  if (!existsSync(logFile)) return [];
  const out: LoggedSignature[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as Record<string, unknown>;
    const logged = String(entry.uri ?? '');
    if (entry.op !== 'sign' || entry.result !== 'ok') continue;
    if (logged !== uri && !logged.startsWith(`${uri}?`)) continue;
    out.push({ alg: String(entry.alg), clientPid: Number(entry.client_pid) });
  }
  return out;
}

/** The line of a command's version output that names its version (for the test log and docs). */
export function versionOf(app: AppEnv, command: string, args: string[]): string {
  const r = app.run(command, args, app.plainEnv);
  const lines = `${r.stdout}${r.stderr}`.split('\n');
  return lines.find((l) => /\d+\.\d+/.test(l))?.trim() ?? '(unknown)';
}
