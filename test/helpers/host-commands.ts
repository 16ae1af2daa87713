/**
 * What the packaging tests (deb.test.ts, deb-install.test.ts) share besides the build itself
 * (deb-build.ts): commands run on the host as an administrator types them (from `/`, output
 * captured, bounded in time), the checkout's package.json, OpenSSL's modules directory, and a
 * scratch directory that the installed agent (user akv) can read.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './emulator.js';

export interface HostRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface HostRunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs `cmd` (from `/` unless told otherwise, 10 minutes at most) and returns what it printed. */
export function sh(cmd: string, args: string[], opts: HostRunOptions = {}): HostRun {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    cwd: opts.cwd ?? '/',
    env: opts.env ?? process.env,
    maxBuffer: 64 << 20,
    timeout: 600_000,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** sh() that must exit 0; returns its stdout. */
export function ok(cmd: string, args: string[], opts?: HostRunOptions): string {
  const r = sh(cmd, args, opts);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The checkout's package.json: its version and the scripts the package is built with. */
export const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
};

/** The directory the system's OpenSSL loads providers from (`openssl version -m`). */
export function opensslModulesDir(): string {
  const dir = /MODULESDIR:\s*"([^"]+)"/.exec(ok('openssl', ['version', '-m']))?.[1];
  assert.ok(dir, 'openssl version -m names no MODULESDIR');
  return dir;
}

/** A new scratch directory, mode 0755: the installed agent (user akv) reads its config and CA there. */
export function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'akv-deb-'));
  chmodSync(dir, 0o755);
  return dir;
}
