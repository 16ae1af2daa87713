/**
 * The name to print when a message tells the user to run an akv command: what they ran. bin/akv
 * exports its $0 as AKV_COMMAND_NAME; a bare name (found on PATH) or a path to a directory on PATH
 * (an installed /usr/bin/akv) prints as `akv`, a path elsewhere (bin/akv in a clone) as typed.
 * Processes not started through bin/akv (the agent started by systemd) print `akv`.
 */
import { dirname, resolve } from 'node:path';

export function akvCommandName(): string {
  const ran = process.env.AKV_COMMAND_NAME;
  if (!ran || !ran.includes('/')) return 'akv';
  const dir = resolve(dirname(ran));
  const onPath = (process.env.PATH ?? '')
    .split(':')
    .filter((d) => d !== '')
    .some((d) => resolve(d) === dir);
  return onPath ? 'akv' : ran;
}
