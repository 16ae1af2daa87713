/**
 * The shape shared by `akv decrypt`, `wrap` and `unwrap`: read input, send it with the key URI and
 * algorithm to the agent, write the output. (`sign` adds hashing; see commands/sign.ts.)
 */
import type { Command } from '../command.js';
import { wantsHelp } from '../command.js';
import { parseKeyUri } from '../../uri/index.js';
import type { AgentClient } from '../../client/agent-client.js';
import { connectAgent } from './agent.js';
import { parseOptions, requireStr, str } from './args.js';
import { readInput, writeOutput } from './io.js';

export interface PrivateOpSpec {
  name: 'decrypt' | 'wrap' | 'unwrap';
  summary: string;
  algorithms: readonly string[];
  inputWhat: string;
  outputWhat: string;
  call(client: AgentClient, uri: string, alg: string, input: Buffer): Promise<{ output: Buffer }>;
}

export function privateOpCommand(spec: PrivateOpSpec): Command {
  const usage = `Usage: akv ${spec.name} --key URI --alg ALG [--in FILE|-] [--out FILE|-] [--socket PATH]

${spec.summary}. The private-key operation runs in the HSM, through the akv agent.

Options:
  --key URI       the key: managedhsm:<hsm>:<key>[?version=<v>] (or akv:..., keyvault:...)
  --alg ALG       ${spec.algorithms.join(', ')}
  --in FILE       ${spec.inputWhat} (default or "-": stdin)
  --out FILE      ${spec.outputWhat} (default or "-": stdout)
  --socket PATH   agent socket (default: AKV_AGENT_SOCKET, else the config's)

Example:
  akv ${spec.name} --key managedhsm:myhsm:mykey --alg ${spec.algorithms[0]} --in in.bin --out out.bin`;
  return {
    summary: spec.summary,
    usage,
    async run(argv) {
      if (wantsHelp(argv)) {
        console.log(usage);
        return 0;
      }
      const p = parseOptions(spec.name, argv, {
        key: { type: 'string' },
        alg: { type: 'string' },
        in: { type: 'string' },
        out: { type: 'string' },
        socket: { type: 'string' },
      });
      const uri = requireStr(p, spec.name, 'key', '(the key URI)');
      parseKeyUri(uri); // a bad URI is reported here, before anything else happens
      const alg = requireStr(p, spec.name, 'alg', `(${spec.algorithms.join(', ')})`);
      const input = await readInput(spec.name, str(p, 'in'), spec.inputWhat);
      const client = await connectAgent(str(p, 'socket'));
      try {
        const { output } = await spec.call(client, uri, alg, input);
        await writeOutput(spec.name, str(p, 'out'), output);
      } finally {
        await client.close();
      }
      return 0;
    },
  };
}
