/**
 * `bin/akv dev up` / `dev down` for tests, run exactly as a person would: the exports that
 * `dev up` prints are parsed into a record to pass as `env` to child processes.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AKV_BIN } from './emulator.js';

const run = promisify(execFile);

/** Environment of the test process without variables that would point akv elsewhere. */
export function cleanAkvEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of [
    'AKV_CONFIG',
    'AKV_AGENT_SOCKET',
    'AKV_LOG_FILE',
    'AKV_LOG_LEVEL',
    'AKV_AGENT_AUTOSTART',
    'AKV_AGENT_COMMAND',
    'AKV_AGENT_USER',
    'AKV_AGENT_IDLE_EXIT',
    'AKV_AGENT_TIMEOUT_MS',
    'AZURE_CLI_ACCESS_TOKEN',
  ])
    delete env[k];
  return env;
}

/** Parses POSIX `export NAME='value'` lines (single-quoted, as `dev up` prints them). */
export function parseExports(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    const raw = m[2] ?? '';
    // 'a'\''b' → a'b
    out[m[1] as string] = raw.startsWith("'") ? raw.slice(1, -1).replace(/'\\''/g, "'") : raw;
  }
  return out;
}

/**
 * Runs `bin/akv dev up --dir DIR --hsm-name NAME` and returns the exported variables
 * (AKV_CONFIG, AKV_AGENT_SOCKET, OPENSSL_MODULES, AKV_HSM_NAME).
 */
export async function devUp(
  dir: string,
  hsmName: string,
  extraArgs: string[] = [],
): Promise<Record<string, string>> {
  const { stdout } = await run(
    AKV_BIN,
    ['dev', 'up', '--dir', dir, '--hsm-name', hsmName, '--quiet', ...extraArgs],
    {
      env: cleanAkvEnv(),
      timeout: 90_000,
    },
  );
  const vars = parseExports(stdout);
  for (const k of ['AKV_CONFIG', 'AKV_AGENT_SOCKET', 'OPENSSL_MODULES']) {
    if (!vars[k]) throw new Error(`akv dev up printed no ${k}: ${stdout}`);
  }
  return vars;
}

/** Runs `bin/akv dev down --dir DIR` (exit 0 even when nothing runs). */
export async function devDown(dir: string): Promise<void> {
  await run(AKV_BIN, ['dev', 'down', '--dir', dir, '--quiet'], {
    env: cleanAkvEnv(),
    timeout: 60_000,
  });
}
