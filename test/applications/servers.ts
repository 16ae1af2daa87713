/**
 * Long-running servers of the application tests (Apache, stunnel, HAProxy, Python, s_server):
 * started as child processes, ready once their port accepts connections, stopped after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort, type AppEnv } from './app-env.js';

/** A long-running server started by a test, with everything it printed. */
export interface Server {
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts COMMAND ARGS and resolves once 127.0.0.1:PORT accepts connections; rejects with the
 * server's output if it exits first or does not listen within 30 s.
 */
export async function startServer(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  port: number,
): Promise<Server> {
  const proc = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const server: Server = {
    proc,
    output: () => output,
    async stop() {
      if (!gone) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 30_000;
  while (!(await accepts(port))) {
    if (gone) throw new Error(`${command} exited before listening on ${port}:\n${output}`);
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${command} did not listen on 127.0.0.1:${port} within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return server;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** The user id a running process runs as (from /proc). */
export function uidOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  } catch {
    return undefined;
  }
}

/**
 * Plain `openssl s_server -Verify 1` (no provider, its own software key) that requires a client
 * certificate issued by one of `clientCas` and answers each connection with its -www status
 * page, which shows the client certificate it received.
 */
export async function startClientCertServer(
  app: AppEnv,
  clientCas: string[],
): Promise<{ port: number; serverCert: string; server: Server }> {
  const serverCert = app.file('plain-server.crt');
  const serverKey = app.file('plain-server.key');
  app.plainOpensslOk([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    serverKey,
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost',
    '-days',
    '2',
    '-out',
    serverCert,
  ]);
  const cas = app.file('client-cas.pem');
  writeFileSync(cas, clientCas.map((c) => readFileSync(c, 'utf8')).join(''));
  const port = await freePort();
  const server = await startServer(
    'openssl',
    [
      's_server',
      '-accept',
      `127.0.0.1:${port}`,
      '-cert',
      serverCert,
      '-key',
      serverKey,
      '-Verify',
      '1',
      '-verify_return_error',
      '-CAfile',
      cas,
      '-www',
    ],
    app.plainEnv,
    app.dir,
    port,
  );
  return { port, serverCert, server };
}
