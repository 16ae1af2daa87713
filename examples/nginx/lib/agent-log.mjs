// Counts the successful signatures the akv agent logged for one key (test.sh uses it to
// show that TLS handshakes were signed by the HSM, not by a key file).
// Usage: node agent-log.mjs LOGFILE HSM KEY   -> prints the count
// The agent writes one JSON line per private-key operation (pino): uri, op, alg, result.
import { readFileSync, existsSync } from 'node:fs';

const [logFile, hsm, key] = process.argv.slice(2);
if (!logFile || !hsm || !key) {
  console.error('usage: node agent-log.mjs LOGFILE HSM KEY');
  process.exit(2);
}

/** True when a URI in any of the grammar's forms names this HSM and key. */
function namesKey(uri) {
  if (typeof uri !== 'string') return false;
  const u = uri.toLowerCase();
  const h = hsm.toLowerCase();
  const k = key.toLowerCase();
  if (u.startsWith(`managedhsm:${h}:${k}`)) {
    const rest = u.slice(`managedhsm:${h}:${k}`.length);
    return rest === '' || rest.startsWith('?');
  }
  if (u.startsWith('akv:')) {
    const parts = Object.fromEntries(
      u
        .slice(4)
        .split(',')
        .map((p) => p.split('=')),
    );
    return parts.vault === h && parts.name === k;
  }
  return false;
}

function succeeded(entry) {
  const result = entry.result ?? entry.status;
  if (result === undefined) return entry.level === undefined || entry.level < 40;
  return result === 'ok' || result === 'OK' || result === 0 || result === 'success';
}

let count = 0;
if (existsSync(logFile)) {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    const op = String(entry.op ?? entry.operation ?? '').toLowerCase();
    if (op === 'sign' && namesKey(entry.uri) && succeeded(entry)) count++;
  }
}
console.log(count);
