/**
 * `akv ping`: is the agent there and answering? For scripts, health checks and the systemd unit's
 * start-up check: exit 0 when the agent answers HELLO and PING, 1 (with the reason and a hint)
 * when it does not.
 */
import { performance } from 'node:perf_hooks';
import { AgentClient } from '../../client/agent-client.js';
import { AkvError, withHint } from '../../errors.js';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { agentSocketPath } from '../util/agent.js';
import { flag, int, parseOptions, str } from '../util/args.js';

const usage = `Usage: akv ping [--socket PATH] [--timeout MS] [--wait SECONDS] [--quiet]

Asks the agent on its socket for HELLO and PING and prints its version and the round trip:
  akv agent 0.1.0 answers on /run/akv/agent.sock (protocol 1, 0.4 ms)
Exit status 0 when it answers, 1 when it does not (the reason and a hint go to stderr).

Options:
  --socket PATH     the agent's socket (default: AKV_AGENT_SOCKET, the config's socket)
  --timeout MS      how long to wait for one answer (default 5000)
  --wait SECONDS    keep trying until the agent answers or SECONDS have passed (default 0:
                    one try), e.g. after starting it
  --quiet           print nothing on success
  -h, --help        show this text`;

const RETRY_EVERY_MS = 200;

async function pingOnce(
  socket: string,
  timeoutMs: number,
): Promise<{ version: string; protocol: number; ms: number }> {
  const client = new AgentClient(socket, { timeoutMs, clientName: 'akv-ping' });
  try {
    const hello = await client.hello();
    const started = performance.now();
    await client.ping();
    return {
      version: hello.agentVersion,
      protocol: hello.protoVersion,
      ms: performance.now() - started,
    };
  } finally {
    await client.close().catch(() => undefined);
  }
}

async function runPing(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(usage);
    return 0;
  }
  const p = parseOptions('ping', argv, {
    socket: { type: 'string' },
    timeout: { type: 'string' },
    wait: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const timeoutMs = int(p, 'ping', 'timeout') ?? 5000;
  if (timeoutMs < 1) throw new UsageError('ping: --timeout must be at least 1 ms');
  const waitMs = (int(p, 'ping', 'wait') ?? 0) * 1000;
  const socket = agentSocketPath(str(p, 'socket'));
  const giveUpAt = Date.now() + waitMs;
  for (;;) {
    try {
      const r = await pingOnce(socket, timeoutMs);
      if (!flag(p, 'quiet'))
        console.log(
          `akv agent ${r.version} answers on ${socket} (protocol ${r.protocol}, ${r.ms.toFixed(1)} ms)`,
        );
      return 0;
    } catch (err) {
      if (Date.now() + RETRY_EVERY_MS < giveUpAt) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_EVERY_MS));
        continue;
      }
      const e = err instanceof AkvError ? err : new AkvError('INTERNAL', String(err));
      const waited = waitMs > 0 ? ` (tried for ${waitMs / 1000} s)` : '';
      console.error(`akv ping: ${withHint(`${e.message}${waited}`, e.hint)}`);
      return 1;
    }
  }
}

const command: Command = {
  summary: 'check that the agent answers on its socket (exit 0 when it does)',
  usage,
  run: runPing,
};

export default command;
