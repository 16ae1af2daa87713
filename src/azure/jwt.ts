import { isRecord } from '../guards.js';

/**
 * Reads the expiry of an access token without verifying it (the HSM verifies; akv only wants to
 * warn before a static token runs out). A token that is not a JWT simply has no known expiry.
 */
export function jwtExpiry(token: string): Date | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (!isRecord(payload)) return undefined;
    const exp = payload.exp;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return undefined;
    return new Date(exp * 1000);
  } catch {
    return undefined;
  }
}
