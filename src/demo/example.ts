/**
 * The demo's handle on examples/nginx: where the repository and the scripts are, a private
 * settings file for this run, an environment cleaned of the developer's own akv/OpenSSL settings,
 * and the calls that run a step script or the akv CLI with progress output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, type CommandResult } from './runner.js';

/** What setup.sh wrote (the part of .env the demo shows or needs). */
export interface Settings {
  hsm: string;
  rsaKey: string;
  ecKey: string;
  rsaPort: string;
  ecPort: string;
  stateDir: string;
  /** The agent config setup.sh made: `bin/akv dev up`'s in emulator mode, its own for Azure. */
  agentConfig: string;
}

/** Variables that would point the scripts at a developer's own agent or OpenSSL setup. */
export const FOREIGN_VARIABLES = [
  'AKV_CONFIG',
  'AKV_AGENT_SOCKET',
  'AKV_LOG_FILE',
  'AKV_LOG_LEVEL',
  'OPENSSL_CONF',
  'OPENSSL_MODULES',
  'AKV_NGINX_ENV',
  'AKV_BIN',
  'AKV_PROVIDER_MODULE',
];

/** The repository root: the nearest directory upwards with package.json. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (package.json)');
    dir = up;
  }
  return dir;
}

export class NginxExample {
  readonly repo = findRepoRoot();
  readonly dir = join(this.repo, 'examples', 'nginx');
  /** A private directory for this run's settings file. */
  readonly workDir = mkdtempSync(join(tmpdir(), 'akv-demo-'));
  readonly envFile = join(this.workDir, '.env');
  readonly env: NodeJS.ProcessEnv = { ...process.env };
  private current: Settings | undefined;

  constructor() {
    for (const name of FOREIGN_VARIABLES) delete this.env[name];
  }

  /** Runs examples/nginx/NAME with this run's settings file, showing its output. */
  script(name: string, ...args: string[]): Promise<CommandResult> {
    return runCommand(
      join(this.dir, name),
      ['--env-file', this.envFile, ...args],
      this.env,
      this.dir,
      {
        shown: [`examples/nginx/${name}`, '--env-file', this.envFile, ...args].join(' '),
      },
    );
  }

  /** Runs bin/akv with the example's agent configuration; its (JSON) output is not echoed. */
  akv(...args: string[]): Promise<CommandResult> {
    const config = this.settings.agentConfig;
    return runCommand(
      join(this.repo, 'bin', 'akv'),
      args,
      { ...this.env, AKV_CONFIG: config },
      this.repo,
      {
        shown: `AKV_CONFIG=${config} bin/akv ${args.join(' ')}`,
        echo: false,
      },
    );
  }

  /** Reads the settings file setup.sh wrote. */
  loadSettings(): Settings {
    const v: Record<string, string> = {};
    for (const line of readFileSync(this.envFile, 'utf8').split('\n')) {
      const [, name, value] = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line) ?? [];
      if (name !== undefined && value !== undefined) v[name] = value;
    }
    this.current = {
      hsm: v.AKV_HSM_NAME ?? '',
      rsaKey: v.RSA_KEY_NAME ?? '',
      ecKey: v.EC_KEY_NAME ?? '',
      rsaPort: v.RSA_PORT ?? '',
      ecPort: v.EC_PORT ?? '',
      stateDir: v.STATE_DIR ?? '',
      // examples/nginx/lib/common.sh: DEV_DIR=STATE_DIR/dev in emulator mode.
      agentConfig:
        v.AKV_MODE === 'azure'
          ? join(v.STATE_DIR ?? '', 'akv.json')
          : join(v.STATE_DIR ?? '', 'dev', 'akv.json'),
    };
    return this.current;
  }

  get settings(): Settings {
    if (!this.current) throw new Error('the settings were not written');
    return this.current;
  }

  get hasSettings(): boolean {
    return this.current !== undefined;
  }

  /** How a person stops what the demo left running. */
  get stopCommand(): string {
    return `${join(this.dir, 'stop.sh')} --env-file ${this.envFile} --all`;
  }

  /** Stops everything at once (Ctrl-C), without progress output. */
  stopNow(): void {
    spawnSync(join(this.dir, 'stop.sh'), ['--env-file', this.envFile, '--all'], {
      stdio: 'inherit',
      env: this.env,
    });
    this.removeWorkDir();
  }

  removeWorkDir(): void {
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** Fails the step with the script's own error line ("what failed; hint: what to do"). */
export function mustPass(r: CommandResult, what: string): void {
  if (r.status === 0) return;
  const error = r.lines.find((l) => /: error: /.test(l))?.replace(/^.*?: error: /, '');
  const failedCheck = r.lines.find((l) => l.startsWith('FAIL'));
  const reason = error ?? failedCheck ?? `exit status ${r.status}`;
  throw new Error(`${what} failed: ${reason.trim()}`);
}
