/**
 * What the agent itself sees, for `akv doctor` (the DIAGNOSE op) and for the metrics listener's
 * /readyz: its credential (source and token expiry, never the token), whether each HSM it knows
 * answers, optionally one key, and its version, uptime and limits. The HSM checks are cached for
 * a few seconds, so a readiness probe polled every second costs the HSM one call per interval.
 */
import { agentLimits } from '../config/load.js';
import type { AkvConfig } from '../config/types.js';
import type { HsmGateway, KeyDescription, VaultName } from '../azure/gateway.js';
import { AkvError, errorMessage } from '../errors.js';
import { MAX_REQUEST_BODY, MAX_RESPONSE_BODY, PROTOCOL_VERSION } from '../protocol/index.js';
import type {
  AgentReport,
  CredentialStatus,
  HsmAccess,
  KeyStatus,
  VaultStatus,
  VaultType,
} from '../protocol/index.js';
import { formatKeyUri, parseKeyUri } from '../uri/index.js';
import type { KeyRef } from '../uri/index.js';
import type { GatewayHolder } from './gateway-holder.js';

/** How long an HSM/credential check result is reused (readiness probes poll often). */
export const ACCESS_CHECK_TTL_MS = 5_000;
/** At most this many HSMs are checked at once (the configured ones first). */
export const MAX_CHECKED_VAULTS = 16;

export interface DiagnoseContext {
  gateways: GatewayHolder;
  agentVersion: string;
  /** The agent's current config (SIGHUP may replace it). */
  config(): AkvConfig;
  /** Date.now() when the agent started serving. */
  startedAt: number;
  /** True when systemd (or systemd-socket-activate) passed the listening socket. */
  socketActivated: boolean;
  /** The path the agent serves on. */
  socketPath: string;
}

/** Key Vault names live under *.vault.<cloud>; everything else configured is a Managed HSM. */
function configuredType(endpoint: string | undefined): VaultType {
  return endpoint !== undefined &&
    /\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net)$/i.test(new URL(endpoint).hostname)
    ? 'keyvault'
    : 'managedhsm';
}

/** The HSMs to check: the config's, then the ones requests used, without duplicates. */
function vaultsToCheck(
  config: AkvConfig,
  known: VaultName[],
): Array<VaultName & { configured: boolean }> {
  const out: Array<VaultName & { configured: boolean }> = [];
  const seen = new Set<string>();
  const add = (v: VaultName, configured: boolean): void => {
    const id = `${v.vaultType}:${v.vault.toLowerCase()}`;
    if (seen.has(id) || out.length >= MAX_CHECKED_VAULTS) return;
    seen.add(id);
    out.push({ ...v, configured });
  };
  for (const [name, entry] of Object.entries(config.vaults))
    add({ vaultType: configuredType(entry.endpoint), vault: name }, true);
  for (const v of known) add(v, false);
  return out;
}

function failure(err: unknown): { error: string; hint?: string } {
  if (err instanceof AkvError)
    return err.hint ? { error: err.message, hint: err.hint } : { error: err.message };
  return { error: errorMessage(err) };
}

/** A token for the vaults' scope, or why none came. */
async function checkCredential(
  gateway: HsmGateway,
  scopeType: VaultType,
): Promise<CredentialStatus> {
  try {
    const token = await gateway.probeCredential(scopeType);
    return {
      ok: true,
      source: token.source,
      scope: token.scope,
      expiresAt: new Date(token.expiresOnTimestamp).toISOString(),
      expiresInSeconds: Math.round((token.expiresOnTimestamp - Date.now()) / 1000),
    };
  } catch (err) {
    return { ok: false, source: gateway.credentialSource, ...failure(err) };
  }
}

/** Whether one vault answers (not asked without a token). */
async function checkVault(
  gateway: HsmGateway,
  credential: CredentialStatus,
  v: VaultName & { configured: boolean },
): Promise<VaultStatus> {
  const base = { name: v.vault, type: v.vaultType, configured: v.configured };
  if (!credential.ok)
    return { ...base, reachable: false, detail: 'not checked: no token', hint: credential.hint };
  try {
    const probe = await gateway.probeVault(v.vaultType, v.vault);
    return { ...base, url: probe.url, reachable: true, detail: probe.detail };
  } catch (err) {
    const f = failure(err);
    return f.hint
      ? { ...base, reachable: false, detail: f.error, hint: f.hint }
      : { ...base, reachable: false, detail: f.error };
  }
}

/** Why the agent is not ready, or undefined when it is. */
function notReadyReason(credential: CredentialStatus, statuses: VaultStatus[]): string | undefined {
  if (!credential.ok) return `no token: ${credential.error}`;
  if (statuses.length === 0)
    return 'no HSM to check: list it under "vaults" in the config (an empty entry is enough: "vaults": {"myhsm": {}}), or send the agent a request for one of its keys';
  if (!statuses.some((s) => s.reachable))
    return `no HSM answers (${statuses.map((s) => `${s.name}: ${s.detail}`).join('; ')})`;
  return undefined;
}

async function checkAccess(ctx: DiagnoseContext, extra?: VaultName): Promise<HsmAccess> {
  const config = ctx.config();
  const lease = ctx.gateways.lease();
  try {
    const gateway = lease.gateway;
    const vaults = vaultsToCheck(
      config,
      extra ? [extra, ...gateway.knownVaults()] : gateway.knownVaults(),
    );
    const credential = await checkCredential(gateway, vaults[0]?.vaultType ?? 'managedhsm');
    const statuses = await Promise.all(vaults.map((v) => checkVault(gateway, credential, v)));
    const reason = notReadyReason(credential, statuses);
    const access: HsmAccess = {
      ready: reason === undefined,
      credential,
      vaults: statuses,
      checkedAt: new Date().toISOString(),
    };
    if (reason !== undefined) access.reason = reason;
    return access;
  } finally {
    lease.release();
  }
}

/** The credential and HSM checks, shared by concurrent callers and reused for a few seconds. */
export class AccessChecker {
  private last: { at: number; result: Promise<HsmAccess> } | undefined;

  constructor(private readonly ctx: DiagnoseContext) {}

  check(): Promise<HsmAccess> {
    const now = Date.now();
    if (this.last && now - this.last.at < ACCESS_CHECK_TTL_MS) return this.last.result;
    const result = checkAccess(this.ctx);
    this.last = { at: now, result };
    // A failed check is not cached: the next probe tries again.
    result.then(
      (r) => {
        if (!r.ready && this.last?.result === result) this.last = undefined;
      },
      () => {
        if (this.last?.result === result) this.last = undefined;
      },
    );
    return result;
  }

  /** Forgets the cached result (after a reload: new credential, new vaults). */
  reset(): void {
    this.last = undefined;
  }
}

function limitsOf(config: AkvConfig): AgentReport['limits'] {
  const limits: AgentReport['limits'] = {
    deadlineMs: config.deadlineMs,
    keyCacheTtlMs: config.keyCacheTtlMs,
    maxRequestBody: MAX_REQUEST_BODY,
    maxResponseBody: MAX_RESPONSE_BODY,
    ...agentLimits(config),
  };
  if (config.retry) limits.retry = { ...config.retry };
  return limits;
}

/**
 * The whole report. With a URI, the key is described (through the agent's key cache) and its HSM
 * is checked even when no config entry names it. Never throws: failures are part of the report.
 */
export async function diagnose(
  ctx: DiagnoseContext,
  uri: string | undefined,
  describe: (ref: KeyRef) => Promise<KeyDescription>,
): Promise<AgentReport> {
  const config = ctx.config();
  let ref: KeyRef | undefined;
  let key: KeyStatus | undefined;
  if (uri !== undefined) {
    try {
      ref = parseKeyUri(uri);
    } catch (err) {
      key = { uri, ok: false, ...failure(err) };
    }
  }
  const access = await checkAccess(
    ctx,
    ref ? { vaultType: ref.vaultType, vault: ref.vault } : undefined,
  );
  if (ref) {
    const canonical = formatKeyUri(ref);
    try {
      const d = await describe(ref);
      key = {
        uri: canonical,
        ok: true,
        keyType: d.kty,
        bits: d.bits,
        ...(d.curve !== undefined ? { curve: d.curve } : {}),
        version: d.version,
        keyOps: d.keyOps,
        enabled: d.enabled,
      };
    } catch (err) {
      key = { uri: canonical, ok: false, ...failure(err) };
    }
  }
  const report: AgentReport = {
    agent: {
      version: ctx.agentVersion,
      protocolVersion: PROTOCOL_VERSION,
      node: process.version,
      pid: process.pid,
      uid: process.getuid?.() ?? -1,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      socket: ctx.socketPath,
      socketActivated: ctx.socketActivated,
      config: config.path ?? null,
    },
    ...access,
    limits: limitsOf(config),
  };
  if (key) report.key = key;
  return report;
}
