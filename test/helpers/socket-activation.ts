/**
 * Socket activation as systemd does it, without a running systemd: `systemd-socket-activate -l
 * SOCKET COMMAND` (Debian's systemd package) listens, and on the first connection runs COMMAND
 * with the socket as fd 3 and LISTEN_FDS/LISTEN_PID set. Plus the check every such test makes:
 * the real `openssl` signs through akv_provider via that socket and the signature verifies.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ActivatedAgent {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then the exit status. */
  stop(): Promise<number | null>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts `systemd-socket-activate -l LISTEN [-E NAME=VALUE ...] COMMAND...` and resolves once it
 * listens (the command itself starts on the first connection).
 */
export async function socketActivate(
  listen: string,
  command: string[],
  env: Record<string, string>,
): Promise<ActivatedAgent> {
  const setenv = Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
  const child = spawn('systemd-socket-activate', ['-l', listen, ...setenv, ...command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  for (let i = 0; !/^Listening on /m.test(err); i++) {
    if (child.exitCode !== null || i > 200)
      throw new Error(`systemd-socket-activate did not listen: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      return (await exited).code;
    },
  };
}

/**
 * `openssl dgst -sign URI` through akv_provider on `socket`, then a plain OpenSSL verification
 * with the public key the provider exports. `modulesDir` undefined: OpenSSL's own modules
 * directory (an installed provider).
 */
export function signAndVerify(opts: {
  uri: string;
  socket: string;
  dir: string;
  modulesDir?: string;
  env?: Record<string, string>;
}): void {
  const env: NodeJS.ProcessEnv = { ...process.env, AKV_AGENT_SOCKET: opts.socket, ...opts.env };
  delete env.OPENSSL_CONF;
  if (opts.modulesDir === undefined) delete env.OPENSSL_MODULES;
  else env.OPENSSL_MODULES = opts.modulesDir;
  const providers = ['-provider', 'akv_provider', '-provider', 'default'];
  const data = join(opts.dir, 'data.txt');
  const sig = join(opts.dir, 'data.sig');
  const pub = join(opts.dir, 'key.pub');
  writeFileSync(data, `signed through a socket-activated agent ${Date.now()}\n`);
  const run = (args: string[], withEnv: NodeJS.ProcessEnv): string => {
    const r = spawnSync('openssl', args, {
      env: withEnv,
      encoding: 'utf8',
      timeout: 60_000,
      cwd: '/',
    });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  run(['pkey', ...providers, '-in', opts.uri, '-pubout', '-out', pub], env);
  run(['dgst', '-sha256', ...providers, '-sign', opts.uri, '-out', sig, data], env);
  const plain: NodeJS.ProcessEnv = { ...process.env };
  delete plain.OPENSSL_MODULES;
  assert.match(
    run(['dgst', '-sha256', '-verify', pub, '-signature', sig, data], plain),
    /Verified OK/,
  );
}
