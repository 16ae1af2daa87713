/** The module hooks of module-log.ts (they run on Node's loader thread). */
import { appendFileSync } from 'node:fs';

let file: string | undefined;

export function initialize(data: { file?: string }): void {
  file = data.file;
}

export async function load(
  url: string,
  context: unknown,
  nextLoad: (url: string, context: unknown) => Promise<unknown>,
): Promise<unknown> {
  if (file) appendFileSync(file, `${url}\n`);
  return nextLoad(url, context);
}
