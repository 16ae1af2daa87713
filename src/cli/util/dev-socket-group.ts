/**
 * `akv dev up --socket-group GROUP`: the agent's socket is then for the group's users too (nginx
 * workers running as `www-data`). The agent makes its socket 0660 and DIR/akv 0750 in that group;
 * this module makes sure they can get there at all: DIR is made group-traversable when `dev up`
 * owns it, and every directory above it must already let them through. Those parents belong to
 * the user, so they are never changed here: an error names them and the command that would fix
 * them.
 */
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolveGroup } from '../../agent/socket-path.js';
import { UsageError } from '../command.js';
import { errnoCode } from '../../errors.js';

/** DIR with a socket group: the group may pass through (x) but not list or write. */
const GROUP_DIR_MODE = 0o710;
const OWNER_DIR_MODE = 0o700;

/** The gid of GROUP, refused unless this user may hand files to it (root, or a member). */
export function socketGroupId(group: string): number {
  let gid: number;
  try {
    gid = resolveGroup(group);
  } catch {
    throw new UsageError(
      `dev up: --socket-group ${JSON.stringify(group)} is not a group on this system: create it (groupadd ${group}) or name another (getent group)`,
    );
  }
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0 && !(process.getgroups?.() ?? []).includes(gid)) {
    throw new UsageError(
      `dev up: you are not a member of group ${JSON.stringify(group)}, so the agent cannot give its socket to it: run as root, or use one of your groups (\`id -Gn\`)`,
    );
  }
  return gid;
}

/**
 * Creates DIR (parents as `mkdir -p` would) or adopts it: owner only without a group; with one,
 * 0710 in that group so its users reach DIR/akv/agent.sock and nothing else in DIR.
 */
export function prepareDevDir(dir: string, gid: number | undefined): void {
  mkdirSync(dirname(dir), { recursive: true });
  try {
    mkdirSync(dir, { mode: OWNER_DIR_MODE });
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  }
  if (gid === undefined) return;
  const st = statSync(dir);
  if (st.uid !== (process.getuid?.() ?? 0)) {
    throw new UsageError(
      `dev up: ${dir} belongs to uid ${st.uid}, not to you, so it cannot be opened to --socket-group: use a --dir of your own`,
    );
  }
  if (st.gid !== gid) chownSync(dir, -1, gid);
  if ((st.mode & 0o777) !== GROUP_DIR_MODE) chmodSync(dir, GROUP_DIR_MODE);
}

/** True when a user in group `gid` (and not the owner) may pass through `dir`. */
function groupMayTraverse(dir: string, gid: number): boolean {
  const st = statSync(dir);
  return (st.mode & 0o001) !== 0 || (st.gid === gid && (st.mode & 0o010) !== 0);
}

/**
 * Refuses a DIR whose parents keep the group's users out (e.g. under /root, 0700): the agent
 * would start, and every nginx handshake would then fail with "permission denied".
 */
export function assertParentsTraversable(dir: string, group: string, gid: number): void {
  const blocked: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    if (!groupMayTraverse(d, gid)) blocked.push(d);
    if (dirname(d) === d) break;
  }
  if (blocked.length === 0) return;
  const fix = blocked.map((d) => `chmod o+x ${d}`).join('; ');
  throw new UsageError(
    `dev up: users of group ${group} cannot reach ${dir}: ${blocked.join(', ')} ${blocked.length === 1 ? 'lets' : 'let'} only its owner through, so they could not use the agent socket. Choose a --dir they can reach (e.g. under /tmp or /run), or open the way yourself (${fix})`,
  );
}
