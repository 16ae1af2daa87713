/**
 * Users and groups by name or id, from /etc/passwd and /etc/group, with NSS (`getent`) as the
 * fallback for directory services. Used where akv checks who owns a socket or sets its group.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export type AccountDatabase = 'passwd' | 'group';

/** Fields 0 (name) and 2 (id) of the database's lines: local file first, then NSS. */
function entries(db: AccountDatabase, key: string): Array<[string, string]> {
  const parse = (text: string): Array<[string, string]> =>
    text
      .split('\n')
      .map((line): [string, string] => {
        const [name = '', , id = ''] = line.split(':');
        return [name, id];
      })
      .filter(([name, id]) => name !== '' && /^\d+$/.test(id));
  let found: Array<[string, string]> = [];
  try {
    found = parse(readFileSync(`/etc/${db}`, 'utf8'));
  } catch {
    /* no local file */
  }
  if (found.some(([name, id]) => name === key || id === key)) return found;
  try {
    return parse(
      execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
  } catch {
    return found;
  }
}

/** The numeric id of a user or group given by name or number; undefined when unknown. */
export function accountId(db: AccountDatabase, nameOrId: string): number | undefined {
  if (/^\d+$/.test(nameOrId)) return Number(nameOrId);
  const hit = entries(db, nameOrId).find(([name]) => name === nameOrId);
  return hit ? Number(hit[1]) : undefined;
}

/** The name of a uid or gid; undefined when unknown. */
export function accountName(db: AccountDatabase, id: number): string | undefined {
  return entries(db, String(id)).find(([, i]) => i === String(id))?.[0];
}
