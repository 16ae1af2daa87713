/**
 * A user's shell for the tests of autostart (the provider's, the CLI's, the cold start's): a
 * private runtime directory (0700, as systemd-logind gives a user), so that the default agent
 * socket inside it is the test's own and nothing akv runs there yet; the test process's akv
 * variables cleared; and the agents started on a socket, found through /proc.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanAkvEnv } from './dev.js';

/** A fresh runtime directory `name` under `parent`, mode 0700. */
export function privateRuntimeDir(parent: string, name: string): string {
  const dir = join(parent, name);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/** The agent's default socket for a user whose XDG_RUNTIME_DIR is `runtime`. */
export function defaultSocketIn(runtime: string): string {
  return join(runtime, 'akv', 'agent.sock');
}

export interface UserShell {
  /** AKV_CONFIG */
  config: string;
  /** XDG_RUNTIME_DIR (privateRuntimeDir) */
  runtime: string;
  /** OPENSSL_MODULES: where akv_provider.so is */
  modulesDir: string;
  /** AZURE_CLI_ACCESS_TOKEN, when the user has one */
  token?: string;
}

/** The environment of that user's shell: config (and token) exported, no OPENSSL_CONF. */
export function userShellEnv(shell: UserShell, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...cleanAkvEnv(),
    AKV_CONFIG: shell.config,
    ...(shell.token !== undefined ? { AZURE_CLI_ACCESS_TOKEN: shell.token } : {}),
    XDG_RUNTIME_DIR: shell.runtime,
    OPENSSL_MODULES: shell.modulesDir,
    ...extra,
  };
  delete env.OPENSSL_CONF;
  return env;
}

/** Pids of agents serving `socket` (read from /proc, as `ps` shows them). */
export function agentsOn(socket: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const at = argv.indexOf('--socket');
    if (argv.includes('agent') && at >= 0 && argv[at + 1] === socket) pids.push(Number(entry));
  }
  return pids;
}
