/**
 * Whether an AZURE_CLI_ACCESS_TOKEN a client handed over in HELLO replaces the one in use. Every
 * swap rebuilds the HSM clients (connections, SDK pipeline), and any local client can send HELLO
 * as often as it likes, so a swap must be worth it and rare:
 *  - the same token, or a JWT that expires no later than the JWT in use, is not newer: ignored;
 *  - a newer JWT, a token when none is in use, or a token whose age cannot be compared (either is
 *    not a JWT) is used, but at most one swap per SWAP_INTERVAL_MS: a client that sends a
 *    different token on every connection rebuilds the clients once in that time, not every time
 *    (a real refresh comes again with the next connection's HELLO).
 */
import { jwtExpiry } from '../azure/jwt.js';

export const SWAP_INTERVAL_MS = 10_000;

export type HandoverVerdict = 'use' | 'same' | 'not-newer' | 'too-soon';

export class TokenHandover {
  private lastSwapAt = -Infinity;

  constructor(private readonly now: () => number = Date.now) {}

  /** The verdict for `next` against `current`; a 'use' counts as the swap. */
  judge(current: string | undefined, next: string): HandoverVerdict {
    if (next === current) return 'same';
    const nextExpiry = jwtExpiry(next)?.getTime();
    const currentExpiry = current !== undefined ? jwtExpiry(current)?.getTime() : undefined;
    if (nextExpiry !== undefined && currentExpiry !== undefined && nextExpiry <= currentExpiry)
      return 'not-newer';
    const now = this.now();
    if (now - this.lastSwapAt < SWAP_INTERVAL_MS) return 'too-soon';
    this.lastSwapAt = now;
    return 'use';
  }
}
