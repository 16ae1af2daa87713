// debian/copyright (DEP-5) for the .deb: the repository's debian/copyright (akv's own paragraph
// and the Expat licence) plus one Files paragraph per bundled npm package, from its package.json
// ("license", "author") and the Copyright lines of its licence file, and a standalone License
// paragraph for each other licence they use. A licence not listed in LICENCES stops the build:
// its text must be added here (and checked) before such a dependency can ship.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

/** npm's SPDX name -> the DEP-5 name and where its text comes from. */
const LICENCES = {
  MIT: { name: 'Expat' }, // its text is already in the repository's debian/copyright
  ISC: { name: 'ISC', textFromPackage: true },
  'BSD-3-Clause': { name: 'BSD-3-Clause', textFromPackage: true },
  '0BSD': { name: '0BSD', textFromPackage: true },
  'Apache-2.0': {
    name: 'Apache-2.0',
    text: 'On Debian systems, the complete text of the Apache License, Version 2.0 can be found\nin /usr/share/common-licenses/Apache-2.0.',
  },
};

const LICENCE_FILE = /^(licen[cs]e|copying)(\.(md|txt))?$/i;

/** Every package directory under node_modules, parents before the packages nested in them. */
function packageDirs(nodeModules) {
  const out = [];
  for (const name of readdirSync(nodeModules).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(nodeModules, name);
    if (name.startsWith('@')) {
      for (const scoped of readdirSync(p).sort()) out.push(...withNested(join(p, scoped)));
    } else out.push(...withNested(p));
  }
  return out;
}
function withNested(dir) {
  if (!existsSync(join(dir, 'package.json'))) return [];
  const nested = join(dir, 'node_modules');
  return [dir, ...(existsSync(nested) ? packageDirs(nested) : [])];
}

function licenceFileText(dir) {
  const file = readdirSync(dir).find((f) => LICENCE_FILE.test(f));
  return file === undefined ? '' : readFileSync(join(dir, file), 'utf8');
}

/** "Copyright (c) 2015 Someone" lines of a licence text (not the Apache appendix's template). */
function copyrightLines(text) {
  return [
    ...new Set(
      text
        .split('\n')
        .map((l) => l.trim())
        .filter(
          (l) =>
            /^(copyright\b|\(c\)|©)/i.test(l) &&
            !/\[yyyy\]|copyright (license|notice|owner|holder)|copyright and license/i.test(l),
        )
        .map((l) => l.replace(/^copyright\s*(\(c\)|©)?\s*/i, '').trim())
        .filter((l) => l !== ''),
    ),
  ];
}

function authorOf(pkg) {
  const a = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
  return a ? a.replace(/\s*[<(].*$/, '').trim() : undefined;
}

/** A multi-line field value in DEP-5: continuation lines indented, empty lines as " .". */
function fieldText(text) {
  return text
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`))
    .join('\n');
}

export function debianCopyright(template, nodeModules) {
  const files = [];
  const standalone = new Map();
  for (const dir of packageDirs(nodeModules)) {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const spdx = typeof pkg.license === 'string' ? pkg.license : pkg.license?.type;
    const licence = LICENCES[spdx];
    if (!licence)
      throw new Error(
        `${pkg.name}@${pkg.version} is licensed ${JSON.stringify(spdx)}, which scripts/package-copyright.mjs does not know: add its text there`,
      );
    const text = licenceFileText(dir);
    const holders = copyrightLines(text);
    if (holders.length === 0) holders.push(authorOf(pkg) ?? `the ${pkg.name} authors`);
    files.push(
      [
        `Files: app/${relative(join(nodeModules, '..'), dir)}/*`,
        `Comment: ${pkg.name} ${pkg.version}, installed in /usr/lib/akv/${relative(join(nodeModules, '..'), dir)}`,
        `Copyright: ${holders.join('\n ')}`,
        `License: ${licence.name}`,
      ].join('\n'),
    );
    if (licence.name !== 'Expat' && !standalone.has(licence.name)) {
      const body =
        licence.text ??
        text
          .split('\n')
          .filter((l) => !/^\s*(copyright\b|\(c\)|©)/i.test(l.trim()))
          .join('\n')
          .replace(/^\s*(ISC License|BSD 3-Clause License|The 3-Clause BSD License)\s*$/im, '');
      if (body.trim() === '')
        throw new Error(`${pkg.name} ships no licence text for ${spdx} (${basename(dir)})`);
      standalone.set(licence.name, `License: ${licence.name}\n${fieldText(body)}`);
    }
  }
  // DEP-5 order: header, Files paragraphs, standalone License paragraphs.
  const paragraphs = template.trim().split(/\n\s*\n/);
  const firstLicence = paragraphs.findIndex((p) => p.startsWith('License:'));
  const head = paragraphs.slice(0, firstLicence);
  const tail = paragraphs.slice(firstLicence);
  return `${[...head, ...files, ...tail, ...standalone.values()].join('\n\n')}\n`;
}
