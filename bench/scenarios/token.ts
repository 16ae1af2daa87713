/**
 * Issue 7, item 7: the credential's cost. A fake `az` that takes 1 s to answer stands in for the
 * Azure CLI. An agent with the default credential chain (no AZURE_CLI_ACCESS_TOKEN, so
 * DefaultAzureCredential ends up asking `az`) serves N one-shot `openssl dgst -sign` commands;
 * then an agent with AZURE_CLI_ACCESS_TOKEN set serves the same N. The agent's token cache should
 * make the difference about one `az` call, not N of them; the fake counts its calls.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureCommand } from '../lib/drivers.js';
import { Agent } from '../lib/services.js';
import { formatUs, type BenchContext, type ScenarioResult } from '../lib/result.js';
import { dataFile, hsmSignArgs } from './one-shot.js';

const AZ_DELAY_S = 1;

/** A stand-in for `az account get-access-token`: sleeps, counts its calls, prints a token. */
function writeFakeAz(dir: string): { binDir: string; countFile: string } {
  const binDir = join(dir, 'fake-az');
  mkdirSync(binDir, { recursive: true });
  const countFile = join(binDir, 'calls');
  writeFileSync(countFile, '');
  const script = `#!/bin/sh
# Fake Azure CLI for the akv bench: answers "az account get-access-token" after ${AZ_DELAY_S} s.
echo "$*" >> '${countFile}'
sleep ${AZ_DELAY_S}
exp=$(( $(date +%s) + 3600 ))
printf '{"accessToken":"bench-cli-token","expiresOn":"%s","expires_on":%s,"subscription":"bench","tenant":"bench","tokenType":"Bearer"}\\n' "$(date -d "@$exp" '+%Y-%m-%d %H:%M:%S.000000')" "$exp"
`;
  writeFileSync(join(binDir, 'az'), script);
  chmodSync(join(binDir, 'az'), 0o755);
  return { binDir, countFile };
}

function calls(countFile: string): number {
  if (!existsSync(countFile)) return 0;
  return readFileSync(countFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '').length;
}

interface Series {
  totalUs: number;
  firstUs: number;
  restMedianUs: number;
  azCalls: number;
}

async function series(ctx: BenchContext, agent: Agent, countFile: string): Promise<Series> {
  const key = ctx.keys.ec256;
  const data = dataFile(ctx.dir);
  const sig = join(ctx.dir, 'token.sig');
  const env = agent.providerEnv();
  const before = calls(countFile);
  const walls: number[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < ctx.profile.tokenCommands; i++) {
    walls.push((await measureCommand('openssl', hsmSignArgs(key, data, sig), env)).wall_us);
  }
  const totalUs = Number(process.hrtime.bigint() - start) / 1000;
  const rest = walls.slice(1).sort((a, b) => a - b);
  return {
    totalUs,
    firstUs: walls[0] ?? 0,
    restMedianUs: rest[Math.floor(rest.length / 2)] ?? 0,
    azCalls: calls(countFile) - before,
  };
}

export async function token(ctx: BenchContext): Promise<ScenarioResult> {
  const { binDir, countFile } = writeFakeAz(ctx.dir);
  const n = ctx.profile.tokenCommands;
  await ctx.emulator.setLatency(0);
  const path = `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`;

  ctx.log(`token cost: ${n} commands, agent asking a ${AZ_DELAY_S} s az`);
  const viaAz = await Agent.start(ctx.dir, ctx.emulator, {
    label: 'token-az',
    hsmName: ctx.hsmName,
    credential: { type: 'default' },
    env: { PATH: path },
  });
  let az: Series;
  try {
    az = await series(ctx, viaAz, countFile);
  } finally {
    await viaAz.stop();
  }
  ctx.log(`token cost: ${n} commands, AZURE_CLI_ACCESS_TOKEN set`);
  const viaEnv = await Agent.start(ctx.dir, ctx.emulator, {
    label: 'token-env',
    hsmName: ctx.hsmName,
    credential: { type: 'default' },
    env: { PATH: path, AZURE_CLI_ACCESS_TOKEN: 'bench-env-token' },
  });
  let envToken: Series;
  try {
    envToken = await series(ctx, viaEnv, countFile);
  } finally {
    await viaEnv.stop();
  }

  const perProcessFloorS = n * AZ_DELAY_S;
  const extraUs = az.totalUs - envToken.totalUs;
  const sec = (us: number): string => `${(us / 1e6).toFixed(2)} s`;
  return {
    id: 'token',
    title: '7. Token cost',
    method: `A fake \`az\` (first on the agent's PATH) sleeps ${AZ_DELAY_S} s, counts its calls and prints a token. Agent A uses the default credential chain without \`AZURE_CLI_ACCESS_TOKEN\` (DefaultAzureCredential, which reaches the Azure CLI credential); agent B has \`AZURE_CLI_ACCESS_TOKEN\` set. Each serves ${n} one-shot \`openssl dgst -sign\` commands with the EC P-256 key, one after another, starting right after the agent (so the first command also pays the agent's first describe).`,
    findings: [
      `${n} commands took ${sec(az.totalUs)} with the agent asking \`az\` and ${sec(envToken.totalUs)} with AZURE_CLI_ACCESS_TOKEN: ${sec(extraUs)} more, from ${az.azCalls} \`az\` call(s) in total. Asking \`az\` in every process would have cost at least ${perProcessFloorS} s.`,
      `The first command took ${formatUs(az.firstUs)} (token fetch included) against ${formatUs(envToken.firstUs)}; later commands ${formatUs(az.restMedianUs)} against ${formatUs(envToken.restMedianUs)} (median).`,
    ],
    tables: [
      {
        title: `${n} one-shot commands`,
        columns: ['credential', 'total', 'first command', 'later commands (median)', 'az calls'],
        rows: [
          [
            `default chain, fake az (${AZ_DELAY_S} s)`,
            sec(az.totalUs),
            formatUs(az.firstUs),
            formatUs(az.restMedianUs),
            az.azCalls,
          ],
          [
            'AZURE_CLI_ACCESS_TOKEN',
            sec(envToken.totalUs),
            formatUs(envToken.firstUs),
            formatUs(envToken.restMedianUs),
            envToken.azCalls,
          ],
          [`(az in every process, lower bound)`, `≥ ${perProcessFloorS} s`, '', '', n],
        ],
      },
    ],
    charts: [
      {
        file: 'token.svg',
        title: `Total time of ${n} one-shot signatures`,
        unit: 's',
        groups: [
          {
            label: `${n} commands`,
            bars: [
              { label: 'agent, token from a 1 s az', value: Math.round(az.totalUs / 1e4) / 100 },
              {
                label: 'agent, AZURE_CLI_ACCESS_TOKEN',
                value: Math.round(envToken.totalUs / 1e4) / 100,
              },
              { label: 'az per process (lower bound)', value: perProcessFloorS },
            ],
          },
        ],
      },
    ],
    targets: [
      {
        name: `az calls for ${n} commands`,
        goal: 'one (token cached by the agent)',
        value: String(az.azCalls),
        met: az.azCalls === 1,
      },
    ],
    data: { commands: n, azDelaySeconds: AZ_DELAY_S, az, envToken },
  };
}
