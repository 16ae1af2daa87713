/**
 * The agent process: load the config, open the gateway to the HSM, claim and secure the socket,
 * serve until SIGTERM/SIGINT (drain, then exit 0), reload the config on SIGHUP.
 */
import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import type { AkvConfig } from '../config/types.js';
import { createGateway } from '../azure/gateway.js';
import type { HsmGateway } from '../azure/gateway.js';
import { GatewayHolder } from './gateway-holder.js';
import { KeyCache } from './key-cache.js';
import { closeLogger, createLogger } from './log.js';
import { metrics, startMetricsServer } from './metrics.js';
import { AgentServer } from './server.js';
import {
  claimSocketPath,
  prepareSocketDirectory,
  secureSocket,
  socketModes,
} from './socket-path.js';
import type { HandlerContext } from './handlers.js';

export interface AgentOptions {
  /** --config; otherwise AKV_CONFIG and the default places (see loadConfig). */
  configPath?: string;
  /** --socket; overrides the config and AKV_AGENT_SOCKET. */
  socket?: string;
  /** Where the ready line goes (stdout). */
  out?: (line: string) => void;
}

export function agentVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function readConfig(opts: AgentOptions): AkvConfig {
  const config = loadConfig(opts.configPath);
  if (opts.socket !== undefined) config.socket = resolve(opts.socket);
  return config;
}

function newGateway(config: AkvConfig, logger: Logger): HsmGateway {
  return createGateway(config, logger, {
    onTokenRefresh: () => metrics.tokenRefreshes.inc(),
    onRetry: (kind) => metrics.hsmRetries.inc({ kind }),
  });
}

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

/** Runs the agent until it is told to stop; resolves with the process exit status. */
export async function runAgent(opts: AgentOptions = {}): Promise<number> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  let config = readConfig(opts);
  let logger = createLogger(config.log);
  const gateways = new GatewayHolder(newGateway(config, logger));
  const cache = new KeyCache(config.keyCacheTtlMs);
  const ctx: HandlerContext = {
    gateways,
    cache,
    metrics,
    logger: () => logger,
    agentVersion: agentVersion(),
  };
  const server = new AgentServer(ctx);
  const socketPath = config.socket;

  let socketIno: number;
  try {
    socketIno = await bindSocket(server, socketPath, config);
  } catch (err) {
    await gateways.close();
    closeLogger(logger);
    throw err;
  }

  let metricsServer: Server | undefined;
  if (config.metricsListen) {
    try {
      const started = await startMetricsServer(config.metricsListen, metrics);
      metricsServer = started.server;
      out(`akv agent metrics on ${started.url}`);
    } catch (err) {
      await server.shutdown(0);
      removeSocket(socketPath, socketIno);
      await gateways.close();
      throw err;
    }
  }

  // A bug must leave a trace in the agent's own log before the process dies (and is restarted).
  const die = (what: string) => (err: unknown) => {
    logger.fatal({ err }, `bug: ${what}, exiting`);
    removeSocket(socketPath, socketIno);
    process.exit(70);
  };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled promise rejection'));

  logger.info(
    {
      socket: socketPath,
      config: config.path,
      group: config.socketGroup,
      version: ctx.agentVersion,
    },
    'akv agent listening',
  );
  out(`akv agent listening on ${socketPath}`);

  const reload = (): void => {
    // Build everything new first; only when all of it works does it replace the old.
    let next: AkvConfig;
    let nextLogger: Logger | undefined;
    let nextGateway: HsmGateway;
    try {
      next = readConfig(opts);
      nextLogger = createLogger(next.log);
      nextGateway = newGateway(next, nextLogger);
    } catch (err) {
      if (nextLogger) closeLogger(nextLogger);
      metrics.configReloads.inc({ result: 'error' });
      logger.error(
        { error: (err as Error).message },
        'SIGHUP: the new config is not valid; keeping the old one',
      );
      return;
    }
    for (const field of ['socket', 'socketGroup', 'metricsListen'] as const) {
      if (next[field] !== config[field]) {
        nextLogger.warn(
          { field },
          `SIGHUP: a change of ${field} takes effect only after a restart`,
        );
      }
    }
    closeLogger(logger);
    logger = nextLogger;
    gateways.replace(nextGateway);
    cache.setTtl(next.keyCacheTtlMs);
    cache.clear();
    config = next;
    metrics.configReloads.inc({ result: 'ok' });
    logger.info({ config: config.path }, 'SIGHUP: configuration reloaded');
  };

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, in_flight: server.inFlight }, 'stopping: finishing requests in flight');
      // Requests are bounded by the HSM deadline; give them that plus a margin, then cut.
      void server.shutdown(config.deadlineMs + 5000).then(async (inTime) => {
        if (!inTime) logger.warn('some requests did not finish in time and were cut');
        metricsServer?.close();
        metricsServer?.closeAllConnections(); // a scraper's keep-alive connection must not hold the exit
        removeSocket(socketPath, socketIno);
        await gateways.close();
        logger.info({ drained: inTime }, 'akv agent stopped');
        closeLogger(logger);
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        process.off('SIGHUP', reload);
        resolveExit(0);
      });
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    process.on('SIGHUP', reload);
  });
}

/** Removes the socket file, unless another agent has since put its own socket there. */
function removeSocket(path: string, ino: number): void {
  try {
    if (lstatSync(path).ino === ino) unlinkSync(path);
  } catch {
    /* already gone */
  }
}
