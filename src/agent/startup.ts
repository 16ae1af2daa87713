/**
 * Where the agent's start-up time went, in ms since the process started: the end of Node's own
 * bootstrap, the start of akv's entry point (src/started.ts), the moment the socket listened.
 * Logged with "akv agent listening" (docs/performance.md, "Cold start"), with codeCacheState.
 */
import { performance } from 'node:perf_hooks';
import { AKV_MAIN_STARTED_MS } from '../started.js';

export interface StartupTimings {
  node_bootstrap: number;
  akv_main: number;
  listening: number;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

export function startupTimings(): StartupTimings {
  return {
    node_bootstrap: round(performance.nodeTiming.bootstrapComplete),
    akv_main: round(AKV_MAIN_STARTED_MS),
    listening: round(process.uptime() * 1000),
  };
}

/**
 * Whether bin/akv compiled the agent with its V8 code cache: 'used', 'rejected' (made by another
 * Node), 'stale' (made from another build of the file), 'absent', or undefined when the agent did
 * not start from the bundle (dist/src, tests).
 */
export function codeCacheState(): string | undefined {
  const state: unknown = Reflect.get(globalThis, Symbol.for('akv.codeCache'));
  return typeof state === 'string' ? state : undefined;
}
