/**
 * Who is on the other end of a client connection, as the kernel says (SO_PEERCRED and
 * SO_PEERGROUPS, read by the agent's Node-API addon native/peercred.c), never as the client says.
 * Node has no API for it; the alternatives measured (docs/security.md, "Peer credentials") were
 * far slower (a /proc scan per connection) or unverifiable (the CLIENT_PID field). The addon is
 * loaded once; when it cannot be, `peerCredentialsUnavailable` says why and the agent refuses a
 * policy (src/agent/policy.ts) instead of trusting what clients report.
 */
import { readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { AKV_ROOT } from '../install-root.js';
import { errorMessage } from '../errors.js';
import { isRecord } from '../guards.js';

export interface PeerCredentials {
  uid: number;
  gid: number;
  pid: number;
  /** Supplementary groups at connect() (empty on kernels before 4.13). */
  groups: number[];
  /** /proc/<pid>/exe, read when a rule needs it (undefined: not read yet; null: unreadable). */
  exe?: string | null;
}

interface Addon {
  peerCredentials(fd: number): PeerCredentials & { groupsTruncated?: boolean };
  userId(name: string): number | undefined;
  groupId(name: string): number | undefined;
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
}

/** native/build/ in a checkout and in the package (/usr/lib/akv) alike. */
export const ADDON_PATH = join(AKV_ROOT, 'native', 'build', 'akv_peercred.node');

let addon: Addon | undefined;
let loadError: string | undefined;
function load(): Addon | undefined {
  if (addon === undefined && loadError === undefined) {
    try {
      // require() of a native addon is `any`: Addon states the exports of native/peercred.c.
      addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    } catch (err) {
      loadError = `cannot load ${ADDON_PATH}: ${errorMessage(err).split('\n')[0]}`;
    }
  }
  return addon;
}

/** Why peer credentials cannot be read (the addon did not load), or undefined when they can. */
export function peerCredentialsUnavailable(): string | undefined {
  load();
  return loadError;
}

/**
 * The kernel's record of the process that connected SOCKET (an accepted Unix socket, from a
 * path the agent bound or a socket systemd passed); undefined when it cannot be read.
 */
export function readPeerCredentials(socket: Socket): PeerCredentials | undefined {
  const native = load();
  // Node keeps the descriptor on socket._handle, which its types do not declare.
  const handle: unknown = Reflect.get(socket, '_handle');
  const fd = isRecord(handle) ? handle.fd : undefined;
  if (!native || typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const c = native.peerCredentials(fd);
    return { uid: c.uid, gid: c.gid, pid: c.pid, groups: c.groups };
  } catch {
    return undefined;
  }
}

/** The executable of the peer's process, read once (null when the process is gone or hidden). */
export function peerExecutable(peer: PeerCredentials): string | null {
  if (peer.exe === undefined) {
    try {
      peer.exe = peer.pid > 0 ? readlinkSync(`/proc/${peer.pid}/exe`) : null;
    } catch {
      peer.exe = null;
    }
  }
  return peer.exe;
}

export const lookupUserId = (name: string): number | undefined => load()?.userId(name);
export const lookupGroupId = (name: string): number | undefined => load()?.groupId(name);
export const userName = (uid: number): string | undefined => load()?.userName(uid);
export const groupName = (gid: number): string | undefined => load()?.groupName(gid);

/** "uid 33 (www-data), gid 33 (www-data), pid 1234": how messages and logs name a peer. */
export function describePeer(peer: PeerCredentials | undefined): string {
  if (!peer) return 'a client whose credentials the kernel did not give';
  const user = userName(peer.uid);
  const group = groupName(peer.gid);
  let s = `uid ${peer.uid}${user ? ` (${user})` : ''}, gid ${peer.gid}${group ? ` (${group})` : ''}, pid ${peer.pid}`;
  if (typeof peer.exe === 'string') s += `, ${peer.exe}`;
  return s;
}
