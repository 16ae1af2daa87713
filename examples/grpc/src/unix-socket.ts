/**
 * Unix-socket housekeeping for the example's server: a socket file left behind by a crashed
 * server is removed, while a socket someone still listens on is never stolen.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';

/** Resolves true when something accepts connections on the socket path. */
export function socketIsLive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const sock = connect({ path });
    const done = (live: boolean): void => {
      sock.destroy();
      resolvePromise(live);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Makes `path` free to bind: nothing there, or a dead socket (removed). Throws with a message
 * saying what to do when the path is a live socket or not a socket at all.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) {
    throw new Error(
      `${path} exists and is not a socket; choose another --socket path or remove that file`,
    );
  }
  if (await socketIsLive(path)) {
    throw new Error(
      `another server is already listening on ${path}; stop it first (examples/grpc/stop.sh)`,
    );
  }
  unlinkSync(path);
}
