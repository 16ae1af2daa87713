/**
 * The emulator's key store: one JSON file per key name (all versions) in `<state-dir>/keys/`,
 * mode 0600. A change is written to a temporary file, fsync'ed, renamed over the old file and the
 * directory fsync'ed before the change becomes visible or is acknowledged, so `kill -9` at any
 * moment loses nothing a client was told about and never leaves a half-written file.
 */
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { isRecord } from '../../guards.js';
import type { StoredKey } from './types.js';

const TEMP_SUFFIX = '.tmp';

/**
 * Whether JSON this emulator wrote (a key file, a backup it sealed) holds a key record. Only the
 * outline (a name, a list of versions) is checked: the rest is as JSON.stringify wrote it from a
 * StoredKey (a 0600 file, or a backup whose GCM tag proved it ours), so checking every field
 * again would restate the type for nothing.
 */
function isStoredKey(value: unknown): value is StoredKey {
  return isRecord(value) && typeof value.name === 'string' && Array.isArray(value.versions);
}

/** The key record in `text`, or undefined when it is not one; throws when it is not JSON. */
export function parseStoredKey(text: string): StoredKey | undefined {
  const value: unknown = JSON.parse(text);
  return isStoredKey(value) ? value : undefined;
}

export class KeyStore {
  private readonly keys = new Map<string, StoredKey>();
  /** Per-name tail of the write chain: changes to one key are applied one after another. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private tempCounter = 0;

  private constructor(readonly directory: string) {}

  static async open(stateDir: string): Promise<KeyStore> {
    const directory = join(stateDir, 'keys');
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const store = new KeyStore(directory);
    for (const entry of await readdir(directory)) {
      const path = join(directory, entry);
      if (entry.endsWith(TEMP_SUFFIX)) {
        await unlink(path); // an interrupted write: the previous file is still complete
        continue;
      }
      if (!entry.endsWith('.json')) continue;
      try {
        const key = parseStoredKey(await readFile(path, 'utf8'));
        if (!key) throw new Error('not a key record');
        store.keys.set(key.name.toLowerCase(), key);
      } catch (err) {
        // Cannot happen with atomic writes unless someone edited the file; keep it for inspection.
        await rename(path, `${path}.unreadable`);
        console.error(`akv emulator: set aside unreadable key file ${path}: ${errorMessage(err)}`);
      }
    }
    return store;
  }

  get(name: string): StoredKey | undefined {
    return this.keys.get(name.toLowerCase());
  }

  /** All keys (deleted ones included), sorted by name. */
  all(): StoredKey[] {
    return [...this.keys.values()].sort((a, b) =>
      a.name.toLowerCase().localeCompare(b.name.toLowerCase()),
    );
  }

  /**
   * Applies `change` to a copy of the key (undefined when absent) and makes the result durable
   * before it is visible; `null` removes the key. `change` may throw to refuse; nothing is written.
   */
  update<Result extends StoredKey | null>(
    name: string,
    change: (current: StoredKey | undefined) => Result,
  ): Promise<Result> {
    const id = name.toLowerCase();
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.then(async () => {
      const current = this.keys.get(id);
      const changed = change(current === undefined ? undefined : structuredClone(current));
      if (changed === null) {
        if (current) {
          await unlink(this.fileOf(id));
          await this.syncDirectory();
          this.keys.delete(id);
        }
        return changed;
      }
      await this.persist(id, changed);
      this.keys.set(id, changed);
      return changed;
    });
    const tail = next.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return next;
  }

  private fileOf(id: string): string {
    return join(this.directory, `${id}.json`);
  }

  private async persist(id: string, key: StoredKey): Promise<void> {
    const temp = join(this.directory, `.${id}.${process.pid}.${++this.tempCounter}${TEMP_SUFFIX}`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(key));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.fileOf(id));
    await this.syncDirectory();
  }

  private async syncDirectory(): Promise<void> {
    const dir = await open(this.directory, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
