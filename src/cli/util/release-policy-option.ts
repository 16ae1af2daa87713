/**
 * `--policy JSON|@FILE` and `--immutable` of `akv key create|import|set-attributes`: a release
 * policy document as az takes it (the policy JSON itself), checked to be a JSON object here; the
 * HSM checks its grammar.
 */
import { readFileSync } from 'node:fs';
import type { KeyReleasePolicy } from '@azure/keyvault-keys';
import { UsageError } from '../command.js';
import { flag, str, type Parsed } from './args.js';
import { errnoCode, errorMessage } from '../../errors.js';

export function releasePolicyOption(p: Parsed, sub: string): KeyReleasePolicy | undefined {
  const v = str(p, 'policy');
  if (v === undefined) {
    if (flag(p, 'immutable')) throw new UsageError(`key ${sub}: --immutable needs --policy`);
    return undefined;
  }
  let text = v;
  if (v.startsWith('@')) {
    try {
      text = readFileSync(v.slice(1), 'utf8');
    } catch (err) {
      throw new UsageError(
        `key ${sub}: cannot read ${v.slice(1)}: ${errnoCode(err) ?? errorMessage(err)}`,
      );
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`key ${sub}: --policy is not JSON: ${errorMessage(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new UsageError(`key ${sub}: --policy must be a JSON object (version, anyOf)`);
  return {
    encodedPolicy: new Uint8Array(Buffer.from(JSON.stringify(json))),
    contentType: 'application/json; charset=utf-8',
    ...(flag(p, 'immutable') ? { immutable: true } : {}),
  };
}

/** `--exportable true|false`, as az spells it (a bare --exportable also means true). */
export function exportableOption(p: Parsed, sub: string): boolean | undefined {
  const v = p.values.exportable;
  if (v === undefined) return undefined;
  if (v === true || (typeof v === 'string' && /^(true|yes|1)$/i.test(v))) return true;
  if (typeof v === 'string' && /^(false|no|0)$/i.test(v)) return false;
  throw new UsageError(`key ${sub}: --exportable takes true or false`);
}
