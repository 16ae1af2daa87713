/**
 * Starts `akv emulator` as a child process on a free loopback port with a temporary state
 * directory, for the demo; resolves once the emulator has printed its ready line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/src/cli/main.js, next to this file's dist/src/demo/. */
const CLI_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');

export interface EmulatorProcess {
  url: string;
  caPem: string;
  stop(): Promise<void>;
}

export async function startEmulatorProcess(): Promise<EmulatorProcess> {
  const stateDir = await mkdtemp(join(tmpdir(), 'akv-demo-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI_MAIN, 'emulator', '--listen', '127.0.0.1:0', '--state-dir', stateDir],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error('the emulator did not start within 30 s')),
      30_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /akv emulator listening on (\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the emulator exited with ${code} before it was ready`));
    });
  });
  const caPem = await readFile(join(stateDir, 'ca.pem'), 'utf8');
  return {
    url,
    caPem,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
