/**
 * Key descriptions (public key, type, size, version, allowed ops) cached for `ttlMs`, so the
 * provider's frequent DESCRIBE calls (every process that loads a key) do not each cost an HSM
 * round trip. Concurrent lookups of one key share a single HSM call. Azure names are
 * case-insensitive, so entries are keyed by the lower-cased reference.
 */
import type { KeyDescription } from '../azure/gateway.js';
import type { KeyRef } from '../uri/index.js';

interface Entry {
  value: Promise<KeyDescription>;
  /** Set when the load finished; until then the entry is in flight and never expires. */
  expiresAt?: number;
  /** The loaded description (set with expiresAt), for peek() without a promise. */
  settled?: KeyDescription;
}

/** Bound on entries, so a client describing endless distinct names cannot grow memory forever. */
const MAX_ENTRIES = 10_000;

function cacheKey(ref: KeyRef): string {
  return `${ref.vaultType}:${ref.vault.toLowerCase()}:${ref.name.toLowerCase()}?${(ref.version ?? '').toLowerCase()}`;
}

/** Key of every entry for the key regardless of version pin. */
function keyPrefix(ref: KeyRef): string {
  return `${ref.vaultType}:${ref.vault.toLowerCase()}:${ref.name.toLowerCase()}?`;
}

export class KeyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  setTtl(ttlMs: number): void {
    this.ttlMs = ttlMs;
  }

  /**
   * The description of `ref`, from the cache or from `load`. `hit` says whether the HSM was
   * spared (a lookup that joins an in-flight load counts as a hit). Failures are not cached.
   */
  async get(
    ref: KeyRef,
    load: () => Promise<KeyDescription>,
  ): Promise<{ description: KeyDescription; hit: boolean }> {
    const key = cacheKey(ref);
    const existing = this.entries.get(key);
    if (existing && (existing.expiresAt === undefined || existing.expiresAt > this.now())) {
      return { description: await existing.value, hit: true };
    }
    const entry: Entry = { value: load() };
    this.entries.set(key, entry);
    this.evictIfFull();
    try {
      const description = await entry.value;
      if (this.entries.get(key) === entry) {
        if (this.ttlMs > 0) {
          entry.expiresAt = this.now() + this.ttlMs;
          entry.settled = description;
        } else this.entries.delete(key);
      }
      return { description, hit: false };
    } catch (err) {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    }
  }

  /** The cached, settled description of exactly `ref`, if any (never calls the HSM). */
  peek(ref: KeyRef): KeyDescription | undefined {
    const entry = this.entries.get(cacheKey(ref));
    if (!entry || entry.expiresAt === undefined || entry.expiresAt <= this.now()) return undefined;
    return entry.settled;
  }

  /** Forgets every cached version of the key (pinned or not). */
  invalidate(ref: KeyRef): void {
    const prefix = keyPrefix(ref);
    for (const key of [...this.entries.keys()])
      if (key.startsWith(prefix)) this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private evictIfFull(): void {
    // Map iteration order is insertion order: drop the oldest entries first.
    for (const key of this.entries.keys()) {
      if (this.entries.size <= MAX_ENTRIES) break;
      this.entries.delete(key);
    }
  }
}
