/**
 * What the bundle is made of (dist/bundle/metafile.json, written by scripts/bundle.mjs): which
 * file each entry point and each lazy import became, and what each file imports. The cold-start
 * tests compare it with what a process loaded (the module hook's log).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { REPO_ROOT } from '../helpers/emulator.js';

export const BUNDLE_DIR = join(REPO_ROOT, 'dist', 'bundle');

interface BundleFile {
  bytes: number;
  entryPoint?: string;
  imports: Array<{ file: string; kind: string }>;
  external: string[];
}

function outputs(): Record<string, BundleFile> {
  return (
    JSON.parse(readFileSync(join(BUNDLE_DIR, 'metafile.json'), 'utf8')) as {
      outputs: Record<string, BundleFile>;
    }
  ).outputs;
}

/** FILE and every file it imports statically, transitively: what loading it loads. */
export function staticClosure(file: string): Set<string> {
  const all = outputs();
  const seen = new Set<string>();
  const visit = (f: string): void => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const i of all[f]?.imports ?? []) if (i.kind === 'import-statement') visit(i.file);
  };
  visit(file);
  return seen;
}

/** The dist/bundle files among the modules a process loaded (their base names). */
export function bundleFilesLoaded(modules: string[]): string[] {
  return modules
    .filter((m) => m.includes('/dist/bundle/') && /\.c?js$/.test(m))
    .map((m) => basename(m));
}
