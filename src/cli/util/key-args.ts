/**
 * The arguments every key-operation command (sign, verify, encrypt, decrypt, wrap, unwrap) reads
 * the same way, so that they are checked in the same order and worded alike everywhere.
 */
import { UsageError } from '../command.js';
import { parseKeyUri } from '../../uri/index.js';
import { flag, requireStr, type Parsed } from './args.js';

/** --key URI, --alg ALG, --in FILE and --socket PATH; each command adds its own options. */
export const KEY_OP_OPTIONS = {
  key: { type: 'string' },
  alg: { type: 'string' },
  in: { type: 'string' },
  socket: { type: 'string' },
} as const;

/** The required --key and --alg; a bad URI is reported here, before anything else happens. */
export function requireKeyAndAlg(
  p: Parsed,
  command: string,
  algHint: string,
): { uri: string; alg: string } {
  const uri = requireStr(p, command, 'key', '(the key URI)');
  parseKeyUri(uri);
  const alg = requireStr(p, command, 'alg', algHint);
  return { uri, alg };
}

/** Whether the input is a digest (--digest) rather than data to hash (--data, the default). */
export function inputIsDigest(p: Parsed, command: string): boolean {
  if (flag(p, 'data') && flag(p, 'digest'))
    throw new UsageError(`${command}: give either --data or --digest, not both`);
  return flag(p, 'digest');
}
