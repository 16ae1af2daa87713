/**
 * The systemd units in packaging/systemd: `systemd-analyze verify` accepts them (with ExecStart
 * pointed at this checkout's bin/akv, since /usr/bin/akv exists only once the package is
 * installed; the .deb test verifies the installed units as they are), the hardening keeps the
 * exposure score that docs/deployment.md reports, and the socket unit and the packaged config
 * agree on the socket path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';

const UNITS = join(REPO_ROOT, 'packaging', 'systemd');
const scratch = mkdtempSync(join(tmpdir(), 'akv-units-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function verify(dir: string): { status: number | null; output: string } {
  const r = spawnSync(
    'systemd-analyze',
    ['verify', join(dir, 'akv-agent.socket'), join(dir, 'akv-agent.service')],
    { encoding: 'utf8' },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** The units with /usr/bin/akv replaced by this checkout's bin/akv, in `dir`. */
function stageUnits(dir: string, edit: (service: string) => string = (s) => s): void {
  writeFileSync(join(dir, 'akv-agent.socket'), readFileSync(join(UNITS, 'akv-agent.socket')));
  const service = readFileSync(join(UNITS, 'akv-agent.service'), 'utf8').replaceAll(
    '/usr/bin/akv',
    AKV_BIN,
  );
  writeFileSync(join(dir, 'akv-agent.service'), edit(service));
}

test('systemd-analyze verify accepts the units without a warning', () => {
  const dir = mkdtempSync(join(scratch, 'ok-'));
  stageUnits(dir);
  const r = verify(dir);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output, '', 'no warnings');
  // The check can fail: a misspelt directive is reported.
  const broken = mkdtempSync(join(scratch, 'broken-'));
  stageUnits(broken, (s) => s.replace('ProtectHome=yes', 'ProtectHomes=yes'));
  assert.match(verify(broken).output, /Unknown key 'ProtectHomes'/);
});

test('the exposure score of akv-agent.service is the one docs/deployment.md reports', () => {
  const r = spawnSync(
    'systemd-analyze',
    ['security', '--offline=true', '--no-pager', join(UNITS, 'akv-agent.service')],
    { encoding: 'utf8' },
  );
  const score = /Overall exposure level for akv-agent\.service: (\d+\.\d+) (\w+)/.exec(
    `${r.stdout}${r.stderr}`,
  );
  assert.ok(score, `no score in: ${r.stdout}${r.stderr}`);
  const docs = readFileSync(join(REPO_ROOT, 'docs', 'deployment.md'), 'utf8');
  const documented = /Overall exposure level for akv-agent\.service: (\d+\.\d+) (\w+)/.exec(docs);
  assert.ok(documented, 'docs/deployment.md reports the score');
  assert.ok(
    Number(score[1]) <= Number(documented[1]),
    `exposure ${score[1]} is above the documented ${documented[1]}: hardening was lost`,
  );
  assert.equal(score[1], documented[1], 'docs/deployment.md reports the current score');
  assert.equal(score[2], 'OK');
});

test('the socket unit, the service and the packaged config name the same socket', () => {
  const socketUnit = readFileSync(join(UNITS, 'akv-agent.socket'), 'utf8');
  const service = readFileSync(join(UNITS, 'akv-agent.service'), 'utf8');
  const listen = /^ListenStream=(.+)$/m.exec(socketUnit)?.[1];
  assert.equal(listen, '/run/akv/agent.sock');
  assert.match(socketUnit, /^SocketMode=0660$/m);
  assert.match(service, new RegExp(`^Environment=AKV_AGENT_SOCKET=${listen}$`, 'm'));
  const config = JSON.parse(readFileSync(join(REPO_ROOT, 'debian', 'config.json'), 'utf8')) as {
    socket: string;
  };
  assert.equal(config.socket, listen);
});
