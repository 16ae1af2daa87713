/**
 * The key-URI grammar shared by the agent, the CLI and (by contract) the C provider:
 *
 *   managedhsm:<hsm>:<key>[?version=<v>]
 *   keyvault:<vault>:<key>[?version=<v>]
 *   akv:vault=<hsm>,name=<key>[,version=<v>][,type=managedhsm|keyvault]
 *     (long field names: keyvault_name, key_name, key_version, keyvault_type)
 *
 * Schemes, akv: field names and type values are case-insensitive (the original tool wrote
 * `managedHsm`). Names follow Azure's rules: vault/HSM names 3-24 characters, key names 1-127
 * characters, both of `[A-Za-z0-9-]`; versions are 32 hex characters. Everything else is refused
 * with a message that names the problem and shows the accepted forms.
 */
import { AkvError } from '../errors.js';
import type { VaultType } from '../protocol/index.js';

export interface KeyRef {
  vaultType: VaultType;
  vault: string;
  name: string;
  /** Pinned key version; absent = the key's current version. */
  version?: string;
}

export interface VaultRef {
  vaultType: VaultType;
  vault: string;
}

export const ACCEPTED_KEY_URI_FORMS = [
  'managedhsm:<hsm>:<key>[?version=<v>]',
  'keyvault:<vault>:<key>[?version=<v>]',
  'akv:vault=<hsm>,name=<key>[,version=<v>][,type=managedhsm|keyvault]',
] as const;

const ACCEPTED_VAULT_URI_FORMS = [
  'managedhsm:<hsm>:',
  'keyvault:<vault>:',
  'akv:vault=<hsm>[,type=managedhsm|keyvault]',
] as const;

const NAME_RULES =
  'HSM/vault names are 3-24 characters and key names 1-127 characters of A-Z a-z 0-9 -; ' +
  'versions are 32 hex characters';

const VAULT_NAME = /^[A-Za-z0-9-]{3,24}$/;
const KEY_NAME = /^[A-Za-z0-9-]{1,127}$/;
const KEY_VERSION = /^[0-9A-Fa-f]{32}$/;

/** The longest URI we even try to read; longer input is certainly not a key URI. */
const MAX_URI_LENGTH = 1024;

/** A short, printable rendering of untrusted input for an error message. */
function quote(input: string): string {
  const shown = input.length > 160 ? `${input.slice(0, 160)}...` : input;
  return JSON.stringify(shown);
}

function badUri(
  input: string,
  reason: string,
  forms: readonly string[] = ACCEPTED_KEY_URI_FORMS,
): AkvError {
  return new AkvError(
    'BAD_URI',
    `invalid key URI ${quote(input)}: ${reason}. Accepted forms: ${forms.join(' | ')}`,
    NAME_RULES,
  );
}

function checkVaultName(input: string, vault: string, forms: readonly string[]): void {
  if (vault === '') throw badUri(input, 'the HSM/vault name is empty', forms);
  if (!VAULT_NAME.test(vault)) {
    throw badUri(
      input,
      `HSM/vault name ${quote(vault)} must be 3-24 characters of A-Z a-z 0-9 -`,
      forms,
    );
  }
}

function checkKeyName(input: string, name: string): void {
  if (name === '') throw badUri(input, 'the key name is empty');
  if (!KEY_NAME.test(name)) {
    throw badUri(input, `key name ${quote(name)} must be 1-127 characters of A-Z a-z 0-9 -`);
  }
}

function checkVersion(input: string, version: string): void {
  if (version === '') throw badUri(input, 'the version is empty');
  if (!KEY_VERSION.test(version)) {
    throw badUri(input, `version ${quote(version)} must be 32 hex characters`);
  }
}

function parseVaultType(input: string, value: string, forms: readonly string[]): VaultType {
  const lower = value.toLowerCase();
  if (lower === 'managedhsm' || lower === 'keyvault') return lower;
  throw badUri(input, `type ${quote(value)} must be managedhsm or keyvault`, forms);
}

/** Splits `scheme:rest`; the scheme is returned lower-cased. */
function splitScheme(input: string, forms: readonly string[]): { scheme: string; rest: string } {
  if (typeof input !== 'string' || input === '')
    throw badUri(String(input ?? ''), 'it is empty', forms);
  if (input.length > MAX_URI_LENGTH)
    throw badUri(input, `it is longer than ${MAX_URI_LENGTH} characters`, forms);
  const colon = input.indexOf(':');
  if (colon < 0) throw badUri(input, 'it has no scheme (managedhsm:, keyvault: or akv:)', forms);
  const scheme = input.slice(0, colon).toLowerCase();
  if (scheme !== 'managedhsm' && scheme !== 'keyvault' && scheme !== 'akv') {
    throw badUri(input, `unknown scheme ${quote(input.slice(0, colon))}`, forms);
  }
  return { scheme, rest: input.slice(colon + 1) };
}

const AKV_FIELD_ALIASES: Record<string, 'vault' | 'name' | 'version' | 'type'> = {
  vault: 'vault',
  keyvault_name: 'vault',
  name: 'name',
  key_name: 'name',
  version: 'version',
  key_version: 'version',
  type: 'type',
  keyvault_type: 'type',
};

/** Edit distance of two short strings (field names), for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + cost);
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * The original provider ignored fields it did not know; akv refuses them, since a typo such as
 * `verison=` would otherwise unpin a key without a word (docs/migrating.md).
 */
function unknownField(rawKey: string): string {
  const known = Object.keys(AKV_FIELD_ALIASES);
  const lower = rawKey.toLowerCase();
  const near = known.find((k) => distance(lower, k) <= 2);
  return (
    `unknown field ${quote(rawKey)}${near !== undefined ? ` (did you mean ${near}=?)` : ''}; ` +
    `the fields are ${known.join(', ')}. The original Managed HSM provider ignored unknown fields; ` +
    'akv refuses them, since a misspelt one (verison=) would silently change which key or version is used'
  );
}

/** Reads the comma-separated `field=value` list of an `akv:` URI into canonical field names. */
function parseAkvFields(
  input: string,
  rest: string,
  forms: readonly string[],
): Map<string, string> {
  const fields = new Map<string, string>();
  if (rest === '') throw badUri(input, 'the akv: URI has no fields', forms);
  for (const part of rest.split(',')) {
    if (part === '')
      throw badUri(input, 'it has an empty field (two commas or a trailing comma)', forms);
    const eq = part.indexOf('=');
    if (eq < 0) throw badUri(input, `field ${quote(part)} has no '='`, forms);
    const rawKey = part.slice(0, eq);
    const value = part.slice(eq + 1);
    const canonical = AKV_FIELD_ALIASES[rawKey.toLowerCase()];
    if (canonical === undefined) throw badUri(input, unknownField(rawKey), forms);
    if (fields.has(canonical))
      throw badUri(
        input,
        `field ${quote(canonical)} is given twice (the original Managed HSM provider let the last one win; ` +
          'akv refuses, since the two may name different keys: keep one)',
        forms,
      );
    if (value === '') throw badUri(input, `field ${quote(rawKey)} is empty`, forms);
    fields.set(canonical, value);
  }
  return fields;
}

/** Parses any accepted key URI form; throws AkvError('BAD_URI') naming the problem. */
export function parseKeyUri(input: string): KeyRef {
  const forms = ACCEPTED_KEY_URI_FORMS;
  const { scheme, rest } = splitScheme(input, forms);

  if (scheme === 'akv') {
    const fields = parseAkvFields(input, rest, forms);
    const vault = fields.get('vault');
    const name = fields.get('name');
    if (vault === undefined) throw badUri(input, 'the vault= (keyvault_name=) field is missing');
    if (name === undefined) throw badUri(input, 'the name= (key_name=) field is missing');
    const typeValue = fields.get('type');
    const vaultType =
      typeValue === undefined ? 'managedhsm' : parseVaultType(input, typeValue, forms);
    checkVaultName(input, vault, forms);
    checkKeyName(input, name);
    const version = fields.get('version');
    if (version !== undefined) checkVersion(input, version);
    return version === undefined ? { vaultType, vault, name } : { vaultType, vault, name, version };
  }

  const vaultType: VaultType = scheme === 'keyvault' ? 'keyvault' : 'managedhsm';
  const question = rest.indexOf('?');
  const path = question < 0 ? rest : rest.slice(0, question);
  const query = question < 0 ? undefined : rest.slice(question + 1);
  const parts = path.split(':');
  if (parts.length < 2)
    throw badUri(input, `expected ${scheme}:<name>:<key>, the key name is missing`);
  if (parts.length > 2) throw badUri(input, 'it has too many colons');
  const [vault = '', name = ''] = parts;
  checkVaultName(input, vault, forms);
  checkKeyName(input, name);
  if (query === undefined) return { vaultType, vault, name };
  if (!query.startsWith('version=')) {
    throw badUri(input, `the only query parameter is version=<v>, got ${quote(query)}`);
  }
  const version = query.slice('version='.length);
  checkVersion(input, version);
  return { vaultType, vault, name, version };
}

/**
 * Parses a URI naming only an HSM or vault (for listing keys): `managedhsm:<hsm>:` (the trailing
 * colon may be left out), `keyvault:<vault>:`, or `akv:vault=<hsm>[,type=...]`.
 */
export function parseVaultUri(input: string): VaultRef {
  const forms = ACCEPTED_VAULT_URI_FORMS;
  const { scheme, rest } = splitScheme(input, forms);
  if (scheme === 'akv') {
    const fields = parseAkvFields(input, rest, forms);
    for (const field of fields.keys()) {
      if (field !== 'vault' && field !== 'type') {
        throw badUri(input, `a vault URI takes only vault= and type=, not ${field}=`, forms);
      }
    }
    const vault = fields.get('vault');
    if (vault === undefined)
      throw badUri(input, 'the vault= (keyvault_name=) field is missing', forms);
    const typeValue = fields.get('type');
    const vaultType =
      typeValue === undefined ? 'managedhsm' : parseVaultType(input, typeValue, forms);
    checkVaultName(input, vault, forms);
    return { vaultType, vault };
  }
  const vault = rest.endsWith(':') ? rest.slice(0, -1) : rest;
  if (vault.includes(':') || vault.includes('?')) {
    throw badUri(input, 'a vault URI names no key and no version', forms);
  }
  checkVaultName(input, vault, forms);
  return { vaultType: scheme === 'keyvault' ? 'keyvault' : 'managedhsm', vault };
}

/** The canonical text of a key reference: `managedhsm:<hsm>:<key>[?version=<v>]` (or keyvault:). */
export function formatKeyUri(ref: KeyRef): string {
  const base = `${ref.vaultType}:${ref.vault}:${ref.name}`;
  return ref.version === undefined ? base : `${base}?version=${ref.version}`;
}

/** The canonical text of a vault reference: `managedhsm:<hsm>:`. */
export function formatVaultUri(ref: VaultRef): string {
  return `${ref.vaultType}:${ref.vault}:`;
}
