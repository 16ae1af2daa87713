/**
 * Running an example's scripts (examples/nginx, examples/haproxy, ...) from the tests as a person
 * does: asynchronously (a test's own servers keep running), with nothing from the developer's
 * shell that would point them elsewhere (the demo's FOREIGN_VARIABLES).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FOREIGN_VARIABLES } from '../../src/demo/example.js';

export interface ScriptResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** This process's environment without what would redirect the examples, plus `extraEnv`. */
export function exampleEnv(
  extraEnv: Record<string, string> = {},
  drop: string[] = [],
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  for (const name of [...FOREIGN_VARIABLES, ...drop]) if (!(name in extraEnv)) delete env[name];
  return env;
}

/**
 * Runs `exampleDir/script args`. `extraEnv` is added (and wins over FOREIGN_VARIABLES); the
 * names in `drop` are removed too.
 */
export function runExampleScript(
  exampleDir: string,
  script: string,
  args: string[],
  extraEnv: Record<string, string> = {},
  drop: string[] = [],
): Promise<ScriptResult> {
  const env = exampleEnv(extraEnv, drop);
  return new Promise((resolve, reject) => {
    const child = spawn(join(exampleDir, script), args, { cwd: exampleDir, env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ status: code ?? (signal ? 128 : 1), stdout, stderr }),
    );
  });
}

/** Fails with the script's whole output when it did not exit 0. */
export function mustSucceed(r: ScriptResult, script: string, args: string[]): ScriptResult {
  if (r.status !== 0) {
    throw new Error(
      `${script} ${args.join(' ')} exited ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`,
    );
  }
  return r;
}

/** A private directory for one test file's settings file. */
export function makeTestDir(example: string, label: string): string {
  return mkdtempSync(join(tmpdir(), `akv-${example}-test-${label}-`));
}

/** An HSM name unique to this run (3-24 letters, digits, hyphens). */
export function uniqueHsmName(label: string): string {
  return `${label}${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`.slice(0, 24);
}

/** The pid in a pid file an example wrote. */
export function readPid(file: string): number {
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`${file} holds no pid`);
  return pid;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
