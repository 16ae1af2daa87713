/** `<state-dir>/backup-key`: the 32-byte AES key sealing this emulator's key backups (0600). */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../../errors.js';

export async function ensureBackupKey(stateDir: string): Promise<Buffer> {
  const file = join(stateDir, 'backup-key');
  try {
    const key = await readFile(file);
    if (key.length === 32) return key;
    throw new Error(
      `${file} is not a 32-byte key; delete it to make a new one (old backups are then lost)`,
    );
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  const temp = `${file}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  return key;
}
