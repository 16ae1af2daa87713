/**
 * The files of the bundle (dist/bundle, written by scripts/bundle.mjs) among the modules a process
 * loaded (the module hook's log): the cold-start tests check that a start loads only its own.
 */
import { basename } from 'node:path';

/** The dist/bundle files among the modules a process loaded (their base names). */
export function bundleFilesLoaded(modules: string[]): string[] {
  return modules
    .filter((m) => m.includes('/dist/bundle/') && /\.c?js$/.test(m))
    .map((m) => basename(m));
}
