/** Facts about the machine a run happened on, recorded with every result. */
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { run } from './proc.js';

export interface MachineFacts {
  nproc: number;
  cpuModel: string;
  memTotalMiB: number;
  kernel: string;
  openssl: string;
  node: string;
  nginx: string;
  /** 1-minute load average when the run started (other work on the machine skews timings). */
  loadAverageAtStart: number;
}

async function firstLine(command: string, args: string[]): Promise<string> {
  const r = await run(command, args).catch(() => undefined);
  return (r ? `${r.stdout}${r.stderr}` : '').trim().split('\n')[0] ?? '';
}

export async function machineFacts(): Promise<MachineFacts> {
  const nproc = Number(await firstLine('nproc', [])) || cpus().length;
  let kernel = '';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    kernel = 'unknown';
  }
  return {
    nproc,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalMiB: Math.round(totalmem() / 1024 / 1024),
    kernel,
    openssl: await firstLine('openssl', ['version']),
    node: process.version,
    nginx: (await firstLine('nginx', ['-v'])).replace(/^nginx version: /, ''),
    loadAverageAtStart: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}
