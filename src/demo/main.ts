/**
 * `npm run demo`: keyless TLS with nginx, the keys in a Managed HSM (the embedded emulator).
 *
 * One command from a fresh clone: start the emulator and the agent, create an RSA 3072 and an EC
 * P-256 key, issue certificates with `openssl` through akv_provider (signed in the HSM), start
 * nginx with both keys, run the client checks, print a summary table and a sample response, and
 * stop everything (`--keep` leaves it running). It drives the scripts of examples/nginx, which a
 * person can also run one by one. Exit status 0 only when every step passed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DemoRunner, runCommand, type StepOutcome } from './runner.js';
import { formatTable } from './table.js';

const USAGE = `Usage: npm run demo [-- --keep] [-- --hsm-name NAME]

Runs the keyless-TLS demo on the embedded Managed HSM emulator: starts the emulator and the akv
agent, creates an RSA 3072 and an EC P-256 key, issues certificates signed by those keys through
akv_provider, starts nginx (two HTTPS servers on free 127.0.0.1 ports), checks them as a client,
prints a summary and a sample response, and stops everything.

  --keep           leave the emulator, the agent and nginx running (prints how to stop them)
  --hsm-name NAME  the emulated HSM's name (default akvdemo)
  -h, --help       this text

The same steps, one by one: examples/nginx/README.md.`;

/** The repository root: the nearest directory upwards with package.json. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (package.json)');
    dir = up;
  }
  return dir;
}

const REPO = findRepoRoot();
const EXAMPLE = join(REPO, 'examples', 'nginx');
const STEPS = 10;

interface Settings {
  hsm: string;
  rsaKey: string;
  ecKey: string;
  rsaPort: string;
  ecPort: string;
  stateDir: string;
}

function readEnvFile(file: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) vars[m[1] as string] = m[2] as string;
  }
  return vars;
}

function firstLine(command: string, args: string[]): string | undefined {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '');
}

async function main(argv: string[]): Promise<number> {
  let values: { keep?: boolean; help?: boolean; 'hsm-name'?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        'hsm-name': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`demo: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const keep = values.keep === true;
  const hsmName = values['hsm-name'] ?? 'akvdemo';

  const workDir = mkdtempSync(join(tmpdir(), 'akv-demo-'));
  const envFile = join(workDir, '.env');
  // The scripts must not follow a developer's own agent or OpenSSL configuration.
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [
    'AKV_CONFIG',
    'AKV_AGENT_SOCKET',
    'AKV_LOG_FILE',
    'AKV_LOG_LEVEL',
    'OPENSSL_CONF',
    'OPENSSL_MODULES',
    'AKV_NGINX_ENV',
  ]) {
    delete env[name];
  }
  const script = (name: string, ...args: string[]) =>
    runCommand(join(EXAMPLE, name), ['--env-file', envFile, ...args], env, EXAMPLE, {
      shown: ['examples/nginx/' + name, '--env-file', envFile, ...args].join(' '),
    });
  // The key commands print the whole key bundle (JSON): the demo shows only the key id.
  const akv = (...args: string[]) => {
    const config = join(settings().stateDir, 'akv.json');
    return runCommand(join(REPO, 'bin', 'akv'), args, { ...env, AKV_CONFIG: config }, REPO, {
      shown: `AKV_CONFIG=${config} bin/akv ${args.join(' ')}`,
      echo: false,
    });
  };
  let current: Settings | undefined;
  const settings = (): Settings => {
    if (!current) throw new Error('the settings were not written');
    return current;
  };
  /** Fails the step with the script's own error line and its suggested fix. */
  const mustPass = (r: { status: number; lines: string[] }, what: string): void => {
    if (r.status === 0) return;
    const error = r.lines.find((l) => /: error: /.test(l))?.replace(/^.*?: error: /, '');
    const fix = r.lines.find((l) => /: fix: /.test(l))?.replace(/^.*?: fix: /, '');
    const failedCheck = r.lines.find((l) => l.startsWith('FAIL'));
    const reason = error ?? failedCheck ?? `exit status ${r.status}`;
    throw new Error(`${what} failed: ${reason.trim()}${fix ? ` (fix: ${fix.trim()})` : ''}`);
  };

  console.log(
    'akv demo: keyless TLS with nginx; the private keys live in a Managed HSM (the local emulator)',
  );
  const run = new DemoRunner(STEPS);

  // Ctrl-C: stop what was started before leaving.
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    console.log('\ndemo: interrupted, stopping nginx, the agent and the emulator');
    spawnSync(join(EXAMPLE, 'cleanup.sh'), ['--env-file', envFile, '--all'], {
      stdio: 'inherit',
      env,
    });
    rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  await run.step(
    'tools',
    'check the tools: nginx, openssl, curl, akv_provider.so',
    async (): Promise<StepOutcome> => {
      const missing: string[] = [];
      const nginx = firstLine('sh', ['-c', 'nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1']);
      if (!nginx) missing.push('nginx (apt-get install -y nginx)');
      const openssl = firstLine('openssl', ['version']);
      if (!openssl) missing.push('openssl (apt-get install -y openssl)');
      if (!firstLine('curl', ['--version'])) missing.push('curl (apt-get install -y curl)');
      const provider = join(REPO, 'provider', 'build', 'akv_provider.so');
      if (!existsSync(provider)) missing.push('provider/build/akv_provider.so (npm run build)');
      if (missing.length) throw new Error(`missing: ${missing.join(', ')}`);
      const list = spawnSync(
        'openssl',
        ['list', '-providers', '-provider', 'akv_provider', '-provider', 'default'],
        {
          encoding: 'utf8',
          env: { ...env, OPENSSL_MODULES: dirname(provider) },
        },
      );
      if (list.status !== 0)
        throw new Error(`OpenSSL cannot load ${provider}: ${list.stderr.trim()}`);
      return {
        detail: `${nginx?.replace('nginx version: ', '')}, ${openssl?.split(' ').slice(0, 2).join(' ')}, akv_provider loads`,
      };
    },
  );

  await run.step('settings', 'write the settings: HSM name, key names, free ports', async () => {
    mustPass(await script('setup-env.sh', '--hsm-name', hsmName), 'setup-env.sh');
    const v = readEnvFile(envFile);
    current = {
      hsm: v.AKV_HSM_NAME ?? hsmName,
      rsaKey: v.RSA_KEY_NAME ?? '',
      ecKey: v.EC_KEY_NAME ?? '',
      rsaPort: v.RSA_PORT ?? '',
      ecPort: v.EC_PORT ?? '',
      stateDir: v.STATE_DIR ?? '',
    };
    return {
      detail: `HSM ${current.hsm}, free ports ${current.rsaPort} (RSA) and ${current.ecPort} (EC), files in ${current.stateDir}`,
    };
  });

  await run.step(
    'emulator + agent',
    'start the Managed HSM emulator and the akv agent',
    async () => {
      const r = await script('start-agent.sh', '--skip-keys');
      mustPass(r, 'start-agent.sh');
      const url = r.lines.map((l) => /emulator: (https:\S+)/.exec(l)?.[1]).find(Boolean);
      const socket = r.lines.map((l) => /socket (\/\S+)/.exec(l)?.[1]).find(Boolean);
      return { detail: `emulator at ${url ?? '?'}, agent on ${socket ?? '?'}` };
    },
  );

  for (const [label, kind, args] of [
    ['RSA 3072', 'rsa', ['--kty', 'RSA-HSM', '--size', '3072']],
    ['EC P-256', 'ec', ['--kty', 'EC-HSM', '--curve', 'P-256']],
  ] as const) {
    await run.step(`${label} key`, `create the ${label} key in the HSM`, async () => {
      const s = settings();
      const name = kind === 'rsa' ? s.rsaKey : s.ecKey;
      const r = await akv('key', 'create', '--hsm-name', s.hsm, '--name', name, ...args);
      mustPass(r, 'bin/akv key create');
      const kid = /"kid"\s*:\s*"([^"]+)"/.exec(r.lines.join('\n'))?.[1];
      if (kid) console.log(`    kid: ${kid}`);
      return {
        detail: `managedhsm:${s.hsm}:${name}, created in the HSM (version ${kid?.split('/').pop() ?? '?'})`,
      };
    });
  }

  await run.step(
    'certificates',
    'issue certificates with openssl through akv_provider (signed in the HSM)',
    async () => {
      const r = await script('generate-cert.sh');
      mustPass(r, 'generate-cert.sh');
      const certs = r.lines.filter((l) => / certificate .*signed by/.test(l)).length;
      return {
        detail: `${certs} self-signed certificates (RSA, EC) for localhost and 127.0.0.1; CSRs and certificates signed by the HSM keys`,
      };
    },
  );

  await run.step('nginx', 'start nginx with the HSM keys', async () => {
    const r = await script('start-server.sh');
    mustPass(r, 'start-server.sh');
    const mode = /key mode: (\w+)/.exec(r.lines.join('\n'))?.[1];
    const how =
      mode === 'store'
        ? 'ssl_certificate_key "store:managedhsm:..."'
        : 'ssl_certificate_key <key-reference PEM>';
    const s = settings();
    return {
      detail: `https://localhost:${s.rsaPort} (RSA) and https://localhost:${s.ecPort} (EC), ${how}`,
    };
  });

  await run.step('client checks', 'check both servers as a client', async () => {
    const r = await script('test-client.sh');
    const rows = r.lines
      .map((l) => /^(PASS|FAIL)\s+(RSA|EC)\s+(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      // Parenthesised details and the JSON stay in the progress output; the table keeps the gist.
      .map((m) => ({
        what: `${m[2]}: ${(m[3] as string).replace(/ \(.*$/, '').replace(/ -> \{.*\}$/, ' -> the expected JSON')}`,
        ok: m[1] === 'PASS',
      }));
    const summary = r.lines.find((l) => /passed, \d+ failed/.test(l)) ?? '';
    if (r.status !== 0 && rows.every((x) => x.ok))
      throw new Error(`test-client.sh failed: ${r.lines.at(-1) ?? ''}`);
    return { detail: summary.replace(/^test-client\.sh: /, '') || `${rows.length} checks`, rows };
  });

  let sample = '';
  await run.step('sample response', 'fetch a sample response with curl', async () => {
    const s = settings();
    const parts: string[] = [];
    for (const [kind, port, path] of [
      ['rsa', s.rsaPort, '/'],
      ['ec', s.ecPort, '/health'],
    ] as const) {
      const cert = join(s.stateDir, 'certs', `${kind}.crt`);
      const args = [
        '--silent',
        '--show-error',
        '--noproxy',
        '*',
        '--cacert',
        cert,
        `https://localhost:${port}${path}`,
      ];
      const r = spawnSync('curl', ['--resolve', `localhost:${port}:127.0.0.1`, ...args], {
        encoding: 'utf8',
        env,
      });
      if (r.status !== 0)
        throw new Error(`curl https://localhost:${port}${path} failed: ${r.stderr.trim()}`);
      parts.push(`$ curl --cacert ${cert} https://localhost:${port}${path}\n${r.stdout.trimEnd()}`);
    }
    sample = parts.join('\n\n');
    console.log(sample.replace(/^/gm, '    '));
    return { detail: 'GET / (RSA server) and GET /health (EC server) answered over TLS' };
  });

  await run.step(
    keep ? 'keep running' : 'stop',
    keep
      ? 'leave everything running (--keep)'
      : 'stop nginx, the agent and the emulator; remove the files',
    async () => {
      if (keep)
        return {
          detail: `stop it with: ${join(EXAMPLE, 'cleanup.sh')} --env-file ${envFile} --all`,
        };
      mustPass(await script('cleanup.sh', '--all'), 'cleanup.sh');
      rmSync(workDir, { recursive: true, force: true });
      return { detail: 'stopped, temporary files removed' };
    },
    true,
  );

  console.log('\nSummary\n');
  console.log(
    formatTable(
      ['step', 'what happened', 'result'],
      run.records.map((r) => [r.step, r.detail, r.result]),
      64,
    ),
  );
  if (sample) console.log(`\nSample response\n\n${sample}`);
  if (keep) {
    const s = current;
    console.log('\nStill running (--keep):');
    if (s) {
      console.log(
        `  curl --cacert ${join(s.stateDir, 'certs', 'rsa.crt')} https://localhost:${s.rsaPort}/`,
      );
      console.log(
        `  curl --cacert ${join(s.stateDir, 'certs', 'ec.crt')} https://localhost:${s.ecPort}/health`,
      );
    }
    console.log(`  stop everything: ${join(EXAMPLE, 'cleanup.sh')} --env-file ${envFile} --all`);
  }
  const steps = run.records.filter((r) => r.step !== '').length;
  console.log(
    run.ok ? `\nakv demo: all ${steps} steps passed` : '\nakv demo: FAILED (see the steps above)',
  );
  return run.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`demo: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  },
);
