/**
 * The agent socket's place in the file system and its permissions (docs/agent.md, "Where the
 * socket is, and who may use it"): the socket is 0600 in a directory only the owner can enter
 * (0700), or, when the config names a `socketGroup`, 0660 in a 0750 directory, both with that
 * group. A dedicated directory (one the agent creates, or one named `akv` / `akv-*` like the
 * defaults) gets its mode and group enforced; a shared one (e.g. /tmp) is left alone and the
 * socket's own mode does the guarding. A directory another user controls is refused: they could
 * replace the socket.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { basename, dirname } from 'node:path';
import { AkvError, errorMessage } from '../errors.js';
import { accountId } from '../system/accounts.js';

export interface SocketModes {
  socketMode: number;
  dirMode: number;
  gid?: number;
}

/** Unix socket paths are limited to 107 bytes on Linux (sun_path is 108 with the NUL). */
const MAX_SOCKET_PATH = 107;

/** The gid of a group given by name or number. */
export function resolveGroup(group: string): number {
  const gid = accountId('group', group);
  if (gid === undefined) {
    throw new AkvError(
      'BAD_REQUEST',
      `socketGroup "${group}" is not a group on this system`,
      `create it (groupadd ${group}) or fix socketGroup in the agent config`,
    );
  }
  return gid;
}

export function socketModes(group: string | undefined): SocketModes {
  if (group === undefined || group === '') return { socketMode: 0o600, dirMode: 0o700 };
  return { socketMode: 0o660, dirMode: 0o750, gid: resolveGroup(group) };
}

function applyOwnership(path: string, mode: number, gid: number | undefined): void {
  if (gid !== undefined) {
    try {
      chownSync(path, -1, gid);
    } catch (err) {
      throw new AkvError(
        'FORBIDDEN',
        `cannot give ${path} to group ${gid}: ${errorMessage(err)}`,
        'run the agent as root or as a member of socketGroup',
      );
    }
  }
  chmodSync(path, mode);
}

/** Creates the socket directory, or checks it; enforces mode and group when it is dedicated. */
export function prepareSocketDirectory(socketPath: string, modes: SocketModes): void {
  const dir = dirname(socketPath);
  let created = false;
  try {
    statSync(dir);
  } catch {
    mkdirSync(dir, { recursive: true, mode: modes.dirMode });
    created = true;
  }
  const st = statSync(dir);
  if (!st.isDirectory()) {
    throw new AkvError(
      'BAD_REQUEST',
      `${dir} (the agent socket's directory) is not a directory`,
      'choose another socket path',
    );
  }
  const uid = process.getuid?.() ?? 0;
  // Whoever controls the directory can swap the socket for their own: it must be ours or root's,
  // and not writable by everyone unless sticky (like /tmp).
  if (st.uid !== uid && st.uid !== 0) {
    throw new AkvError(
      'FORBIDDEN',
      `the agent socket's directory ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}) or root`,
      'remove it, or choose a socket path in a directory you own',
    );
  }
  if (st.mode & 0o002 && !(st.mode & 0o1000)) {
    throw new AkvError(
      'FORBIDDEN',
      `the agent socket's directory ${dir} is writable by everyone`,
      'choose a socket path in a directory only you can write to',
    );
  }
  const dedicated = created || /^akv(-|$)/.test(basename(dir));
  if (!dedicated) return;
  if (st.uid !== uid) {
    throw new AkvError(
      'FORBIDDEN',
      `the agent socket's directory ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid})`,
      'remove it, or run the agent as its owner',
    );
  }
  applyOwnership(dir, modes.dirMode, modes.gid);
}

/** True when something accepts connections on the socket path. */
function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Makes the socket path free to listen on: refuses when another agent answers there or when the
 * path is not a socket, removes a stale socket left by an agent that died.
 */
export async function claimSocketPath(path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new AkvError(
      'BAD_REQUEST',
      `the socket path ${path} is ${Buffer.byteLength(path)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH}`,
      'choose a shorter --socket path (or AKV_AGENT_SOCKET)',
    );
  }
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) {
    throw new AkvError(
      'BAD_REQUEST',
      `${path} exists and is not a socket`,
      'remove it or choose another --socket path',
    );
  }
  if (await isAlive(path)) {
    throw new AkvError(
      'UNAVAILABLE',
      `another akv agent is already listening on ${path}`,
      'stop it first (or use it), or start this one with another --socket',
    );
  }
  unlinkSync(path);
}

/** Gives a freshly bound socket its final mode and group. */
export function secureSocket(path: string, modes: SocketModes): void {
  applyOwnership(path, modes.socketMode, modes.gid);
}
