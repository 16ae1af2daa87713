/**
 * `akv emulator` as a person runs it: help, option errors, the ready line and file, clean
 * shutdown on SIGTERM/SIGINT, a busy port.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AKV_BIN, startEmulator } from '../helpers/emulator.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'akv-emulator-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (...args: string[]) => spawnSync(AKV_BIN, args, { encoding: 'utf8', timeout: 30_000 });

test('--help describes the options and exits 0', () => {
  const r = run('emulator', '--help');
  assert.equal(r.status, 0);
  for (const option of ['--listen', '--state-dir', '--latency-ms', '--token'])
    assert.ok(r.stdout.includes(option));
});

test('option mistakes exit 2 with a message that says what to do', () => {
  const cases: [string[], RegExp][] = [
    [['emulator', '--listen', '127.0.0.1:0'], /--state-dir DIR is required/],
    [['emulator', '--state-dir', dir, '--listen', 'nonsense'], /--listen takes HOST:PORT/],
    [['emulator', '--state-dir', dir, '--latency-ms', 'slow'], /--latency-ms takes a whole number/],
    [['emulator', '--state-dir', dir, '--bogus'], /Unknown option '--bogus'.*akv emulator --help/],
    [['emulator', '--state-dir', dir, '--token', ''], /--token must not be empty/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`prints one ready line, writes emulator.json, exits 0 on ${signal} and removes it`, async () => {
    const stateDir = join(dir, signal);
    const child = spawn(AKV_BIN, ['emulator', '--listen', '127.0.0.1:0', '--state-dir', stateDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => stdout.includes('\n') && resolve());
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    assert.match(stdout, /^akv emulator listening on https:\/\/127\.0\.0\.1:[1-9][0-9]*\n$/);
    const ready = JSON.parse(await readFile(join(stateDir, 'emulator.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(ready).sort(), ['ca', 'pid', 'url']);
    assert.equal(ready.url, stdout.trim().replace('akv emulator listening on ', ''));
    assert.equal(ready.pid, child.pid);
    assert.equal(ready.ca, join(stateDir, 'ca.pem'));
    const exit = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    child.kill(signal);
    assert.equal(await exit, 0);
    assert.equal(existsSync(join(stateDir, 'emulator.json')), false);
    assert.equal(stdout.trim().split('\n').length, 1, 'exactly one line on stdout');
  });
}

test('a busy port is reported with a hint, exit 1', async () => {
  const emu = await startEmulator();
  try {
    const r = run(
      'emulator',
      '--listen',
      `127.0.0.1:${emu.port}`,
      '--state-dir',
      join(dir, 'busy'),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    assert.match(r.stderr, /hint: choose another --listen address/);
  } finally {
    await emu.stop();
  }
});

test('a second emulator on the same state directory is refused', async () => {
  const emu = await startEmulator();
  try {
    const r = run('emulator', '--listen', '127.0.0.1:0', '--state-dir', emu.stateDir);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(`another emulator \\(pid ${emu.pid}\\) is running on this state directory`),
    );
    assert.equal(
      (await emu.request('GET', '/keys?api-version=7.4')).status,
      200,
      'the first one is undisturbed',
    );
  } finally {
    await emu.stop();
  }
});
