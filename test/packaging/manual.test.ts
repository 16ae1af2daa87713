/**
 * The manual pages and shell completion (scripts/generate-man.mjs) against the CLI they are made
 * from: each page, rendered by the real `man`, holds every line of its --help text (so a help
 * text and its page cannot drift), `man --warnings` finds nothing to complain about, every
 * command of `akv --help` has its section in akv(1), and the bash completion, driven as bash
 * drives it, offers the commands, sub-commands and each command's options; zsh parses its file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO_ROOT } from '../helpers/emulator.js';

const out = mkdtempSync(join(tmpdir(), 'akv-manual-'));
after(() => rmSync(out, { recursive: true, force: true }));

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, cwd: '/' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}
const akv = (...args: string[]): string =>
  run(process.execPath, [join(REPO_ROOT, 'dist/src/cli/main.js'), ...args]).stdout;
/** The page as `man` renders it for a wide terminal, without formatting, spaces collapsed. */
function rendered(page: string): string {
  const r = run('man', ['--warnings', '-l', join(out, 'man', page)], {
    ...process.env,
    MANWIDTH: '300',
    MANPAGER: 'cat',
    PAGER: 'cat',
  });
  assert.equal(r.stderr, '', `man --warnings ${page}`);
  return collapse(r.stdout);
}
const collapse = (s: string): string => s.replace(/\s+/g, ' ');
function assertHolds(page: string, help: string): void {
  const text = rendered(page);
  for (const line of help
    .split('\n')
    .map(collapse)
    .map((l) => l.trim()))
    if (line !== '') assert.ok(text.includes(line), `${page} has the --help line "${line}"`);
}

before(() => {
  run(process.execPath, [join(REPO_ROOT, 'scripts/generate-man.mjs'), '--out', out]);
});

const commands = akv('--help')
  .split('Commands:\n')[1]!
  .split('\n\n')[0]!
  .split('\n')
  .map((l) => l.trim().split(/\s+/)[0]!);

test("akv(1) holds `akv --help` and every command's --help text but the agent's", () => {
  assert.ok(commands.length >= 10, commands.join(' '));
  assertHolds('akv.1', akv('--help'));
  const source = readFileSync(join(out, 'man', 'akv.1'), 'utf8');
  for (const name of commands.filter((c) => c !== 'agent')) {
    assert.match(source, new RegExp(`^\\.SS ${name}$`, 'm'), `a section for ${name}`);
    assertHolds('akv.1', akv(name, '--help'));
  }
});

test('akv-agent(8), akv_provider(7), akv.json(5) hold their help texts', () => {
  assertHolds('akv-agent.8', akv('agent', '--help'));
  assertHolds('akv_provider.7', akv('help', 'provider'));
  assertHolds('akv.json.5', akv('help', 'config'));
  assert.match(rendered('akv.json.5'), /^AKV\.JSON\(5\)/);
});

test('the comparison can fail: a line the help does not have is not found', () => {
  assert.throws(() => assertHolds('akv.1', '--an-option-akv-does-not-have'), /--help line/);
});

/** What bash completion offers for the words typed so far (the last one being completed). */
function bashComplete(...words: string[]): string[] {
  const script = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _akv; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return run('bash', ['-c', script, 'bash', join(out, 'completion', 'akv'), ...words])
    .stdout.split('\n')
    .filter((w) => w !== '');
}

test('bash completion offers the commands, sub-commands and options of the --help texts', () => {
  assert.deepEqual(
    bashComplete('akv', '').sort(),
    [...commands, 'help', '--help', '--version'].sort(),
  );
  assert.deepEqual(bashComplete('akv', 'si'), ['sign']);
  assert.ok(bashComplete('akv', 'key', '').includes('create'));
  assert.deepEqual(bashComplete('akv', 'dev', '').sort(), [
    'down',
    'start',
    'status',
    'stop',
    'up',
  ]);
  for (const name of ['sign', 'doctor', 'agent']) {
    const options = [...akv(name, '--help').matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map(
      (m) => m[0],
    );
    const offered = bashComplete('akv', name, '--');
    for (const o of options) assert.ok(offered.includes(o), `akv ${name} ${o} is offered`);
  }
  assert.deepEqual(bashComplete('akv', 'help', 'prov'), ['provider']);
});

test(
  'zsh reads the zsh completion',
  {
    skip:
      spawnSync('sh', ['-c', 'command -v zsh']).status !== 0 &&
      'zsh is not installed (npm run setup installs it)',
  },
  () => {
    run('zsh', ['-n', join(out, 'completion', '_akv')]);
    assert.match(readFileSync(join(out, 'completion', '_akv'), 'utf8'), /^#compdef akv$/m);
  },
);
