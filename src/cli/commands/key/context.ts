/**
 * What every `akv key` sub-command gets: its parsed options, the config, the SDK clients, and the
 * key it names (typed, so sub-commands need no casts).
 */
import type { AzureClients } from '../../../azure/clients.js';
import type { AkvConfig, VaultType } from '../../../config/types.js';
import { AgentClient } from '../../../client/agent-client.js';
import { formatKeyUri } from '../../../uri/index.js';
import type { KeyRef } from '../../../uri/index.js';
import { UsageError } from '../../command.js';
import type { Parsed } from '../../util/args.js';
import { target, type Target } from '../../util/key-options.js';
import { errorMessage } from '../../../errors.js';

export interface KeyCommandContext {
  sub: string;
  p: Parsed;
  config: AkvConfig;
  clients: AzureClients;
}

/** One sub-command: returns the JSON value to print. */
export type KeySubcommand = (ctx: KeyCommandContext) => Promise<unknown>;

/** A target with a key name: what create, import, show, rotate and delete work on. */
export interface NamedTarget {
  vaultType: VaultType;
  vault: string;
  name: string;
  version?: string;
}

/** The key the options name (--hsm-name/--vault-name with --name, or --id); --name is required. */
export function namedTarget(ctx: KeyCommandContext): NamedTarget {
  const t: Target = target(ctx.p, ctx.sub, true);
  if (t.name === undefined) throw new UsageError(`key ${ctx.sub}: --name KEY is required`);
  return t.version !== undefined
    ? { vaultType: t.vaultType, vault: t.vault, name: t.name, version: t.version }
    : { vaultType: t.vaultType, vault: t.vault, name: t.name };
}

/**
 * After a rotate, import or delete: a running agent still holds the key's old description for up
 * to keyCacheTtlMs; tell it to forget it (FORGET), so the next `openssl ... -key URI` sees the
 * change at once. No agent running means nothing is cached: that is not an error, and no agent is
 * started for it.
 */
export async function agentForgets(ctx: KeyCommandContext, t: NamedTarget): Promise<void> {
  const ref: KeyRef = { vaultType: t.vaultType, vault: t.vault, name: t.name };
  const socket = process.env.AKV_AGENT_SOCKET || ctx.config.socket;
  let client: AgentClient;
  try {
    client = await AgentClient.connect(socket, { timeoutMs: 5_000, clientName: 'akv-key' });
  } catch {
    return; // no agent: nothing cached
  }
  try {
    await client.forget(formatKeyUri(ref));
  } catch (err) {
    console.error(
      `akv: warning: the agent at ${socket} could not drop its cached copy of ${formatKeyUri(ref)} (${errorMessage(err)}); it serves the old version until its key cache expires (keyCacheTtlMs) or it gets SIGHUP`,
    );
  } finally {
    await client.close();
  }
}
