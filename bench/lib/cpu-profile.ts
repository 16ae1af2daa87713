/**
 * Reads a V8 CPU profile (`node --cpu-prof`) and says where the time went, by part of the
 * program: the agent's own code, the Azure SDK, the logger, Node's HTTP/TLS/net layers, garbage
 * collection, other native work. Idle samples are left out, so the shares add up to busy time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Parts of the program, checked in order; the first match names a sample's frame. */
const PARTS: Array<[string, (url: string, fn: string) => boolean]> = [
  ['idle', (u, f) => f === '(idle)'],
  ['garbage collection', (u, f) => f === '(garbage collector)'],
  ['agent code (dist/src)', (u) => u.includes('/dist/src/')],
  ['Azure SDK (@azure, @typespec)', (u) => /node_modules\/(@azure|@typespec)\//.test(u)],
  ['logging (pino)', (u) => /node_modules\/(pino|@pinojs|sonic-boom|thread-stream)/.test(u)],
  ['other npm packages', (u) => u.includes('node_modules/')],
  [
    'Node HTTP/TLS/net/streams',
    (u) =>
      /^node:(_http|https|http|_tls|tls|net|internal\/(streams|stream_base|tls|http|net))/.test(u),
  ],
  ['other Node internals', (u) => u.startsWith('node:')],
  ['native (syscalls, crypto, V8)', () => true],
];

export interface ProfileShares {
  busyMs: number;
  /** Share of busy time per part, largest first. */
  shares: Array<{ part: string; share: number }>;
  /** The heaviest single functions (self time). */
  topFunctions: Array<{ name: string; share: number }>;
}

export function summariseProfile(profile: CpuProfile): ProfileShares {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node) return;
    const { url, functionName } = node.callFrame;
    const part = PARTS.find(([, match]) => match(url, functionName))?.[0] ?? 'native';
    if (part === 'idle') return;
    busy += dt;
    parts.set(part, (parts.get(part) ?? 0) + dt);
    const where = url ? url.replace(/^.*\/(node_modules|dist)\//, '') : 'native';
    const name = `${functionName || '(anonymous)'} (${where})`;
    functions.set(name, (functions.get(name) ?? 0) + dt);
  });
  const ranked = (m: Map<string, number>): Array<[string, number]> =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, busy > 0 ? v / busy : 0]);
  return {
    busyMs: busy / 1000,
    shares: ranked(parts).map(([part, share]) => ({ part, share })),
    topFunctions: ranked(functions)
      .slice(0, 8)
      .map(([name, share]) => ({ name, share })),
  };
}

/** The one .cpuprofile file node wrote into `dir`. */
export function readProfileFrom(dir: string): CpuProfile {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}: did the agent exit cleanly?`);
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
}
