/**
 * The version bump procedure (docs/releasing.md): package.json, debian/changelog and CHANGELOG.md
 * agree, each file is in its format (dpkg-parsechangelog reads debian/changelog; CHANGELOG.md
 * follows Keep a Changelog), and the built CLI reports package.json's version.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/emulator.js';

const version = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

test("debian/changelog's latest entry is package.json's version, and dpkg reads it", () => {
  const r = spawnSync(
    'dpkg-parsechangelog',
    ['-l', join(REPO_ROOT, 'debian/changelog'), '-S', 'Version'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
  const maintainer = spawnSync(
    'dpkg-parsechangelog',
    ['-l', join(REPO_ROOT, 'debian/changelog'), '-S', 'Maintainer'],
    { encoding: 'utf8' },
  ).stdout.trim();
  assert.match(
    readFileSync(join(REPO_ROOT, 'debian/control'), 'utf8'),
    new RegExp(`^Maintainer: ${maintainer.replace(/[.]/g, '\\.')}$`, 'm'),
  );
});

test("CHANGELOG.md: Keep a Changelog, an Unreleased section, package.json's version released", () => {
  const text = readFileSync(join(REPO_ROOT, 'CHANGELOG.md'), 'utf8');
  assert.match(text, /keepachangelog\.com/);
  const headings = [...text.matchAll(/^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$/gm)].map(
    (m) => m[1],
  );
  assert.equal(headings[0], 'Unreleased');
  assert.equal(headings[1], version, "the latest release is package.json's version");
  for (const m of text.matchAll(/^### (.+)$/gm))
    assert.ok(
      ['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security'].includes(m[1]!),
      m[1],
    );
});
