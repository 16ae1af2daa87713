/**
 * `npm run demo`: keyless TLS with nginx, the keys in a Managed HSM (the embedded emulator).
 *
 * One command from a fresh clone: start the emulator and the agent, create an RSA 3072 and an EC
 * P-256 key, issue certificates with `openssl` through akv_provider (signed in the HSM), start
 * nginx with both keys, run the client checks, print a summary table and a sample response, and
 * stop everything (`--keep` leaves it running). It drives the scripts of examples/nginx, which a
 * person can also run one by one. Exit status 0 only when every step passed.
 */
import { parseArgs } from 'node:util';
import { mustPass, NginxExample } from './example.js';
import { DemoRunner } from './runner.js';
import { formatTable } from './table.js';
import { checkTools, fetchSample } from './tools.js';
import { errorMessage } from '../errors.js';

const USAGE = `Usage: npm run demo [-- --keep] [-- --hsm-name NAME]

Runs the keyless-TLS demo on the embedded Managed HSM emulator: starts the emulator and the akv
agent, creates an RSA 3072 and an EC P-256 key, issues certificates signed by those keys through
akv_provider, starts nginx (two HTTPS servers on free 127.0.0.1 ports), checks them as a client,
prints a summary and a sample response, and stops everything.

  --keep           leave the emulator, the agent and nginx running (prints how to stop them)
  --hsm-name NAME  the emulated HSM's name (default akvdemo)
  -h, --help       this text

The same steps, one by one: examples/nginx/README.md.`;

const STEPS = 9;

interface Options {
  keep: boolean;
  hsmName: string;
}

/** The options, or the exit status when there is nothing to run (help, a usage error). */
function parseOptions(argv: string[]): Options | number {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        'hsm-name': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    return { keep: values.keep === true, hsmName: values['hsm-name'] ?? 'akvdemo' };
  } catch (err) {
    console.error(`demo: ${errorMessage(err)}\n\n${USAGE}`);
    return 2;
  }
}

/** One summary row per test.sh check: the gist (details stay in the progress output). */
function checkRows(lines: string[]): Array<{ what: string; ok: boolean }> {
  return lines
    .map((l) => /^(PASS|FAIL)\s+(RSA|EC)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => {
      const gist = (m[3] ?? '')
        .replace(/ \(.*$/, '')
        .replace(/ -> \{.*\}$/, ' -> the expected JSON');
      return { what: `${m[2]}: ${gist}`, ok: m[1] === 'PASS' };
    });
}

/** Ctrl-C: stop what was started before leaving. */
function stopOnSignal(example: NginxExample): void {
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    console.log('\ndemo: interrupted, stopping nginx, the agent and the emulator');
    example.stopNow();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** The tools, the emulator and the agent, then one key each for RSA and EC. */
async function startHsmAndKeys(
  run: DemoRunner,
  example: NginxExample,
  hsmName: string,
): Promise<void> {
  await run.step('tools', 'check the tools: nginx, openssl, curl, akv_provider.so', () =>
    Promise.resolve({ detail: checkTools(example.repo, example.env) }),
  );

  await run.step(
    'emulator + agent',
    'write the settings and start the Managed HSM emulator and the akv agent',
    async () => {
      // setup.sh --skip-keys: the settings, then `bin/akv dev up` (with --socket-group for nginx
      // workers as root); the demo creates the keys itself, one step each.
      const r = await example.script('setup.sh', '--hsm-name', hsmName, '--skip-keys');
      mustPass(r, 'setup.sh');
      const s = example.loadSettings();
      const socket = r.lines.map((l) => /agent socket (\/\S+)/.exec(l)?.[1]).find(Boolean);
      return {
        detail: `HSM ${s.hsm}, free ports ${s.rsaPort} (RSA) and ${s.ecPort} (EC), agent on ${socket ?? '?'}, files in ${s.stateDir}`,
      };
    },
  );

  for (const [label, kind, args] of [
    ['RSA 3072', 'rsa', ['--kty', 'RSA-HSM', '--size', '3072']],
    ['EC P-256', 'ec', ['--kty', 'EC-HSM', '--curve', 'P-256']],
  ] as const) {
    await run.step(`${label} key`, `create the ${label} key in the HSM`, async () => {
      const s = example.settings;
      const name = kind === 'rsa' ? s.rsaKey : s.ecKey;
      const r = await example.akv('key', 'create', '--hsm-name', s.hsm, '--name', name, ...args);
      mustPass(r, 'bin/akv key create');
      const kid = /"kid"\s*:\s*"([^"]+)"/.exec(r.lines.join('\n'))?.[1];
      if (kid) console.log(`    kid: ${kid}`);
      const version = kid?.split('/').pop() ?? '?';
      return { detail: `managedhsm:${s.hsm}:${name}, created in the HSM (version ${version})` };
    });
  }
}

/** Certificates signed in the HSM, nginx with them, the client checks; returns the sample response. */
async function serveAndCheck(run: DemoRunner, example: NginxExample): Promise<string> {
  await run.step(
    'certificates',
    'issue certificates with openssl through akv_provider (signed in the HSM)',
    async () => {
      // setup.sh again: the keys exist now, so it goes on to the key references and certificates.
      const r = await example.script('setup.sh');
      mustPass(r, 'setup.sh');
      const certs = r.lines.filter((l) => / certificate .*signed by/.test(l)).length;
      return {
        detail: `${certs} self-signed certificates (RSA, EC) for localhost and 127.0.0.1; CSRs and certificates signed by the HSM keys`,
      };
    },
  );

  await run.step('nginx', 'start nginx with the HSM keys', async () => {
    const r = await example.script('start.sh');
    mustPass(r, 'start.sh');
    const mode = /key mode: (\w+)/.exec(r.lines.join('\n'))?.[1];
    const how =
      mode === 'store'
        ? 'ssl_certificate_key "store:managedhsm:..."'
        : 'ssl_certificate_key <key-reference PEM>';
    const s = example.settings;
    return {
      detail: `https://localhost:${s.rsaPort} (RSA) and https://localhost:${s.ecPort} (EC), ${how}`,
    };
  });

  await run.step('client checks', 'check both servers as a client', async () => {
    const r = await example.script('test.sh');
    const rows = checkRows(r.lines);
    if (r.status !== 0 && rows.every((x) => x.ok)) mustPass(r, 'test.sh');
    const summary = r.lines.find((l) => /passed, \d+ failed/.test(l)) ?? '';
    return { detail: summary.replace(/^test\.sh: /, '') || `${rows.length} checks`, rows };
  });

  let sample = '';
  await run.step('sample response', 'fetch a sample response with curl', () => {
    sample = fetchSample(example.settings, example.env);
    console.log(sample.replace(/^/gm, '    '));
    return Promise.resolve({
      detail: 'GET / (RSA server) and GET /health (EC server) answered over TLS',
    });
  });
  return sample;
}

/** The last step: stop and clean up, or (--keep) leave everything running. */
async function stopOrKeep(run: DemoRunner, example: NginxExample, keep: boolean): Promise<void> {
  await run.step(
    keep ? 'keep running' : 'stop',
    keep
      ? 'leave everything running (--keep)'
      : 'stop nginx, the agent and the emulator; remove the files',
    async () => {
      if (keep) return { detail: `stop it with: ${example.stopCommand}` };
      mustPass(await example.script('stop.sh', '--all'), 'stop.sh');
      example.removeWorkDir();
      return { detail: 'stopped, temporary files removed' };
    },
    true,
  );
}

/** The summary table, the sample response and (--keep) how to reach and stop what still runs. */
function printSummary(run: DemoRunner, example: NginxExample, keep: boolean, sample: string): void {
  console.log('\nSummary\n');
  const rows = run.records.map((r) => [r.step, r.detail, r.result]);
  console.log(formatTable(['step', 'what happened', 'result'], rows, 64));
  if (sample) console.log(`\nSample response\n\n${sample}`);
  if (keep) {
    console.log('\nStill running (--keep):');
    if (example.hasSettings) {
      const s = example.settings;
      console.log(`  curl --cacert ${s.stateDir}/certs/rsa.crt https://localhost:${s.rsaPort}/`);
      console.log(
        `  curl --cacert ${s.stateDir}/certs/ec.crt https://localhost:${s.ecPort}/health`,
      );
    }
    console.log(`  stop everything: ${example.stopCommand}`);
  }
  const steps = run.records.filter((r) => r.step !== '').length;
  console.log(
    run.ok ? `\nakv demo: all ${steps} steps passed` : '\nakv demo: FAILED (see the steps above)',
  );
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (typeof options === 'number') return options;
  const { keep, hsmName } = options;
  const example = new NginxExample();
  const run = new DemoRunner(STEPS);
  console.log(
    'akv demo: keyless TLS with nginx; the private keys live in a Managed HSM (the local emulator)',
  );
  stopOnSignal(example);
  await startHsmAndKeys(run, example, hsmName);
  const sample = await serveAndCheck(run, example);
  await stopOrKeep(run, example, keep);
  printSummary(run, example, keep, sample);
  return run.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`demo: ${err instanceof Error && err.stack ? err.stack : String(err)}`);
    process.exitCode = 1;
  },
);
