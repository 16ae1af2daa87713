/** `akv emulator`: runs the local Managed HSM emulator in the foreground (src/emulator/). */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError, wantsHelp, type Command } from '../command.js';
import { errorMessage } from '../../errors.js';

const usage = `Usage: akv emulator --listen 127.0.0.1:PORT --state-dir DIR [--latency-ms N] [--token T]

Serves the Azure Managed HSM keys REST API over HTTPS on loopback, for development, demos and
tests. The official @azure/keyvault-keys clients work against it unchanged (give them the CA and
disableChallengeResourceVerification: true).

Options:
  --listen HOST:PORT   address to listen on (default 127.0.0.1:0; port 0 picks a free port)
  --state-dir DIR      where keys, the CA (DIR/ca.pem) and the server key are kept (required)
  --latency-ms N       add N milliseconds to every API request (default 0)
  --token T            accept only this bearer token (default: any non-empty token)
  --workers N          crypto worker threads (default: number of cores, 2 to 4)
  --retention-days N   soft-delete retention, 7 to 90 days (default 7, as a new real HSM);
                       sets recoverableDays and recoveryLevel of every key
  -h, --help           show this help

When ready it writes DIR/emulator.json {"url","pid","ca"} and prints one line:
  akv emulator listening on https://127.0.0.1:PORT
DIR/attestation-key.pem is its TEST-ONLY attestation authority (RS256): key release trusts tokens
signed with it (docs/emulator.md, "Key release").
SIGTERM or SIGINT stops it (exit 0). Fault injection and statistics: see docs/emulator.md.`;

function parseListen(text: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:]+):([0-9]{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new UsageError(
      `--listen takes HOST:PORT, e.g. 127.0.0.1:8443 or 127.0.0.1:0 (got '${text}')`,
    );
  }
  return { host: (match[1] ?? '').replace(/^\[|\]$/g, ''), port };
}

function parseCount(
  text: string | undefined,
  option: string,
  min: number,
  max: number,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < min || n > max) {
    throw new UsageError(`${option} takes a whole number from ${min} to ${max} (got '${text}')`);
  }
  return n;
}

const command: Command = {
  summary: 'run the local Managed HSM emulator (HTTPS, loopback)',
  usage,
  async run(argv: string[]): Promise<number> {
    if (wantsHelp(argv)) {
      console.log(usage);
      return 0;
    }
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          listen: { type: 'string' },
          'state-dir': { type: 'string' },
          'latency-ms': { type: 'string' },
          token: { type: 'string' },
          workers: { type: 'string' },
          'retention-days': { type: 'string' },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (err) {
      throw new UsageError(`${errorMessage(err)}. Run \`akv emulator --help\` for the options.`);
    }
    if (!values['state-dir']) {
      throw new UsageError('--state-dir DIR is required: the emulator keeps its keys and CA there');
    }
    if (values.token !== undefined && values.token.trim() === '') {
      throw new UsageError('--token must not be empty');
    }
    const { host, port } = parseListen(values.listen ?? '127.0.0.1:0');
    const { runEmulator } = await import('../../emulator/run.js');
    return runEmulator({
      host,
      port,
      stateDir: resolve(values['state-dir']),
      latencyMs: parseCount(values['latency-ms'], '--latency-ms', 0, 600_000),
      token: values.token,
      workers: parseCount(values.workers, '--workers', 1, 64),
      retentionDays: parseCount(values['retention-days'], '--retention-days', 7, 90),
    });
  },
};

export default command;
