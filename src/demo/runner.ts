/**
 * Runs the demo's steps one after another: prints progress as each step runs (its commands'
 * output indented beneath it), records what happened for the summary table, and skips the
 * remaining steps after a failure.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { errorMessage } from '../errors.js';

export interface StepOutcome {
  /** What happened, for a person (one sentence). */
  detail: string;
  /** Extra summary rows (e.g. one per client check): [what, result]. */
  rows?: Array<{ what: string; ok: boolean }>;
}

export interface StepRecord {
  step: string;
  detail: string;
  result: 'ok' | 'FAILED' | 'skipped';
  seconds: number;
}

export interface CommandResult {
  status: number;
  lines: string[];
}

export class StepFailed extends Error {
  override name = 'StepFailed';
}

export class DemoRunner {
  readonly records: StepRecord[] = [];
  private failed = false;

  constructor(private readonly total: number) {}

  get ok(): boolean {
    return !this.failed;
  }

  /**
   * Runs one step unless an earlier one failed (`always` steps, such as stopping, run anyway).
   * `name` is its short name in the summary table, `title` the line shown when it starts.
   */
  async step(
    name: string,
    title: string,
    fn: () => Promise<StepOutcome>,
    always = false,
  ): Promise<void> {
    const n = this.records.filter((r) => r.step !== '').length + 1;
    if (this.failed && !always) {
      this.records.push({
        step: name,
        detail: 'not run: an earlier step failed',
        result: 'skipped',
        seconds: 0,
      });
      return;
    }
    console.log(`\n[${n}/${this.total}] ${title}`);
    const started = Date.now();
    let outcome: StepOutcome | undefined;
    let error: string | undefined;
    try {
      outcome = await fn();
    } catch (err) {
      error = errorMessage(err);
    }
    const seconds = (Date.now() - started) / 1000;
    const rowsFailed = outcome?.rows?.some((r) => !r.ok) ?? false;
    const ok = error === undefined && !rowsFailed;
    const detail = error ?? outcome?.detail ?? '';
    this.records.push({ step: name, detail, result: ok ? 'ok' : 'FAILED', seconds });
    for (const row of outcome?.rows ?? []) {
      this.records.push({
        step: '',
        detail: row.what,
        result: row.ok ? 'ok' : 'FAILED',
        seconds: 0,
      });
    }
    console.log(`    => ${ok ? 'ok' : 'FAILED'}: ${detail} (${seconds.toFixed(1)} s)`);
    if (!ok) this.failed = true;
  }
}

/**
 * Runs a command, printing the command (`shown`: how a person would type it) and its output lines
 * (indented) as they come, unless `echo` is false; resolves with its status and lines. It never
 * rejects on a non-zero status: the caller decides.
 */
export function runCommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  options: { shown: string; echo?: boolean },
): Promise<CommandResult> {
  console.log(`    $ ${options.shown}`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let open = 2;
    const collect = (stream: NodeJS.ReadableStream): void => {
      const rl = createInterface({ input: stream });
      rl.on('line', (line) => {
        lines.push(line);
        if (options.echo !== false) console.log(`    ${line}`);
      });
      rl.on('close', () => {
        open -= 1;
        if (open === 0 && exitStatus !== undefined) resolve({ status: exitStatus, lines });
      });
    };
    let exitStatus: number | undefined;
    collect(child.stdout);
    collect(child.stderr);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      exitStatus = code ?? (signal ? 128 : 1);
      if (open === 0) resolve({ status: exitStatus, lines });
    });
  });
}
