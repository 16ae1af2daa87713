import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { AkvError } from '../../errors.js';
import { withAgent } from '../util/agent.js';
import { parseOptions, requireStr, str } from '../util/args.js';
import { inputIsDigest, KEY_OP_OPTIONS, requireKeyAndAlg } from '../util/key-args.js';
import { readInput } from '../util/io.js';
import { digestOf, verifyDigest } from '../util/local-crypto.js';

const usage = `Usage: akv verify --key URI --alg ALG --signature FILE [--in FILE|-] [--digest] [--socket PATH]

Verify a signature locally with the key's public part (fetched through the akv agent).
Prints "Verified OK" and exits 0, or prints "Verification failure" and exits 1.
EC signatures may be raw r||s (Azure's form) or DER (OpenSSL's form).

Options:
  --key URI         the key: managedhsm:<hsm>:<key>[?version=<v>]
  --alg ALG         RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES256K ES384 ES512
  --signature FILE  the signature
  --in FILE         the signed data (default or "-": stdin)
  --data            the input is data to hash (the default)
  --digest          the input is the digest itself
  --socket PATH     agent socket (default: AKV_AGENT_SOCKET, else the config's)

Example:
  akv verify --key managedhsm:myhsm:mykey --alg ES256 --in data.txt --signature data.sig`;

const command: Command = {
  summary: 'Verify a signature with the public part of an HSM key',
  usage,
  async run(argv) {
    if (wantsHelp(argv)) {
      console.log(usage);
      return 0;
    }
    const p = parseOptions('verify', argv, {
      ...KEY_OP_OPTIONS,
      signature: { type: 'string' },
      data: { type: 'boolean' },
      digest: { type: 'boolean' },
    });
    const { uri, alg } = requireKeyAndAlg(p, 'verify', '(RS256, PS256, ES256, ...)');
    const sigFile = requireStr(p, 'verify', 'signature', 'FILE');
    const isDigest = inputIsDigest(p, 'verify');
    if (str(p, 'in') === undefined && sigFile === '-')
      throw new UsageError('verify: the data and the signature cannot both come from stdin');
    const signature = await readInput('verify', sigFile, 'signature');
    const input = await readInput('verify', str(p, 'in'), 'data');
    const digest = isDigest ? input : digestOf(alg, input);
    const info = await withAgent(str(p, 'socket'), (client) => client.describe(uri));
    if (!info.publicKey)
      throw new AkvError(
        'UNSUPPORTED',
        `${uri} is an ${info.keyType} key: it has no public key to verify with`,
        'use an RSA or EC key',
      );
    if (verifyDigest(info.publicKey, alg, digest, signature)) {
      console.log('Verified OK');
      return 0;
    }
    console.log('Verification failure');
    return 1;
  },
};

export default command;
