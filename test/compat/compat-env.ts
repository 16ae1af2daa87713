/**
 * The set-up a user of the original provider (microsoft/AzureKeyVaultManagedHSMEngine) has, with
 * only hosts, ports and paths changed: an `az` on PATH that prints an access token (here the
 * emulator's), AZURE_CLI_ACCESS_TOKEN taken from it, nothing akv started by hand (the provider
 * starts the agent), and the emulator standing in for the HSM. Each case gets its own
 * XDG_RUNTIME_DIR, so the agent's socket is private to it; every agent started is stopped at the end.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentsOn } from '../helpers/autostart-env.js';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { PROVIDER_MODULES_DIR, runSync, type Run } from '../provider/openssl-env.js';

export interface CompatEnv {
  hsm: string;
  work: string;
  emulator: RunningEmulator;
  /** The directory holding the `az` stand-in. */
  azDir: string;
  /** The token `az account get-access-token ... -o tsv` prints. */
  token: string;
  /** A fresh 0700 runtime directory (the agent's socket lives in DIR/akv/). */
  runtime(name: string): string;
  /** The environment of the original's scripts: AZURE_CLI_ACCESS_TOKEN from `az`, PATH with az. */
  env(runtime: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  openssl(args: string[], env: NodeJS.ProcessEnv, input?: Buffer | string): Run;
  opensslOk(args: string[], env: NodeJS.ProcessEnv, input?: Buffer | string): Run;
  akv(args: string[], env: NodeJS.ProcessEnv): Run;
  file(name: string): string;
  close(): Promise<void>;
}

export { agentsOn };

export async function startCompatEnv(prefix: string, hsm: string): Promise<CompatEnv> {
  const work = mkdtempSync(join(tmpdir(), `akv-${prefix}-`));
  const token = `compat-${process.pid}-token`;
  const emulator = await startEmulator({ token });
  const azDir = join(work, 'bin');
  mkdirSync(azDir);
  // The `az` stand-in: what `az account get-access-token --resource ... --query accessToken -o tsv` prints.
  writeFileSync(
    join(azDir, 'az'),
    `#!/bin/sh\ncase "$*" in *get-access-token*) echo '${token}';; *) echo "az stand-in: $*" >&2; exit 1;; esac\n`,
    { mode: 0o755 },
  );
  const config = join(work, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      vaults: {
        [hsm]: {
          endpoint: emulator.url,
          caFile: emulator.caFile,
          disableChallengeResourceVerification: true,
        },
      },
    }),
  );
  const runtimes: string[] = [];
  const self: CompatEnv = {
    hsm,
    work,
    emulator,
    azDir,
    token,
    runtime(name) {
      const dir = join(work, `run-${name}`);
      mkdirSync(dir, { mode: 0o700 });
      runtimes.push(dir);
      return dir;
    },
    env(runtime, extra = {}) {
      const env: NodeJS.ProcessEnv = {
        ...cleanAkvEnv(),
        AKV_CONFIG: config,
        XDG_RUNTIME_DIR: runtime,
        OPENSSL_MODULES: PROVIDER_MODULES_DIR,
        PATH: `${azDir}:${process.env.PATH ?? ''}`,
      };
      for (const k of ['OPENSSL_CONF', 'RUST_LOG', 'AKV_PROVIDER_LOG', 'AKV_DEFAULT_VAULT'])
        delete env[k];
      delete env.AZURE_MANAGEDHSM_URL;
      delete env.AKV_RSA_DECRYPT_PADDING;
      const az = runSync(
        'az',
        [
          'account',
          'get-access-token',
          '--resource',
          'https://managedhsm.azure.net',
          '--query',
          'accessToken',
          '-o',
          'tsv',
        ],
        env,
        work,
      );
      assert.equal(az.status, 0, az.stderr);
      env.AZURE_CLI_ACCESS_TOKEN = az.stdout.trim();
      return { ...env, ...extra };
    },
    openssl(args, env, input) {
      return runSync('openssl', args, env, work, input);
    },
    opensslOk(args, env, input) {
      const r = self.openssl(args, env, input);
      assert.equal(r.status, 0, `openssl ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
      return r;
    },
    akv(args, env) {
      const r = runSync(AKV_BIN, args, env, work);
      assert.equal(r.status, 0, `akv ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
      return r;
    },
    file: (name) => join(work, name),
    async close() {
      for (const dir of runtimes) {
        const socket = join(dir, 'akv', 'agent.sock');
        for (const pid of agentsOn(socket)) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // gone already
          }
        }
        const end = Date.now() + 20_000;
        while (agentsOn(socket).length > 0 && Date.now() < end)
          await new Promise((r) => setTimeout(r, 50));
      }
      await emulator.stop();
      rmSync(work, { recursive: true, force: true });
    },
  };
  return self;
}

/** The keys runtest.sh expects (its defaults: myrsakey RSA 3072, ecckey EC P-256, myaeskey AES 256). */
export function createOriginalKeys(ce: CompatEnv, env: NodeJS.ProcessEnv): void {
  const create = (name: string, ...args: string[]): void => {
    ce.akv(['key', 'create', '--hsm-name', ce.hsm, '--name', name, ...args], env);
  };
  create('myrsakey', '--kty', 'RSA-HSM', '--size', '3072');
  create('ecckey', '--kty', 'EC-HSM', '--curve', 'P-256');
  create('myaeskey', '--kty', 'oct-HSM', '--size', '256');
}

/**
 * An openssl.cnf of the shape of the original's testOpenssl.cnf / openssl-provider.cnf templates:
 * default first, then the provider's section `akv_provider_sect` with `module = MODULE` (none when
 * MODULE is undefined: the name akv_provider then finds akv_provider.so).
 */
export function originalStyleCnf(
  module: string | undefined,
  akvLines: string[] = [],
  extra: string[] = [],
): string {
  return [
    'openssl_conf = openssl_init',
    '',
    '[openssl_init]',
    'providers = provider_sect',
    '',
    '[provider_sect]',
    'default = default_sect',
    'akv_provider = akv_provider_sect',
    '',
    '[default_sect]',
    'activate = 1',
    '',
    '[akv_provider_sect]',
    ...(module !== undefined ? [`module = ${module}`] : []),
    'activate = 1',
    ...akvLines,
    '',
    ...extra,
    '',
  ].join('\n');
}
