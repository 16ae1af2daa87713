/**
 * `akv agent` started as a user starts it (an `akv` executable, here bin/akv or a copy of the
 * installed layout), for the cold-start tests: waits for its "listening" line and stops it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

export interface StartedAgent {
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/** Spawns `AKV agent --socket SOCKET ARGS` and waits (30 s at most) until it listens. */
export async function startAgentFrom(
  akv: string,
  socket: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<StartedAgent> {
  const agent = spawn(akv, ['agent', '--socket', socket, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  agent.stdout.on('data', (d: Buffer) => (out += d.toString()));
  agent.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => agent.on('exit', (code) => r(code)));
  const started: StartedAgent = {
    output: () => out,
    stop: () => {
      agent.kill('SIGTERM');
      return exited;
    },
  };
  const end = Date.now() + 30_000;
  while (!out.includes(`akv agent listening on ${socket}`)) {
    if (Date.now() > end || agent.exitCode !== null) {
      await started.stop();
      assert.fail(`the agent did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return started;
}
