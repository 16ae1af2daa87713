/** The Markdown report of one run (also embedded in docs/performance.md by `--publish`). */
import type { MachineFacts } from './machine.js';
import type { Profile, ScenarioResult, Table } from './result.js';

export interface RunRecord {
  version: 1;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  profile: Profile;
  machine: MachineFacts;
  loadAverageAtEnd: number;
  scenarios: ScenarioResult[];
}

function cell(v: string | number): string {
  return String(v).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function table(t: Table): string {
  return [
    `*${t.title}*`,
    '',
    `| ${t.columns.map(cell).join(' | ')} |`,
    `|${t.columns.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/**
 * @param chartPath where the charts are, relative to the Markdown file that will hold this text
 */
export function renderReport(run: RunRecord, chartPath: string): string {
  const m = run.machine;
  const out: string[] = [];
  out.push(
    `Run of ${run.startedAt} (${run.profile.name === 'quick' ? '`--quick`' : 'full'} profile, ${Math.round(run.durationSeconds)} s).`,
    '',
    '| machine | |',
    '|---|---|',
    `| CPUs (\`nproc\`) | ${m.nproc} × ${cell(m.cpuModel)} |`,
    `| memory | ${m.memTotalMiB.toLocaleString('en-US')} MiB |`,
    `| kernel | ${m.kernel} |`,
    `| OpenSSL | ${m.openssl} |`,
    `| Node.js | ${m.node} |`,
    `| nginx | ${m.nginx} |`,
    `| load average (1 min) at start / end | ${m.loadAverageAtStart} / ${run.loadAverageAtEnd} |`,
    '',
  );
  const targets = run.scenarios.flatMap((s) => s.targets.map((t) => ({ ...t, scenario: s.title })));
  if (targets.length > 0) {
    out.push(
      '### Targets',
      '',
      '| measurement | target | measured | |',
      '|---|---|---|---|',
      ...targets.map(
        (t) =>
          `| ${cell(t.name)} | ${cell(t.goal)} | ${cell(t.value)} | ${t.met ? 'met' : '**missed**'} |`,
      ),
      '',
    );
  }
  for (const s of run.scenarios) {
    out.push(`### ${s.title}`, '');
    if (s.error) {
      out.push(`Not measured: ${s.error}`, '');
      continue;
    }
    out.push(`Method: ${s.method}`, '');
    for (const f of s.findings) out.push(`- ${f}`);
    out.push('');
    for (const t of s.tables) out.push(table(t), '');
    for (const c of s.charts) out.push(`![${c.title}](${chartPath}/${c.file})`, '');
  }
  return out.join('\n');
}
