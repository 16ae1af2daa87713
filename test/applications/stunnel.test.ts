/**
 * stunnel terminating TLS with HSM keys: two services, one with an RSA and one with an EC key,
 * each `key =` a key-reference file and the provider activated by OPENSSL_CONF. Plain `openssl
 * s_client` verifies the handshakes, compares the server key with the HSM's, and receives what
 * the tunnelled program (`exec = /bin/echo`) prints. stunnel reads `key =` as a file, so a key URI
 * is refused: tested, as docs/applications.md says.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  missingCommand,
  startAppEnv,
  versionOf,
  type AppEnv,
  type HsmKey,
} from './app-env.js';
import { startServer, type Server } from './servers.js';
import { assertServesHsmKey, plainTlsHandshake } from './tls-checks.js';

const skip = missingCommand('stunnel', 'stunnel4');

/** A stunnel configuration: one service per [name, port, key] that runs /bin/echo GREETING. */
function stunnelConf(
  services: [string, number, HsmKey][],
  keyOf = (k: HsmKey) => k.keyref,
): string {
  return [
    'foreground = yes',
    'pid =',
    'debug = info',
    ...services.flatMap(([name, port, key]) => [
      `[${name}]`,
      `accept = 127.0.0.1:${port}`,
      `cert = ${key.cert}`,
      `key = ${keyOf(key)}`,
      'exec = /bin/echo',
      `execArgs = echo hello from ${name}`,
    ]),
    '',
  ].join('\n');
}

describe('stunnel with HSM keys', { skip }, () => {
  let app: AppEnv;
  let rsa: HsmKey;
  let ec: HsmKey;
  let stunnel: Server | undefined;
  const ports = { rsa: 0, ec: 0 };

  before(async () => {
    app = await startAppEnv('stunnel', 'stunnelhsm');
    rsa = app.hsmKey('stunnel-rsa', { kty: 'RSA-HSM' });
    ec = app.hsmKey('stunnel-ec', { kty: 'EC-HSM' });
    ports.rsa = await freePort();
    ports.ec = await freePort();
    const conf = app.file('stunnel.conf');
    writeFileSync(
      conf,
      stunnelConf([
        ['tunnel-rsa', ports.rsa, rsa],
        ['tunnel-ec', ports.ec, ec],
      ]),
    );
    stunnel = await startServer('stunnel', [conf], app.cnfEnv, app.dir, ports.ec);
  });

  after(async () => {
    await stunnel?.stop();
    await app?.down();
  });

  it('serves the RSA and the EC HSM key (TLS 1.3 and 1.2) and tunnels the data', (t) => {
    t.diagnostic(versionOf(app, 'stunnel', ['-version']));
    assert.match(stunnel?.output() ?? '', /Private key loaded from file: .*stunnel-rsa\.ref\.pem/);
    for (const [key, port, service] of [
      [rsa, ports.rsa, 'tunnel-rsa'],
      [ec, ports.ec, 'tunnel-ec'],
    ] as const) {
      const made = assertServesHsmKey(app, port, key);
      assert.ok(
        made.every((s) => s.clientPid === stunnel?.proc.pid),
        'signed by another process',
      );
      const { output } = plainTlsHandshake(app, port, key.cert, ['-ign_eof']);
      assert.match(output, new RegExp(`hello from ${service}`));
    }
  });

  it('key = <URI> is refused: stunnel reads the key from a file (documented limitation)', async () => {
    const conf = app.file('stunnel-uri.conf');
    writeFileSync(
      conf,
      stunnelConf([['tunnel-uri', await freePort(), rsa]], (k) => k.uri),
    );
    const r = app.run('stunnel', [conf]);
    assert.notEqual(r.status, 0);
    assert.match(`${r.stdout}${r.stderr}`, new RegExp(`${rsa.uri}: No such file or directory`));
  });
});
