/**
 * Runs the emulator in the foreground for `akv emulator`: starts the server, announces it (the
 * ready file `DIR/emulator.json` and one stdout line), and shuts down cleanly on SIGTERM/SIGINT.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AkvError, errnoCode } from '../errors.js';
import { EmulatorServer, type EmulatorOptions } from './server.js';
import { isRecord } from '../guards.js';

/** Contents of `DIR/emulator.json`, present while the emulator runs. */
export interface ReadyFile {
  url: string;
  pid: number;
  ca: string;
}

export const READY_FILE = 'emulator.json';

async function writeReadyFile(path: string, ready: ReadyFile): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(`${JSON.stringify(ready)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

/** Two emulators on one state directory would overwrite each other's keys. */
async function refuseIfInUse(readyPath: string): Promise<void> {
  let pid: unknown;
  try {
    const ready: unknown = JSON.parse(await readFile(readyPath, 'utf8'));
    pid = isRecord(ready) ? ready.pid : undefined;
  } catch {
    return; // absent or unreadable: nobody announced themselves
  }
  if (typeof pid !== 'number' || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errnoCode(err) === 'ESRCH') return; // left by a process that is gone
  }
  throw new AkvError(
    'UNAVAILABLE',
    `another emulator (pid ${pid}) is running on this state directory (${readyPath})`,
    'stop it first, use another --state-dir, or delete the file if that process is not an emulator',
  );
}

export async function runEmulator(options: EmulatorOptions): Promise<number> {
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  const readyPath = join(options.stateDir, READY_FILE);
  await refuseIfInUse(readyPath);
  // A file left by a killed emulator must not be taken for this one being ready.
  await rm(readyPath, { force: true });
  let server: EmulatorServer;
  try {
    server = await EmulatorServer.start(options);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new AkvError(
        'UNAVAILABLE',
        `cannot listen on ${options.host}:${options.port} (${code})`,
        'choose another --listen address, or port 0 for a free port',
      );
    }
    throw err;
  }
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await writeReadyFile(readyPath, { url: server.url, pid: process.pid, ca: server.tls.caFile });
  console.log(`akv emulator listening on ${server.url}`);
  await stopped;
  await server.stop();
  await rm(readyPath, { force: true });
  return 0;
}
