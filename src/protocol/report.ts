/**
 * The agent's own view that a DIAGNOSE answer carries in its REPORT field as JSON
 * (docs/protocol.md): written by the agent (src/agent/diagnose.ts), read by `akv doctor` through
 * the client. Wire vocabulary, so it lives here at the bottom where both sides may import it.
 */

/** Which Azure service a vault name belongs to (the `type` of an `akv:` URI). */
export type VaultType = 'managedhsm' | 'keyvault';

export type CredentialStatus =
  | { ok: true; source: string; scope: string; expiresAt: string; expiresInSeconds: number }
  | { ok: false; source: string; error: string; hint?: string };

export interface VaultStatus {
  name: string;
  type: VaultType;
  /** Listed under "vaults" in the config (otherwise: seen in a request). */
  configured: boolean;
  url?: string;
  reachable: boolean;
  detail: string;
  hint?: string;
}

export interface HsmAccess {
  /** A token and at least one HSM answering. */
  ready: boolean;
  credential: CredentialStatus;
  vaults: VaultStatus[];
  /** Why the agent is not ready (absent when ready). */
  reason?: string;
  checkedAt: string;
}

export type KeyStatus =
  | {
      uri: string;
      ok: true;
      keyType: string;
      bits: number;
      curve?: string;
      version: string;
      keyOps: string[];
      enabled: boolean;
    }
  | { uri: string; ok: false; error: string; hint?: string };

/** The REPORT field of a DIAGNOSE answer (docs/protocol.md). */
export interface AgentReport extends HsmAccess {
  agent: {
    version: string;
    protocolVersion: number;
    node: string;
    pid: number;
    uid: number;
    uptimeSeconds: number;
    socket: string;
    socketActivated: boolean;
    config: string | null;
  };
  limits: Record<string, number | Record<string, number>>;
  key?: KeyStatus;
}
