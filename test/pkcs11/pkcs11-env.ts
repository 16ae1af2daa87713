/**
 * Shared set-up of the PKCS#11 tests: the module built by `make -C pkcs11` (what `npm run build`
 * does), a real emulator and agent from `bin/akv dev up` (test/provider/openssl-env.ts), and the
 * real programs run with that environment, as a person would type them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/emulator.js';
import { PROVIDERS, runSync, type ProviderEnv, type Run } from '../provider/openssl-env.js';

export const PKCS11_DIR = join(REPO_ROOT, 'pkcs11');
export const MODULE = join(PKCS11_DIR, 'build', 'libakv_pkcs11.so');

/** `make -C pkcs11 TARGET` (the module is up to date after it). */
export function makeModule(target = 'all'): void {
  const r = spawnSync('make', ['-s', '-C', PKCS11_DIR, target], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, `make -C pkcs11 ${target} failed:\n${r.stdout}${r.stderr}`);
}

/** Runs a program with the test environment whatever the outcome. */
export function run(
  pe: ProviderEnv,
  cmd: string,
  args: string[],
  options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Run {
  return runSync(cmd, args, options.env ?? pe.env, pe.dir, options.input, options.timeoutMs);
}

/** Like run() but asserts exit status 0. */
export function runOk(
  pe: ProviderEnv,
  cmd: string,
  args: string[],
  options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Run {
  const r = run(pe, cmd, args, options);
  assert.equal(
    r.status,
    0,
    `${cmd} ${args.join(' ')} failed (${r.status} ${r.signal}):\n${r.stdout}\n${r.stderr}`,
  );
  return r;
}

/** `pkcs11-tool --module libakv_pkcs11.so ARGS`, asserting success. */
export function tool(pe: ProviderEnv, args: string[], input?: Buffer | string): Run {
  return runOk(pe, 'pkcs11-tool', ['--module', MODULE, ...args], { input });
}

/** The CKA_ID (hex) of the key labelled `label`, as `pkcs11-tool -O` lists it. */
export function keyId(pe: ProviderEnv, label: string): string {
  const listing = tool(pe, ['-O', '--type', 'privkey']).stdout;
  const block = listing.split(/\n(?=\S)/).find((b) => new RegExp(`label:\\s+${label}\\n`).test(b));
  const id = block && /ID:\s+([0-9a-f]+)/.exec(block)?.[1];
  assert.ok(id, `no private key labelled ${label} in:\n${listing}`);
  return id;
}

/** The key's public key as the provider exports it (PEM), to verify with plain OpenSSL. */
export function providerPublicKey(pe: ProviderEnv, key: string): string {
  const pub = pe.file(`${key}.provider.pub.pem`);
  pe.opensslOk([
    'pkey',
    ...PROVIDERS,
    '-in',
    `managedhsm:${pe.hsm}:${key}`,
    '-pubout',
    '-out',
    pub,
  ]);
  return pub;
}
