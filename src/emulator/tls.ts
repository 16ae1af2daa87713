/**
 * The emulator's own certificate authority and server certificate, made with the `openssl`
 * command. The CA (`ca.pem`) and the keys persist in the state directory so clients configured
 * with the CA keep working across restarts; the server certificate is re-issued when missing,
 * expiring soon, or not issued by this CA for this key.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errnoCode, errorMessage } from '../errors.js';
import { isRecord } from '../guards.js';

const execFileAsync = promisify(execFile);
const DAY_MS = 24 * 3600 * 1000;

export interface TlsMaterial {
  caFile: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Atomic write (temp + fsync + rename) with the given mode. */
async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

function newEcKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { timeout: 30_000 });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new Error(
        'the openssl command is needed to make the emulator CA: apt-get install openssl',
      );
    }
    const stderr = isRecord(err) && typeof err.stderr === 'string' ? err.stderr.trim() : '';
    throw new Error(`openssl ${args[0]} failed: ${stderr || errorMessage(err)}`);
  }
}

/** Runs `work` in a private temporary directory that is removed afterwards. */
async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'akv-emulator-tls-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function createCa(caKeyPem: string): Promise<string> {
  return withTempDir(async (dir) => {
    const keyFile = join(dir, 'ca-key.pem');
    const certFile = join(dir, 'ca.pem');
    await writeFile(keyFile, caKeyPem, { mode: 0o600 });
    // prettier-ignore
    await openssl([
      'req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', '3650', '-sha256',
      '-subj', '/CN=akv emulator CA',
      '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
    ]);
    return readFile(certFile, 'utf8');
  });
}

async function createServerCert(caPem: string, caKeyPem: string, keyPem: string): Promise<string> {
  return withTempDir(async (dir) => {
    const files = {
      caKey: join(dir, 'ca-key.pem'),
      ca: join(dir, 'ca.pem'),
      key: join(dir, 'server-key.pem'),
      csr: join(dir, 'server.csr'),
      ext: join(dir, 'server.ext'),
      cert: join(dir, 'server.pem'),
    };
    await writeFile(files.caKey, caKeyPem, { mode: 0o600 });
    await writeFile(files.key, keyPem, { mode: 0o600 });
    await writeFile(files.ca, caPem);
    await writeFile(
      files.ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        'authorityKeyIdentifier=keyid',
        '',
      ].join('\n'),
    );
    await openssl(['req', '-new', '-key', files.key, '-subj', '/CN=localhost', '-out', files.csr]);
    // prettier-ignore
    await openssl([
      'x509', '-req', '-in', files.csr, '-CA', files.ca, '-CAkey', files.caKey,
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '825', '-sha256',
      '-extfile', files.ext, '-out', files.cert,
    ]);
    return readFile(files.cert, 'utf8');
  });
}

/** True when the certificate was issued by the CA for this key and stays valid for a week. */
function serverCertUsable(certPem: string, caPem: string, keyPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return (
      cert.verify(new X509Certificate(caPem).publicKey) &&
      new Date(cert.validTo).getTime() > Date.now() + 7 * DAY_MS &&
      cert.checkPrivateKey(createPrivateKey(keyPem))
    );
  } catch {
    return false;
  }
}

/** Loads or creates `ca.pem`, `ca-key.pem`, `server-key.pem` and `server.pem` in `stateDir`. */
export async function ensureTlsMaterial(stateDir: string): Promise<TlsMaterial> {
  const caFile = join(stateDir, 'ca.pem');
  const caKeyFile = join(stateDir, 'ca-key.pem');
  const serverKeyFile = join(stateDir, 'server-key.pem');
  const serverCertFile = join(stateDir, 'server.pem');

  let caPem = await readIfExists(caFile);
  let caKeyPem = await readIfExists(caKeyFile);
  if (!caPem || !caKeyPem) {
    caKeyPem = newEcKeyPem();
    caPem = await createCa(caKeyPem);
    await writeFileAtomic(caKeyFile, caKeyPem, 0o600);
    await writeFileAtomic(caFile, caPem, 0o644);
  }
  let keyPem = await readIfExists(serverKeyFile);
  if (!keyPem) {
    keyPem = newEcKeyPem();
    await writeFileAtomic(serverKeyFile, keyPem, 0o600);
  }
  let certPem = await readIfExists(serverCertFile);
  if (!certPem || !serverCertUsable(certPem, caPem, keyPem)) {
    certPem = await createServerCert(caPem, caKeyPem, keyPem);
    await writeFileAtomic(serverCertFile, certPem, 0o644);
  }
  return { caFile, caPem, certPem, keyPem };
}
