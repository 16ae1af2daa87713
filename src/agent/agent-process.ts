/**
 * One running agent: its config, logger, HSM gateway, key cache, socket server and metrics
 * listener, with the three things that happen to it: start (bind the socket, serve), reload
 * (SIGHUP: a new config replaces the old only when all of it is valid) and stop (SIGTERM: drain,
 * then close everything). src/agent/agent.ts wires these to the process's signals.
 */
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { agentLimits, loadConfig, type AgentLimits } from '../config/load.js';
import type { AkvConfig } from '../config/types.js';
import { createGateway } from '../azure/gateway.js';
import { preloadHsmTransport } from '../azure/clients.js';
import type { HsmGateway } from '../azure/gateway.js';
import { GatewayHolder } from './gateway-holder.js';
import type { HandlerContext } from './handlers.js';
import { HsmSlots } from './hsm-slots.js';
import { KeyCache } from './key-cache.js';
import { closeLogger, createLogger } from './log.js';
import { AccessChecker } from './diagnose.js';
import { jwtExpiry } from '../azure/jwt.js';
import { TokenHandover } from './token-handover.js';
import { NO_METRICS, type MetricsSink } from './metrics-sink.js';
import type { AgentMetrics } from './metrics.js';
import { AgentServer } from './server.js';
import { listenOn, removeSocket, type Listening } from './listen.js';
import { peerCredentialsUnavailable } from './peer-credentials.js';
import { AccessPolicy } from './policy.js';
import { akvVersion } from '../version.js';
import { errorMessage } from '../errors.js';
import { codeCacheState, startupTimings } from './startup.js';

export interface AgentOptions {
  /** --config; otherwise AKV_CONFIG and the default places (see loadConfig). */
  configPath?: string;
  /** --socket; overrides the config and AKV_AGENT_SOCKET. */
  socket?: string;
  /** Where the ready line goes (stdout). */
  out?: (line: string) => void;
  /**
   * --autostarted: the provider started this agent for its user (docs/agent.md, "Autostart"): it
   * takes the user's refreshed AZURE_CLI_ACCESS_TOKEN from clients (when its socket is the
   * owner's alone and the config names no static credential).
   */
  autostarted?: boolean;
}

/** The agent's version (package.json's, src/version.ts). */
export const agentVersion = akvVersion;

function readConfig(opts: AgentOptions): AkvConfig {
  const config = loadConfig(opts.configPath, process.env, { autostarted: opts.autostarted });
  if (opts.socket !== undefined) config.socket = resolve(opts.socket);
  return config;
}

function newGateway(config: AkvConfig, logger: Logger, metrics: MetricsSink): HsmGateway {
  return createGateway(config, logger, {
    onTokenRefresh: () => metrics.tokenRefreshes.inc(),
    onRetry: (kind) => metrics.hsmRetries.inc({ kind }),
    onRetryBudgetSpent: (kind) => metrics.hsmRetryBudgetSpent.inc({ kind }),
  });
}

/** What the request handlers share; the agent points its getters at itself once it exists. */
function newHandlerContext(parts: {
  gateways: GatewayHolder;
  cache: KeyCache;
  slots: HsmSlots;
  metrics: MetricsSink;
  logger: Logger;
  policy: AccessPolicy | undefined;
  config: AkvConfig;
}): HandlerContext {
  return {
    gateways: parts.gateways,
    cache: parts.cache,
    slots: parts.slots,
    metrics: parts.metrics,
    logger: () => parts.logger,
    agentVersion: agentVersion(),
    policy: () => parts.policy,
    config: () => parts.config,
    startedAt: Date.now(),
    socketActivated: false,
    socketPath: parts.config.socket,
  };
}

/** The HSM's in-flight slots, their counts kept in the metrics. */
function newSlots(limits: AgentLimits, metrics: MetricsSink): HsmSlots {
  return new HsmSlots(limits.maxInFlight, (inFlight, queued) => {
    metrics.hsmInFlight.set(inFlight);
    metrics.hsmQueued.set(queued);
  });
}

/** The metrics listener on LISTEN (metricsListen); its URL is printed. */
async function serveMetrics(
  listen: string,
  config: AkvConfig,
  prometheus: AgentMetrics,
  access: AccessChecker,
  out: (line: string) => void,
): Promise<Server> {
  const { startMetricsServer } = await import('./metrics-server.js');
  const started = await startMetricsServer(listen, prometheus, access, config.metricsDetail);
  out(`akv agent metrics on ${started.url}`);
  return started.server;
}

export class AgentProcess {
  private readonly handover = new TokenHandover();

  private constructor(
    private readonly opts: AgentOptions,
    private readonly metrics: MetricsSink,
    private config: AkvConfig,
    private log: Logger,
    private readonly gateways: GatewayHolder,
    private readonly cache: KeyCache,
    private readonly slots: HsmSlots,
    private readonly server: AgentServer,
    private readonly listening: Listening,
    private readonly metricsServer: Server | undefined,
    private readonly access: AccessChecker,
    private policy: AccessPolicy | undefined,
  ) {}

  /** Reads the config, binds the socket and the metrics listener; the agent serves on return. */
  static async start(opts: AgentOptions = {}): Promise<AgentProcess> {
    const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
    const config = readConfig(opts);
    // Before anything is bound: a policy that cannot be enforced stops the start.
    const policy = AccessPolicy.fromConfig(config);
    const logger = createLogger(config.log);
    for (const warning of config.warnings ?? []) logger.warn(warning);
    // prom-client only for a metrics listener (metrics-sink.ts).
    const prometheus: AgentMetrics | undefined = config.metricsListen
      ? new (await import('./metrics.js')).AgentMetrics()
      : undefined;
    const metrics: MetricsSink = prometheus ?? NO_METRICS;
    const gateways = new GatewayHolder(newGateway(config, logger, metrics));
    const cache = new KeyCache(config.keyCacheTtlMs);
    const limits = agentLimits(config);
    const slots = newSlots(limits, metrics);
    const ctx = newHandlerContext({ gateways, cache, slots, metrics, logger, policy, config });
    const access = new AccessChecker(ctx);
    const server = new AgentServer(ctx, limits);
    let listening: Listening;
    try {
      listening = await listenOn(server, config, logger);
    } catch (err) {
      await gateways.close();
      closeLogger(logger);
      throw err;
    }
    let metricsServer: Server | undefined;
    if (config.metricsListen && prometheus) {
      try {
        metricsServer = await serveMetrics(config.metricsListen, config, prometheus, access, out);
      } catch (err) {
        await server.shutdown(0);
        removeSocket(listening);
        await gateways.close();
        closeLogger(logger);
        throw err;
      }
    }
    const agent = new AgentProcess(
      opts,
      metrics,
      config,
      logger,
      gateways,
      cache,
      slots,
      server,
      listening,
      metricsServer,
      access,
      policy,
    );
    agent.adopt(ctx);
    agent.announce(ctx, limits, out);
    return agent;
  }

  /** The handlers read the logger and the config through the agent, so a reload's are used at once. */
  private adopt(ctx: HandlerContext): void {
    ctx.logger = () => this.log;
    ctx.config = () => this.config;
    ctx.policy = () => this.policy;
    const { opts, config, listening } = this;
    if (opts.autostarted && config.credential.type !== 'static' && !config.socketGroup)
      ctx.clientToken = (token, pid) => this.useClientToken(token, pid);
    ctx.socketActivated = listening.activated;
    ctx.socketPath = listening.path;
  }

  /** The "listening" log line and output, once the socket is bound. */
  private announce(ctx: HandlerContext, limits: AgentLimits, out: (line: string) => void): void {
    const { listening } = this;
    this.log.info(
      {
        socket: listening.path,
        passed_by_systemd: listening.activated,
        config: this.config.path,
        group: this.config.socketGroup,
        version: ctx.agentVersion,
        limits,
        startup_ms: startupTimings(),
        code_cache: codeCacheState(),
      },
      'akv agent listening',
    );
    this.logPolicy();
    out(
      `akv agent listening on ${listening.path}${listening.activated ? ' (socket passed by systemd)' : ''}`,
    );
    setImmediate(preloadHsmTransport);
  }

  get logger(): Logger {
    return this.log;
  }

  /** One line at start and after each reload: which policy is in force, or that none is. */
  private logPolicy(): void {
    const unavailable = peerCredentialsUnavailable();
    if (unavailable !== undefined) {
      this.log.warn(
        { error: unavailable },
        "cannot read clients' credentials from the kernel: audit lines carry the pid clients report, and an access policy cannot be set; rebuild native/build/akv_peercred.node (npm run build)",
      );
    }
    if (this.policy) {
      this.log.info(
        { policy: this.policy.name, rules: this.policy.ruleCount },
        'access policy in force: clients may use only the keys and operations its rules grant',
      );
    } else {
      this.log.info(
        'no access policy set: every process that can open the socket may use every key (docs/security.md, "Access policy")',
      );
    }
  }

  /**
   * Calls `onIdle` once no client has connected and no request has finished for `seconds` (and
   * none is in flight): the --idle-exit of an autostarted agent. The check is coarse on purpose
   * (a tenth of the period, 1-30 s) so it costs nothing on the request path.
   */
  exitWhenIdle(seconds: number, onIdle: () => void): void {
    const periodMs = Math.min(30_000, Math.max(1_000, (seconds * 1000) / 10));
    const timer = setInterval(() => {
      if (this.server.inFlight > 0) return;
      if (Date.now() - this.server.lastActivityMs < seconds * 1000) return;
      clearInterval(timer);
      this.log.info(
        { idle_seconds: seconds },
        'idle: no request for the idle-exit period, stopping',
      );
      onIdle();
    }, periodMs);
    timer.unref();
  }

  /**
   * A client handed over its AZURE_CLI_ACCESS_TOKEN (HELLO): use it from now on if it is newer
   * than the one in use (token-handover.ts says what newer means). The gateway is rebuilt around
   * the new token; requests in flight finish with the old one. The token itself is never logged.
   */
  useClientToken(token: string, clientPid: number | undefined): void {
    const verdict = this.handover.judge(process.env.AZURE_CLI_ACCESS_TOKEN, token);
    if (verdict !== 'use') {
      if (verdict !== 'same')
        this.log.debug(
          { client_pid: clientPid, reason: verdict },
          'a client handed over an access token: not used',
        );
      return;
    }
    process.env.AZURE_CLI_ACCESS_TOKEN = token;
    this.gateways.replace(newGateway(this.config, this.log, this.metrics));
    this.log.info(
      { client_pid: clientPid, expires_at: jwtExpiry(token)?.toISOString() },
      'using the AZURE_CLI_ACCESS_TOKEN a client handed over',
    );
  }

  /** A bug: leave a trace in the agent's own log and remove the socket before the process dies. */
  crashed(what: string, err: unknown): void {
    this.log.fatal({ err }, `bug: ${what}, exiting`);
    removeSocket(this.listening);
  }

  /**
   * SIGHUP: build everything new first; only when all of it works does it replace the old (config,
   * logger, gateway, cache TTL; the cache is emptied). Requests in flight finish on the old gateway.
   */
  reload(): void {
    let next: AkvConfig;
    let nextLogger: Logger | undefined;
    let nextGateway: HsmGateway;
    let nextPolicy: AccessPolicy | undefined;
    try {
      next = readConfig(this.opts);
      nextPolicy = AccessPolicy.fromConfig(next);
      nextLogger = createLogger(next.log);
      nextGateway = newGateway(next, nextLogger, this.metrics);
    } catch (err) {
      if (nextLogger) closeLogger(nextLogger);
      this.metrics.configReloads.inc({ result: 'error' });
      this.log.error(
        { error: errorMessage(err) },
        'SIGHUP: the new config is not valid; keeping the old one',
      );
      return;
    }
    for (const field of ['socket', 'socketGroup', 'metricsListen'] as const) {
      if (next[field] !== this.config[field]) {
        nextLogger.warn(
          { field },
          `SIGHUP: a change of ${field} takes effect only after a restart`,
        );
      }
    }
    closeLogger(this.log);
    this.log = nextLogger;
    this.gateways.replace(nextGateway);
    this.cache.setTtl(next.keyCacheTtlMs);
    this.cache.clear();
    const limits = agentLimits(next);
    this.slots.setCapacity(limits.maxInFlight);
    this.server.setLimits(limits);
    this.config = next;
    this.policy = nextPolicy;
    this.access.reset();
    this.metrics.configReloads.inc({ result: 'ok' });
    this.log.info({ config: this.config.path }, 'SIGHUP: configuration reloaded');
    this.logPolicy();
  }

  /**
   * SIGTERM/SIGINT: stop accepting, let requests in flight finish (bounded by the HSM deadline plus
   * a margin, then cut), close the metrics listener, remove the socket, close the gateway and log.
   */
  async stop(signal: string): Promise<void> {
    this.log.info(
      { signal, in_flight: this.server.inFlight },
      'stopping: finishing requests in flight',
    );
    const inTime = await this.server.shutdown(this.config.deadlineMs + 5000);
    if (!inTime) this.log.warn('some requests did not finish in time and were cut');
    this.metricsServer?.close();
    this.metricsServer?.closeAllConnections(); // a scraper's keep-alive connection must not hold the exit
    removeSocket(this.listening);
    await this.gateways.close();
    this.log.info({ drained: inTime }, 'akv agent stopped');
    closeLogger(this.log);
  }
}
