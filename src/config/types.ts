/**
 * The agent/CLI configuration (JSON file named by AKV_CONFIG or --config; see
 * docs/configuration.md). Every field is optional in the file; `loadConfig` fills defaults.
 */
export type { VaultType } from '../protocol/index.js';

export interface VaultConfig {
  /** Base URL overriding https://<name>.managedhsm.azure.net (emulator, sovereign clouds). */
  endpoint?: string;
  /** PEM file with extra CA certificates trusted for this endpoint (the emulator's ca.pem). */
  caFile?: string;
  /** Skip the SDK's check that the challenge resource matches the host (needed for 127.0.0.1). */
  disableChallengeResourceVerification?: boolean;
  /**
   * Certificate file (PEM or DER; absolute path) per key name, presented by the PKCS#11 module as
   * the key's certificate object (docs/pkcs11.md). Written by `akv pkcs11 set-certificate`.
   */
  certificates?: Record<string, string>;
}

export interface CredentialConfig {
  /**
   * `default`: AZURE_CLI_ACCESS_TOKEN when set, else @azure/identity's DefaultAzureCredential.
   * `static`: the token below (development against the emulator only).
   */
  type: 'default' | 'static';
  token?: string;
}

/** How the agent retries throttled (429) and failing (5xx, reset) HSM calls, within the deadline. */
export interface RetryConfig {
  /** Retries after the first attempt (default 5). */
  maxRetries: number;
  /** First backoff step; doubled per retry, with equal jitter: half fixed, half random (default 250 ms). */
  baseDelayMs: number;
  /** Upper bound for one computed backoff step (default 8000 ms); a longer Retry-After is honoured while the deadline allows. */
  maxDelayMs: number;
  /** Retries to one HSM as a share of its requests over the last 10 s, in percent (default 20). */
  budgetPercent?: number;
  /** Retries to one HSM always allowed per 10 s, whatever the share (default 10). */
  budgetMinRetries?: number;
}

/** What a policy rule may allow (docs/security.md, "Access policy"). */
export const POLICY_OPERATIONS = ['sign', 'decrypt', 'wrap', 'unwrap', 'describe', 'list'] as const;
export type PolicyOperation = (typeof POLICY_OPERATIONS)[number];

/**
 * One rule: the peers it is for (by the kernel's uid/gid, every listed selector must match; a
 * list matches when any entry does), the keys (URI patterns, `*` and `?` globs) and operations.
 */
export interface PolicyRule {
  name: string;
  /** User names or numeric uids. */
  users?: Array<string | number>;
  /** Group names or numeric gids: the peer's primary or a supplementary group. */
  groups?: Array<string | number>;
  /** Absolute paths the peer's /proc/<pid>/exe must be one of. */
  executables?: string[];
  /** `managedhsm:<hsm>:<key>` / `keyvault:<vault>:<key>` patterns. */
  keys: string[];
  operations: PolicyOperation[];
}

export interface PolicyConfig {
  /** Named in every ACCESS_DENIED message and audit line (default: the config file's path). */
  name?: string;
  rules: PolicyRule[];
}

export interface AkvConfig {
  /** Agent socket path (AKV_AGENT_SOCKET overrides). */
  socket: string;
  /** Group allowed to use the socket (0660 socket, 0750 directory); none = owner only (0600/0700). */
  socketGroup?: string;
  /** Per-name overrides; a name that is not listed uses Azure's public endpoints. */
  vaults: Record<string, VaultConfig>;
  credential: CredentialConfig;
  /** Deadline for one private-key operation, retries included. */
  deadlineMs: number;
  /** How long public keys and key metadata stay cached. */
  keyCacheTtlMs: number;
  log: { level: 'trace' | 'debug' | 'info' | 'warn' | 'error'; file?: string };
  /** Prometheus text endpoint, e.g. "127.0.0.1:9464"; absent = disabled. */
  metricsListen?: string;
  /** Retry policy; `loadConfig` always fills it (optional so hand-built configs stay short). */
  retry?: RetryConfig;
  /**
   * Client connections open at once; one more closes the longest-idle connection (default 1024).
   * The four limits below are always filled by `loadConfig` (docs/agent.md, "Limits").
   */
  maxClients?: number;
  /** A connection with nothing in flight and no traffic for this long is closed; 0 = never. */
  clientIdleTimeoutMs?: number;
  /** HSM requests in flight across all clients; more wait in a queue fair across connections. */
  maxInFlight?: number;
  /** Requests one connection may have in the agent (running or queued) before it is read no more. */
  maxInFlightPerClient?: number;
  /** Per-key access policy; absent = every client of the socket may use every key. */
  policy?: PolicyConfig;
  /** Where the file was read from (undefined when built from defaults only). */
  path?: string;
  /** Settings that were not applied and why, for the agent to log once it has a logger. */
  warnings?: string[];
}
