/**
 * Smoke tests of the bench's parts (no timings asserted): the statistics, the SVG charts and the
 * report render what they should, and the C drivers build and print well-formed JSON for a
 * local key. The measurements themselves run with `npm run bench`, not here.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildDrivers, measureCommand, runSignBench } from '../../bench/lib/drivers.js';
import { renderReport, type RunRecord } from '../../bench/lib/report.js';
import { PROFILES, type Chart, type ScenarioResult } from '../../bench/lib/result.js';
import { distribution, medianDistribution, quantile } from '../../bench/lib/stats.js';
import { barChartSvg } from '../../bench/lib/svg.js';

describe('bench statistics', () => {
  test('nearest-rank quantiles of 1..100', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    const d = distribution(values);
    assert.equal(d.p50, 50);
    assert.equal(d.p90, 90);
    assert.equal(d.p99, 99);
    assert.equal(d.min, 1);
    assert.equal(d.max, 100);
    assert.equal(d.n, 100);
    assert.ok(Number.isNaN(quantile([], 0.5)));
  });

  test('the median of trials is taken field by field', () => {
    const m = medianDistribution([
      distribution([1, 2, 3]),
      distribution([10, 20, 30]),
      distribution([5, 6, 7]),
    ]);
    assert.equal(m.p50, 6);
    assert.equal(m.n, 9);
  });
});

describe('bench charts and report', () => {
  const chart: Chart = {
    file: 'x.svg',
    title: 'Signatures <per> second & more',
    unit: 'ops/s',
    groups: [
      {
        label: 'EC P-256',
        bars: [
          { label: 'HSM', value: 1200 },
          { label: 'local', value: 2400 },
        ],
      },
      {
        label: 'RSA 3072',
        bars: [
          { label: 'HSM', value: 300 },
          { label: 'local', value: Number.NaN },
        ],
      },
    ],
    reference: { value: 3000, label: 'target' },
  };

  test('a bar chart is one SVG document with one bar per value and escaped text', () => {
    const svg = barChartSvg(chart);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    // The background plus four bars.
    assert.equal(svg.match(/<rect /g)?.length, 5);
    assert.match(svg, /Signatures &lt;per&gt; second &amp; more/);
    assert.match(svg, /class="ref"/);
    assert.match(svg, />n\/a</);
    assert.doesNotMatch(svg, /NaN/);
  });

  test('the report lists machine facts, targets (met and missed) and each measurement', () => {
    const scenario: ScenarioResult = {
      id: 'demo',
      title: '9. Demo',
      method: 'counted',
      findings: ['it went | fine'],
      tables: [{ title: 'T', columns: ['a', 'b'], rows: [[1, 'x|y']] }],
      charts: [chart],
      targets: [
        { name: 'fast', goal: '< 1', value: '0.5', met: true },
        { name: 'big', goal: '≥ 2', value: '1', met: false },
      ],
      data: {},
    };
    const failed: ScenarioResult = {
      ...scenario,
      id: 'broken',
      title: '10. Broken',
      targets: [],
      error: 'nginx is not installed',
    };
    const run: RunRecord = {
      version: 1,
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:01:00.000Z',
      durationSeconds: 60,
      profile: PROFILES.quick,
      machine: {
        nproc: 2,
        cpuModel: 'test cpu',
        memTotalMiB: 1024,
        kernel: '6.0',
        openssl: 'OpenSSL 3.0.0',
        node: 'v20.0.0',
        nginx: 'nginx/1.22.1',
        loadAverageAtStart: 0.1,
      },
      loadAverageAtEnd: 0.2,
      scenarios: [scenario, failed],
    };
    const md = renderReport(run, '../charts');
    assert.match(md, /`--quick` profile/);
    assert.match(md, /\| CPUs \(`nproc`\) \| 2 × test cpu \|/);
    assert.match(md, /\| fast \| < 1 \| 0\.5 \| met \|/);
    assert.match(md, /\| big \| ≥ 2 \| 1 \| \*\*missed\*\* \|/);
    assert.match(md, /\| 1 \| x\\\|y \|/);
    assert.match(md, /!\[Signatures <per> second & more\]\(\.\.\/charts\/x\.svg\)/);
    assert.match(md, /### 10\. Broken\n\nNot measured: nginx is not installed/);
  });
});

describe('bench C drivers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'akv-bench-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('they build and report a local-key run and a command as JSON', async () => {
    await buildDrivers();
    const pem = join(dir, 'ec.pem');
    execFileSync('openssl', [
      'genpkey',
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      pem,
    ]);
    const latencyFile = join(dir, 'lat.txt');
    const r = await runSignBench({
      key: pem,
      providers: [],
      threads: 2,
      ops: 5,
      warmup: 1,
      env: process.env,
      latencyFile,
    });
    assert.equal(r.ops, 10);
    assert.equal(r.errors, 0);
    assert.equal(r.latenciesUs.length, 10);
    assert.ok(r.latenciesUs.every((v) => v > 0));
    const cost = await measureCommand('openssl', ['version'], process.env);
    assert.ok(cost.wall_us > 0 && cost.maxrss_kb > 0);
    await assert.rejects(
      measureCommand('openssl', ['dgst', '-sign', join(dir, 'missing.pem'), pem], process.env),
      /exited 1/,
    );
  });
});
