/**
 * Socket activation (sd_listen_fds(3) without libsystemd): systemd, or systemd-socket-activate,
 * opens the listening socket and passes it as fd 3 with LISTEN_PID (our pid) and LISTEN_FDS (how
 * many). The agent then serves on it instead of binding its own: systemd owns the path, its mode
 * and group (akv-agent.socket), so the agent neither creates, chmods nor removes it.
 */
import { fstatSync, readFileSync } from 'node:fs';
import { AkvError, errorMessage } from '../errors.js';

/** The first passed descriptor (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

export interface PassedSocket {
  fd: number;
  /** How many descriptors systemd passed (the agent serves on the first). */
  count: number;
  /** The path the socket is bound to, from /proc/self/net/unix (undefined when not found). */
  path?: string;
}

type Env = Record<string, string | undefined>;

/**
 * The socket systemd passed to this process, or undefined when none was (or when LISTEN_PID names
 * another process: the variables were inherited by accident). Removes the variables either way,
 * as sd_listen_fds(1) does, so children of the agent do not take the socket for theirs.
 */
export function takePassedSocket(
  env: Env = process.env,
  pid = process.pid,
): PassedSocket | undefined {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenPid === undefined || listenFds === undefined) return undefined;
  if (!/^\d+$/.test(listenPid) || Number(listenPid) !== pid) return undefined;
  if (!/^\d+$/.test(listenFds) || Number(listenFds) < 1) {
    throw new AkvError(
      'BAD_REQUEST',
      `LISTEN_FDS=${JSON.stringify(listenFds.slice(0, 20))} does not name any socket`,
      'start the agent from a socket unit with one ListenStream= (akv-agent.socket), or without LISTEN_FDS',
    );
  }
  const fd = LISTEN_FDS_START;
  let ino: number;
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) throw new Error('not a socket');
    ino = st.ino;
  } catch (err) {
    throw new AkvError(
      'BAD_REQUEST',
      `LISTEN_FDS says a socket was passed as fd ${fd}, but it is not one (${errorMessage(err)})`,
      'start the agent from its socket unit (akv-agent.socket) or without LISTEN_FDS/LISTEN_PID',
    );
  }
  const path = unixSocketPath(ino);
  return path === undefined
    ? { fd, count: Number(listenFds) }
    : { fd, count: Number(listenFds), path };
}

/**
 * The file-system path a Unix socket (by its inode) is bound to: /proc/self/net/unix lists every
 * Unix socket with its inode and path (readable under ProtectProc=invisible and ProcSubset=pid).
 */
export function unixSocketPath(ino: number, table = '/proc/self/net/unix'): string | undefined {
  let text: string;
  try {
    text = readFileSync(table, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8 && Number(cols[6]) === ino) return cols.slice(7).join(' ');
  }
  return undefined;
}
