import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { parseKeyUri } from '../../uri/index.js';
import { connectAgent } from '../util/agent.js';
import { flag, parseOptions, requireStr, str } from '../util/args.js';
import { readInput, writeOutput } from '../util/io.js';
import { checkDigestLength, digestOf, rawEcdsaToDer } from '../util/local-crypto.js';

const usage = `Usage: akv sign --key URI --alg ALG [--in FILE|-] [--out FILE|-] [--digest] [--der] [--socket PATH]

Sign with an HSM key through the akv agent. By default the input is data, hashed locally with the
algorithm's hash; with --digest the input is already the digest (32/48/64 bytes).

Options:
  --key URI      the key: managedhsm:<hsm>:<key>[?version=<v>] (or akv:..., keyvault:...)
  --alg ALG      RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES256K ES384 ES512
  --in FILE      data (or digest) to sign (default or "-": stdin)
  --out FILE     signature (default or "-": stdout)
  --data         the input is data to hash (the default)
  --digest       the input is the digest itself
  --der          EC only: write the signature as DER (what openssl dgst -verify reads)
                 instead of Azure's raw r||s
  --socket PATH  agent socket (default: AKV_AGENT_SOCKET, else the config's)

Example:
  akv sign --key managedhsm:myhsm:mykey --alg ES256 --in data.txt --out data.sig
  akv verify --key managedhsm:myhsm:mykey --alg ES256 --in data.txt --signature data.sig`;

const command: Command = {
  summary: 'Sign data or a digest with an HSM key',
  usage,
  async run(argv) {
    if (wantsHelp(argv)) {
      console.log(usage);
      return 0;
    }
    const p = parseOptions('sign', argv, {
      key: { type: 'string' },
      alg: { type: 'string' },
      in: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'boolean' },
      digest: { type: 'boolean' },
      der: { type: 'boolean' },
      socket: { type: 'string' },
    });
    const uri = requireStr(p, 'sign', 'key', '(the key URI)');
    parseKeyUri(uri);
    const alg = requireStr(p, 'sign', 'alg', '(RS256, PS256, ES256, ...)');
    if (flag(p, 'data') && flag(p, 'digest'))
      throw new UsageError('sign: give either --data or --digest, not both');
    if (flag(p, 'der') && !alg.startsWith('ES'))
      throw new UsageError('sign: --der applies to EC signatures (ES*) only');
    const input = await readInput('sign', str(p, 'in'), flag(p, 'digest') ? 'digest' : 'data');
    const digest = flag(p, 'digest') ? input : digestOf(alg, input);
    checkDigestLength(alg, digest);
    const client = await connectAgent(str(p, 'socket'));
    try {
      const { output } = await client.sign(uri, alg, digest);
      await writeOutput('sign', str(p, 'out'), flag(p, 'der') ? rawEcdsaToDer(output) : output);
    } finally {
      await client.close();
    }
    return 0;
  },
};

export default command;
