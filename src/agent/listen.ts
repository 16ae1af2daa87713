/**
 * Where the agent serves: on the socket systemd passed (LISTEN_FDS, src/agent/systemd.ts), whose
 * path, mode and group are the socket unit's, or on a path it binds itself with the permissions
 * of src/agent/socket-path.ts, and removes at exit.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import type { AkvConfig } from '../config/types.js';
import type { AgentServer } from './server.js';
import {
  claimSocketPath,
  prepareSocketDirectory,
  secureSocket,
  socketModes,
} from './socket-path.js';
import { takePassedSocket } from './systemd.js';

/** Binds the socket with a umask that never lets it exist with a wider mode, then sets the final one. */
async function bindSocket(server: AgentServer, path: string, config: AkvConfig): Promise<number> {
  const modes = socketModes(config.socketGroup);
  prepareSocketDirectory(path, modes);
  await claimSocketPath(path);
  const oldUmask = process.umask(0o177);
  try {
    await server.listen(path);
  } finally {
    process.umask(oldUmask);
  }
  secureSocket(path, modes);
  return lstatSync(path).ino;
}

/** Where the agent serves: `ino` is set when it bound the path itself (and so removes it at exit). */
export interface Listening {
  path: string;
  ino?: number;
  activated: boolean;
}

/**
 * Serves on the socket systemd passed (LISTEN_FDS; src/agent/systemd.ts), else binds its own.
 * systemd's socket is systemd's: its path, mode and group come from the socket unit.
 */
export async function listenOn(
  server: AgentServer,
  config: AkvConfig,
  logger: Logger,
): Promise<Listening> {
  const passed = takePassedSocket();
  if (!passed) {
    const ino = await bindSocket(server, config.socket, config);
    return { path: config.socket, ino, activated: false };
  }
  await server.listen({ fd: passed.fd });
  const path = passed.path ?? config.socket;
  if (passed.count > 1)
    logger.warn(
      { count: passed.count },
      'systemd passed several sockets; the agent serves on the first',
    );
  if (config.socketGroup !== undefined)
    logger.warn(
      { group: config.socketGroup },
      'socketGroup is not applied to a socket passed by systemd: set SocketGroup= in akv-agent.socket',
    );
  if (passed.path !== undefined && passed.path !== config.socket)
    logger.warn(
      { passed: passed.path, configured: config.socket },
      "systemd passed a socket at another path than the config's socket: clients that read this config look there",
    );
  return { path, activated: true };
}

/** Removes the socket file, unless another agent has since put its own socket there. */
export function removeSocket(listening: Listening): void {
  const { path, ino } = listening;
  if (ino === undefined) return; // systemd's socket: left to systemd
  try {
    if (lstatSync(path).ino === ino) unlinkSync(path);
  } catch {
    /* already gone */
  }
}
