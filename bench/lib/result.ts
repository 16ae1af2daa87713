/** What a scenario hands back: figures for the JSON, tables and charts for the report, targets. */
import type { Agent, BenchKey, Emulator } from './services.js';
import type { Nginx } from './nginx.js';

export interface Target {
  /** What is measured, e.g. "p50 overhead, EC P-256". */
  name: string;
  /** The goal in words, e.g. "< 300 µs". */
  goal: string;
  /** The measured value in words, e.g. "212 µs". */
  value: string;
  met: boolean;
}

export interface Table {
  title: string;
  columns: string[];
  rows: Array<Array<string | number>>;
}

export interface Bar {
  label: string;
  value: number;
}

export interface Chart {
  /** File name inside the run's report directory, e.g. "overhead.svg". */
  file: string;
  title: string;
  unit: string;
  groups: Array<{ label: string; bars: Bar[] }>;
  /** A vertical line (target or bound) drawn across the chart. */
  reference?: { value: number; label: string };
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** One paragraph of Markdown: what was measured and how. */
  method: string;
  /** Markdown sentences that state the outcome (filled from the figures). */
  findings: string[];
  tables: Table[];
  charts: Chart[];
  targets: Target[];
  /** Raw figures for the JSON file. */
  data: Record<string, unknown>;
  /** Set when the scenario could not run or failed. */
  error?: string;
}

/** Sizes of one run: `--quick` shrinks every one of them. */
export interface Profile {
  name: 'quick' | 'full';
  /** Repetitions of each measurement; figures are medians across them. */
  trials: number;
  /** Signatures per trial and path in the overhead scenario. */
  overheadOps: number;
  /** Length of one load trial (TLS, capacity). */
  loadMs: number;
  /** Concurrent TLS clients in the blocking-bound scenario. */
  blockingClients: number[];
  /** Concurrent TLS clients for the HSM-vs-local comparison. */
  tlsClients: number;
  /** Threads of the C driver in the capacity scenario. */
  capacityThreads: number;
  /** Concurrent TLS clients in the async HAProxy scenario. */
  asyncClients: number[];
  /** Length of one async-scenario case. */
  asyncLoadMs: number;
  /** nginx worker_processes against the blocking bound. */
  nginxWorkerCounts: number[];
  /** A short run (fewer operations where a scenario counts them itself). */
  quick: boolean;
  /** Runs of each one-shot command. */
  oneShotRuns: number;
  /** One-shot commands in the token-cost scenario (per credential setting). */
  tokenCommands: number;
  /** Signatures in the soak (issue 13). */
  soakSignatures: number;
}

export const PROFILES: Record<Profile['name'], Profile> = {
  quick: {
    name: 'quick',
    trials: 1,
    overheadOps: 150,
    loadMs: 2500,
    blockingClients: [32],
    tlsClients: 32,
    capacityThreads: 64,
    asyncClients: [1, 16, 256],
    asyncLoadMs: 2000,
    nginxWorkerCounts: [4, 16, 64],
    quick: true,
    oneShotRuns: 5,
    tokenCommands: 10,
    soakSignatures: 20_000,
  },
  full: {
    name: 'full',
    trials: 3,
    overheadOps: 800,
    loadMs: 8000,
    blockingClients: [32, 64],
    tlsClients: 32,
    capacityThreads: 64,
    asyncClients: [1, 4, 16, 64, 256],
    asyncLoadMs: 4000,
    nginxWorkerCounts: [4, 16, 64],
    quick: false,
    oneShotRuns: 20,
    tokenCommands: 100,
    soakSignatures: 200_000,
  },
};

/** nginx worker processes in the TLS scenarios (W in the blocking bound W / latency). */
export const NGINX_WORKERS = 4;

export interface BenchKeys {
  rsa2048: BenchKey;
  rsa3072: BenchKey;
  ec256: BenchKey;
}

/** Everything a scenario needs; nginx is started on first use and shared. */
export interface BenchContext {
  dir: string;
  hsmName: string;
  profile: Profile;
  emulator: Emulator;
  agent: Agent;
  keys: BenchKeys;
  nginx(): Promise<BenchNginx>;
  log(message: string): void;
}

export interface BenchNginx {
  nginx: Nginx;
  workers: number;
  /** Ports of the servers: HSM key (key reference) and the same key from a local PEM. */
  ports: Record<'rsa3072' | 'ec256', { hsm: number; local: number }>;
}

export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;

/** Formats µs for people: "212 µs", "1.84 ms". */
export function formatUs(us: number): string {
  if (!Number.isFinite(us)) return 'n/a';
  if (Math.abs(us) >= 1000) return `${(us / 1000).toFixed(2)} ms`;
  return `${Math.round(us)} µs`;
}

export function formatRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}x` : 'n/a';
}

export function formatRate(perSecond: number): string {
  return Number.isFinite(perSecond) ? `${Math.round(perSecond).toLocaleString('en-US')}/s` : 'n/a';
}
