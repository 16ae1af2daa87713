/**
 * The options of `akv key` turned into checked values: which vault and key (--hsm-name /
 * --vault-name / --name / --version, or --id URI), key type and size, operations and tags, with
 * errors that say exactly which flag is wrong and what it accepts.
 */
import type { VaultType } from '../../config/types.js';
import { UsageError } from '../command.js';
import { parseKeyUri } from '../../uri/index.js';
import { int, list, str, type Parsed } from './args.js';
import { isOneOf } from '../../guards.js';

export const KTYS = ['RSA-HSM', 'EC-HSM', 'oct-HSM', 'RSA', 'EC', 'oct'] as const;
export const CURVES = ['P-256', 'P-256K', 'P-384', 'P-521'] as const;
export const KEY_OPS = [
  'sign',
  'verify',
  'encrypt',
  'decrypt',
  'wrapKey',
  'unwrapKey',
  'import',
  'export',
] as const;
export const RSA_SIZES = [2048, 3072, 4096];
export const OCT_SIZES = [128, 192, 256];

export interface Target {
  vaultType: VaultType;
  vault: string;
  name?: string;
  version?: string;
}

export function target(p: Parsed, sub: string, needName: boolean): Target {
  const id = str(p, 'id');
  if (id !== undefined) {
    if (str(p, 'hsm-name') || str(p, 'vault-name') || str(p, 'name'))
      throw new UsageError(
        `key ${sub}: give either --id or --hsm-name/--vault-name with --name, not both`,
      );
    const ref = parseKeyUri(id);
    return ref.version
      ? { ...ref }
      : { vaultType: ref.vaultType, vault: ref.vault, name: ref.name };
  }
  const kv = str(p, 'vault-name');
  // AKV_HSM_NAME (which `akv dev up` exports) stands in for --hsm-name, as az's defaults do.
  const hsm = str(p, 'hsm-name') ?? (kv ? undefined : process.env.AKV_HSM_NAME || undefined);
  if (hsm && kv) throw new UsageError(`key ${sub}: give --hsm-name or --vault-name, not both`);
  const vault = hsm || kv;
  if (!vault)
    throw new UsageError(
      `key ${sub}: --hsm-name NAME (Managed HSM) or --vault-name NAME (Key Vault) is required (or set AKV_HSM_NAME)`,
    );
  if (!/^[A-Za-z0-9-]{3,24}$/.test(vault))
    throw new UsageError(
      `key ${sub}: ${JSON.stringify(vault)} is not a valid HSM/vault name (3-24 letters, digits, hyphens)`,
    );
  const name = str(p, 'name');
  if (needName && !name) throw new UsageError(`key ${sub}: --name KEY is required`);
  if (name !== undefined && !/^[A-Za-z0-9-]{1,127}$/.test(name))
    throw new UsageError(
      `key ${sub}: ${JSON.stringify(name)} is not a valid key name (1-127 letters, digits, hyphens)`,
    );
  const version = str(p, 'version');
  if (version !== undefined && !/^[0-9a-fA-F]{32}$/.test(version))
    throw new UsageError(`key ${sub}: --version must be 32 hex characters`);
  const t: Target = { vaultType: hsm ? 'managedhsm' : 'keyvault', vault };
  if (name !== undefined) t.name = name;
  if (version !== undefined) t.version = version;
  return t;
}

export function keyOps(p: Parsed, sub: string): string[] | undefined {
  const ops = list(p, 'ops');
  if (ops.length === 0) return undefined;
  for (const op of ops) {
    if (!isOneOf(KEY_OPS, op))
      throw new UsageError(
        `key ${sub}: unknown operation ${JSON.stringify(op)} in --ops (use ${KEY_OPS.slice(0, 6).join(', ')})`,
      );
  }
  return [...new Set(ops)];
}

export function tags(p: Parsed, sub: string): Record<string, string> | undefined {
  const pairs = list(p, 'tags');
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new UsageError(`key ${sub}: --tags takes KEY=VALUE pairs, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export interface CreateSpec {
  kty: string;
  size?: number;
  curve?: string;
}

export function createSpec(p: Parsed, t: Target, sub: string, fallback?: CreateSpec): CreateSpec {
  const kty = str(p, 'kty') ?? fallback?.kty;
  if (!kty) throw new UsageError(`key ${sub}: --kty is required (${KTYS.join(', ')})`);
  if (!isOneOf(KTYS, kty))
    throw new UsageError(
      `key ${sub}: --kty must be one of ${KTYS.join(', ')}, got ${JSON.stringify(kty)}`,
    );
  if (t.vaultType === 'managedhsm' && !kty.endsWith('-HSM')) {
    throw new UsageError(`key ${sub}: Managed HSM keys are HSM keys: use --kty ${kty}-HSM`);
  }
  const base = kty.replace(/-HSM$/, '');
  let size = int(p, `key ${sub}`, 'size');
  const curve = str(p, 'curve') ?? (base === 'EC' ? (fallback?.curve ?? 'P-256') : undefined);
  if (base === 'EC') {
    if (size !== undefined) throw new UsageError(`key ${sub}: EC keys take --curve, not --size`);
    if (!isOneOf(CURVES, curve))
      throw new UsageError(`key ${sub}: --curve must be one of ${CURVES.join(', ')}`);
    return { kty, curve };
  }
  if (str(p, 'curve') !== undefined)
    throw new UsageError(`key ${sub}: --curve applies to EC keys only`);
  size ??= fallback?.size ?? (base === 'RSA' ? 2048 : 256);
  const allowed = base === 'RSA' ? RSA_SIZES : OCT_SIZES;
  if (!allowed.includes(size))
    throw new UsageError(`key ${sub}: --size for ${kty} must be one of ${allowed.join(', ')}`);
  return { kty, size };
}
