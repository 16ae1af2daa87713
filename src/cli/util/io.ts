/** Input and output for scripts: a file name, or `-` for stdin/stdout. */
import { readFileSync, writeFileSync } from 'node:fs';
import { UsageError } from '../command.js';
import { errnoCode, errorMessage } from '../../errors.js';

/** Upper bound for input read from stdin or a file (the agent's request limit is 64 KiB anyway). */
const MAX_INPUT = 64 * 1024 * 1024;

export async function readInput(
  command: string,
  source: string | undefined,
  what = 'input',
): Promise<Buffer> {
  if (source === undefined || source === '-') {
    if (source === undefined && process.stdin.isTTY) {
      throw new UsageError(`${command}: no ${what}: give --in FILE, or pipe it in with --in -`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of process.stdin) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      size += b.length;
      if (size > MAX_INPUT)
        throw new UsageError(`${command}: ${what} on stdin is larger than ${MAX_INPUT} bytes`);
      chunks.push(b);
    }
    return Buffer.concat(chunks);
  }
  try {
    return readFileSync(source);
  } catch (err) {
    throw new UsageError(
      `${command}: cannot read ${what} file ${source}: ${errnoCode(err) ?? errorMessage(err)}`,
    );
  }
}

export async function writeOutput(
  command: string,
  target: string | undefined,
  data: Buffer,
): Promise<void> {
  if (target === undefined || target === '-') {
    if (target === undefined && process.stdout.isTTY) {
      throw new UsageError(
        `${command}: refusing to write binary output to the terminal: give --out FILE (or --out - to force)`,
      );
    }
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(data, (err) => (err ? reject(err) : resolve())),
    );
    return;
  }
  try {
    writeFileSync(target, data);
  } catch (err) {
    throw new UsageError(
      `${command}: cannot write ${target}: ${errnoCode(err) ?? errorMessage(err)}`,
    );
  }
}
