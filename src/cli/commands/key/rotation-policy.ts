/**
 * `akv key get-rotation-policy` / `set-rotation-policy --value JSON|@FILE`: a key's rotation
 * policy, in the service's JSON shape (what az prints and takes):
 *   {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],
 *    "attributes":{"expiryTime":"P2Y"}}
 */
import type { KeyRotationLifetimeAction, KeyRotationPolicyProperties } from '@azure/keyvault-keys';
import { readFileSync } from 'node:fs';
import { UsageError } from '../../command.js';
import { str } from '../../util/args.js';
import { rotationPolicyJson } from '../../util/key-bundle.js';
import { namedTarget, type KeyCommandContext } from './context.js';
import { errnoCode, errorMessage } from '../../../errors.js';
import { isRecord } from '../../../guards.js';

export async function getPolicy(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'get key rotation policy'),
    (abortSignal) => client.getKeyRotationPolicy(t.name, { abortSignal }),
  );
  return rotationPolicyJson(value);
}

function readPolicy(ctx: KeyCommandContext): unknown {
  const v = str(ctx.p, 'value') ?? str(ctx.p, 'policy');
  if (!v) throw new UsageError(`key ${ctx.sub}: --value JSON (or @FILE) is required`);
  let text = v;
  if (v.startsWith('@')) {
    try {
      text = readFileSync(v.slice(1), 'utf8');
    } catch (err) {
      throw new UsageError(
        `key ${ctx.sub}: cannot read ${v.slice(1)}: ${errnoCode(err) ?? errorMessage(err)}`,
      );
    }
  }
  try {
    const json: unknown = JSON.parse(text);
    return json;
  } catch (err) {
    throw new UsageError(`key ${ctx.sub}: the policy is not JSON: ${errorMessage(err)}`);
  }
}

/** The service's policy JSON → the SDK's properties, with a clear error for each wrong field. */
function toProperties(ctx: KeyCommandContext, json: unknown): KeyRotationPolicyProperties {
  const bad = (what: string): never => {
    throw new UsageError(`key ${ctx.sub}: ${what}`);
  };
  if (!isRecord(json))
    return bad('the policy must be a JSON object with lifetimeActions and attributes');
  const p = json;
  const actions = p.lifetimeActions ?? [];
  if (!Array.isArray(actions)) return bad('lifetimeActions must be a list');
  const lifetimeActions = actions.map((a: unknown, i): KeyRotationLifetimeAction => {
    const entry = isRecord(a) ? a : {};
    const trigger = isRecord(entry.trigger) ? entry.trigger : {};
    const action = isRecord(entry.action) ? entry.action : {};
    const type = String(action.type ?? entry.action ?? '');
    const kind = /^rotate$/i.test(type) ? 'Rotate' : /^notify$/i.test(type) ? 'Notify' : undefined;
    if (!kind) return bad(`lifetimeActions[${i}].action.type must be Rotate or Notify`);
    const out: KeyRotationLifetimeAction = { action: kind };
    const after = trigger.timeAfterCreate ?? entry.timeAfterCreate;
    const before = trigger.timeBeforeExpiry ?? entry.timeBeforeExpiry;
    if (typeof after === 'string') out.timeAfterCreate = after;
    if (typeof before === 'string') out.timeBeforeExpiry = before;
    return out;
  });
  const attributes = isRecord(p.attributes) ? p.attributes : {};
  const expiresIn = attributes.expiryTime ?? p.expiresIn;
  return {
    lifetimeActions,
    ...(typeof expiresIn === 'string' ? { expiresIn } : {}),
  };
}

export async function setPolicy(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const properties = toProperties(ctx, readPolicy(ctx));
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'set key rotation policy'),
    (abortSignal) => client.updateKeyRotationPolicy(t.name, properties, { abortSignal }),
  );
  return rotationPolicyJson(value);
}
