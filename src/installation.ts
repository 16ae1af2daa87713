/**
 * A running agent never loads a module of another version. The agent loads some modules on first
 * use (the Key Vault SDK, @azure/identity, undici's pool: issue 25, cold start), and a package
 * upgrade replaces the files under a running agent: dpkg unpacks the new version, then postinst
 * restarts the agent. A first import in between would put the new version's code into the old
 * process, next to the old modules it already holds (mismatched exports, a renamed file, a
 * dependency at two versions).
 *
 * So the process notes its package.json (dev, inode, mtime, size: dpkg installs every file of a
 * new version by renaming it into place, so the inode changes even when the content does not) when
 * this module loads, and loadOwnModule checks it before each such import. When it changed, the
 * import is refused with an UNAVAILABLE error naming both versions, and the listeners are told
 * once: the agent then stops as on SIGTERM (the requests in flight finish), and whatever started it
 * starts the new version (systemd's socket on the next connection, the provider's autostart, the
 * package's postinst). docs/deployment.md, "Upgrades", has the sequence and the test.
 */
import { statSync } from 'node:fs';
import { AkvError } from './errors.js';
import { akvVersion, readPackageVersion } from './version.js';

/** dist/src/installation.js sits two levels below the package root, as version.js does. */
const PACKAGE_JSON = new URL('../../package.json', import.meta.url);

function fingerprint(): string | undefined {
  try {
    const s = statSync(PACKAGE_JSON);
    return `${s.dev}:${s.ino}:${s.mtimeMs}:${s.size}`;
  } catch {
    return undefined;
  }
}

const startedFrom = fingerprint();
/** Read now: later the file may be the next version's. */
const startedVersion = akvVersion();
const listeners: Array<(installed: string) => void> = [];
let told = false;

/** The version installed now, when it is not the files this process started from; else undefined. */
export function replacedBy(): string | undefined {
  const now = fingerprint();
  if (startedFrom === undefined || now === startedFrom) return undefined;
  try {
    return readPackageVersion(PACKAGE_JSON) ?? 'another version';
  } catch {
    return now === undefined ? 'nothing (removed)' : 'another version';
  }
}

/** `listener` runs once, the first time an import is refused because the files were replaced. */
export function onInstallationReplaced(listener: (installed: string) => void): void {
  listeners.push(listener);
}

/**
 * `load()` (an `import()` of this version's module) when the files this process started from are
 * still in place; otherwise an AkvError('UNAVAILABLE') and the listeners are told.
 */
export function loadOwnModule<T>(what: string, load: () => Promise<T>): Promise<T> {
  const installed = replacedBy();
  if (installed === undefined) return load();
  if (!told) {
    told = true;
    for (const listener of listeners) listener(installed);
  }
  return Promise.reject(
    new AkvError(
      'UNAVAILABLE',
      `akv ${installed} was installed in place of this running agent (akv ${startedVersion}) before it loaded ${what}; it does not load another version's code`,
      'the agent stops once the requests in flight are answered and the next one runs the new version (systemd starts it on the next connection, the provider autostarts it); an agent started by hand must be started again; retry the operation',
    ),
  );
}
