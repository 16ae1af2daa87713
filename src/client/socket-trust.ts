/**
 * Before the CLI sends anything to an agent socket: is it ours to trust? The same rules as the
 * provider's peer check (provider/src/agent_conn.c), read from the file system because Node has no
 * SO_PEERCRED: the socket and its directory must belong to this user, to root, or to the user
 * named by AKV_AGENT_USER, and the directory must not let others replace the socket (group- or
 * world-writable without the sticky bit). Otherwise another local user who created the directory
 * first (e.g. /tmp/akv-<uid>) would receive the plaintexts of `akv decrypt` and choose the answers.
 */
import { lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { AkvError } from '../errors.js';
import { accountId, accountName } from '../system/accounts.js';

type Env = Record<string, string | undefined>;

/** The uid of AKV_AGENT_USER (a name or a number). */
export function agentUserId(user: string): number {
  const uid = accountId('passwd', user);
  if (uid === undefined) {
    throw new AkvError(
      'BAD_REQUEST',
      `AKV_AGENT_USER=${user} is not a user on this system`,
      'name the user the agent runs as (e.g. akv) or its uid',
    );
  }
  return uid;
}

function who(uid: number): string {
  const name = accountName('passwd', uid);
  return name ? `uid ${uid} (${name})` : `uid ${uid}`;
}

/** Throws AkvError('FORBIDDEN') when the socket at `path` may have been planted by someone else. */
export function checkSocketTrust(path: string, env: Env = process.env): void {
  let sock;
  try {
    sock = lstatSync(path);
  } catch {
    return; // nothing there: connecting reports it
  }
  const self = process.geteuid?.() ?? 0;
  const allowed = new Set([self, 0]);
  if (env.AKV_AGENT_USER) allowed.add(agentUserId(env.AKV_AGENT_USER));
  const dir = dirname(path);
  const dirStat = lstatSync(dir);
  const refuse = (what: string, uid: number): AkvError => {
    const name = accountName('passwd', uid) ?? String(uid);
    return new AkvError(
      'FORBIDDEN',
      `refused the akv agent socket ${path}: ${what} belongs to ${who(uid)}, not to you (uid ${self}) or root; nothing was sent`,
      `if that is the agent to use, allow it with AKV_AGENT_USER=${name}; otherwise remove it and start your own agent`,
    );
  };
  if (!allowed.has(sock.uid)) throw refuse('the socket', sock.uid);
  if (!allowed.has(dirStat.uid)) throw refuse(`its directory ${dir}`, dirStat.uid);
  if (dirStat.mode & 0o022 && !(dirStat.mode & 0o1000)) {
    throw new AkvError(
      'FORBIDDEN',
      `refused the akv agent socket ${path}: its directory ${dir} (mode ${(dirStat.mode & 0o7777).toString(8)}) lets other users replace it; nothing was sent`,
      `chmod go-w ${dir}, or use a socket in a directory only the agent's user can write`,
    );
  }
}
