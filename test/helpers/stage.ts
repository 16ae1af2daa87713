/**
 * A step that runs as another user (an example started by `nobody`, a process of the agent
 * socket's group) cannot use a checkout that lives in a directory closed to others: root's home,
 * a 0700 `mktemp -d`. stageAkv copies what such a step runs into a fresh directory under the
 * system's temporary directory, readable and traversable by everyone: bin/akv, the compiled code
 * (dist/bundle, which bin/akv runs; dist/src, dist/examples), the npm packages the code needs at run time (not the development
 * ones), the provider module and the examples' scripts. The copy is laid out as a checkout, so
 * bin/akv, the examples and `akv dev up` find everything relative to it, and the tests hold
 * wherever the checkout is.
 */
import {
  chmodSync,
  existsSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from './emulator.js';

export interface StagedAkv {
  /** The copy's root: bin/akv, dist/, node_modules/, provider/build/, examples/ below it. */
  root: string;
  /** Its bin/akv. */
  bin: string;
  remove(): void;
}

/** Packages the examples run with that the akv package itself does not need (devDependencies). */
const EXAMPLE_PACKAGES = ['@grpc/grpc-js', '@grpc/proto-loader'];

interface LockEntry {
  dev?: boolean;
  dependencies?: Record<string, string>;
}

/**
 * Top-level node_modules entries the staged code needs at run time: package-lock.json's non-dev
 * ones, and the examples' packages with everything they depend on.
 */
function runtimePackages(): string[] {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const wanted = new Set(
    Object.entries(lock.packages)
      .filter(([path, entry]) => path.startsWith('node_modules/') && entry.dev !== true)
      .map(([path]) => path),
  );
  // Node's resolution: the nearest node_modules/NAME from the dependent's directory upwards.
  const resolve = (from: string, name: string): string | undefined => {
    for (let dir = from; ;) {
      const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
      if (lock.packages[candidate]) return candidate;
      if (dir === '') return undefined;
      const cut = dir.lastIndexOf('/node_modules/');
      dir = cut < 0 ? '' : dir.slice(0, cut);
    }
  };
  const queue = EXAMPLE_PACKAGES.map((name) => `node_modules/${name}`);
  while (queue.length > 0) {
    const path = queue.pop() as string;
    if (wanted.has(path) && !EXAMPLE_PACKAGES.some((n) => path === `node_modules/${n}`)) continue;
    wanted.add(path);
    for (const dep of Object.keys(lock.packages[path]?.dependencies ?? {})) {
      const found = resolve(path, dep);
      if (found && !wanted.has(found)) queue.push(found);
    }
  }
  const paths = [...wanted];
  // A nested package (node_modules/a/node_modules/b) comes with its parent's directory.
  return paths.filter((p) => !paths.some((q) => q !== p && p.startsWith(`${q}/`)));
}

/** Makes DIR and its missing parents 0755, whatever the umask (nobody must pass through them). */
function makeOpenDir(dir: string): void {
  if (existsSync(dir)) return;
  makeOpenDir(dirname(dir));
  mkdirSync(dir);
  chmodSync(dir, 0o755);
}

/** Copies FROM to TO: directories 0755, files 0644 or 0755 (executable), symbolic links as they are. */
function copyTree(from: string, to: string): void {
  const st = lstatSync(from);
  if (st.isSymbolicLink()) {
    makeOpenDir(dirname(to));
    symlinkSync(readlinkSync(from), to);
  } else if (st.isDirectory()) {
    makeOpenDir(to);
    for (const name of readdirSync(from)) copyTree(join(from, name), join(to, name));
  } else if (st.isFile()) {
    makeOpenDir(dirname(to));
    copyFileSync(from, to);
    chmodSync(to, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

/** Stages the checkout's runnable parts for other users (see the top of this file). */
export function stageAkv(): StagedAkv {
  const root = mkdtempSync(join(tmpdir(), 'akv-staged-'));
  chmodSync(root, 0o755);
  const parts = [
    'package.json',
    'bin',
    join('dist', 'bundle'),
    join('dist', 'src'),
    join('dist', 'examples'),
    join('provider', 'build', 'akv_provider.so'),
    join('native', 'build', 'akv_peercred.node'),
    'examples',
    ...runtimePackages(),
  ];
  for (const part of parts) copyTree(join(REPO_ROOT, part), join(root, part));
  return {
    root,
    bin: join(root, 'bin', 'akv'),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
