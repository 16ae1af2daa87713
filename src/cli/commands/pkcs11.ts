/**
 * `akv pkcs11`: what the PKCS#11 module (libakv_pkcs11.so, docs/pkcs11.md) needs from a person.
 *   module                 prints the module's path (for pkcs11-tool --module, ssh -I, Java's config)
 *   set-certificate        names a key's certificate file in the agent config, so that the module
 *                          shows it as the key's certificate object (Java's KeyStore lists only
 *                          keys that have one), after checking it is that key's certificate
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AkvError, withHint, errorMessage } from '../../errors.js';
import { defaultConfigCandidates, findConfigFile, parseConfigObject } from '../../config/load.js';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { withAgent } from '../util/agent.js';
import { flag, parseOptions, requireStr, str } from '../util/args.js';
import { AKV_ROOT } from '../util/provider-location.js';
import { isRecord } from '../../guards.js';

const usage = `Usage: akv pkcs11 module
       akv pkcs11 set-certificate --hsm-name NAME --key KEY --cert FILE [--config FILE] [--no-check]
       akv pkcs11 set-certificate --hsm-name NAME --key KEY --remove [--config FILE]

module            prints the path of libakv_pkcs11.so (this checkout's build, else the installed one)
set-certificate   writes vaults.NAME.certificates.KEY = FILE (absolute) into the agent config, so
                  the PKCS#11 module presents FILE (PEM or DER) as the key's certificate object
                  with the key's CKA_ID. Before writing, asks the agent for the key and refuses a
                  certificate for another key (--no-check skips that, e.g. with no agent running).
                  The running agent reads it on reload: kill -HUP its pid, or
                  systemctl reload akv-agent.

Options:
  --hsm-name NAME   the HSM (default: AKV_HSM_NAME)
  --key KEY         the key name
  --cert FILE       the certificate file (PEM or DER)
  --remove          drop the key's certificate entry instead
  --config FILE     the config file to change (default: AKV_CONFIG, else ~/.config/akv/config.json
                    or /etc/akv/config.json, whichever exists, else a new ~/.config/akv/config.json)
  --no-check        do not ask the agent whether the certificate is the key's
  -h, --help        show this text`;

/** Where libakv_pkcs11.so is: the checkout's build, else the multiarch install directory. */
export function pkcs11ModulePath(): string {
  const built = join(AKV_ROOT, 'pkcs11', 'build', 'libakv_pkcs11.so');
  if (existsSync(built)) return built;
  const installed = [
    '/usr/lib/x86_64-linux-gnu/pkcs11/libakv_pkcs11.so',
    '/usr/lib/aarch64-linux-gnu/pkcs11/libakv_pkcs11.so',
    '/usr/local/lib/x86_64-linux-gnu/pkcs11/libakv_pkcs11.so',
    '/usr/local/lib/aarch64-linux-gnu/pkcs11/libakv_pkcs11.so',
  ].find((p) => existsSync(p));
  return installed ?? built;
}

function configToChange(explicit: string | undefined): string {
  return (
    findConfigFile(explicit) ??
    defaultConfigCandidates()[0] ??
    resolve(process.env.HOME ?? '.', '.config/akv/config.json')
  );
}

function readJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new AkvError(
      'BAD_REQUEST',
      `config file ${file} is not valid JSON: ${errorMessage(err)}`,
      'fix the syntax first (see docs/configuration.md)',
    );
  }
  if (!isRecord(raw)) throw new AkvError('BAD_REQUEST', `config file ${file} is not a JSON object`);
  return raw;
}

function object(parent: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = parent[key];
  if (isRecord(v)) return v;
  const fresh: Record<string, unknown> = {};
  parent[key] = fresh;
  return fresh;
}

/** The certificate as X509Certificate, or a clear error naming the file. */
function readCertificate(file: string): X509Certificate {
  try {
    return new X509Certificate(readFileSync(file));
  } catch (err) {
    throw new AkvError(
      'BAD_PARAMETER',
      `${file} is not a certificate: ${errorMessage(err)}`,
      'give a PEM or DER X.509 certificate file',
    );
  }
}

/** The certificate's public key must be the HSM key's, as the agent describes it. */
async function checkCertificateMatches(
  cert: X509Certificate,
  certFile: string,
  hsm: string,
  key: string,
): Promise<void> {
  const uri = `managedhsm:${hsm}:${key}`;
  const info = await withAgent(undefined, (client) => client.describe(uri));
  const certSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (info.publicKey === undefined || !certSpki.equals(info.publicKey)) {
    throw new AkvError(
      'BAD_PARAMETER',
      `${certFile} is not a certificate for ${uri}: its public key is another key's`,
      'give the certificate issued for this key (e.g. from a CSR made with the provider)',
    );
  }
}

/** Checks the config as the agent would, then replaces the file in one rename (its mode kept, 0600 when new). */
function writeConfig(config: Record<string, unknown>, file: string): void {
  parseConfigObject(config, file);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : 0o600;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode });
  renameSync(tmp, file);
}

async function setCertificate(argv: string[]): Promise<number> {
  const p = parseOptions('pkcs11 set-certificate', argv, {
    'hsm-name': { type: 'string' },
    key: { type: 'string' },
    cert: { type: 'string' },
    remove: { type: 'boolean' },
    config: { type: 'string' },
    'no-check': { type: 'boolean' },
  });
  const hsm = str(p, 'hsm-name') ?? process.env.AKV_HSM_NAME;
  if (!hsm) throw new UsageError('pkcs11 set-certificate: --hsm-name is required');
  const key = requireStr(p, 'pkcs11 set-certificate', 'key', 'the key name');
  const remove = flag(p, 'remove');
  const certArg = str(p, 'cert');
  if (remove === (certArg !== undefined))
    throw new UsageError('pkcs11 set-certificate: give either --cert FILE or --remove');

  let certFile: string | undefined;
  if (certArg !== undefined) {
    certFile = resolve(certArg);
    const cert = readCertificate(certFile);
    if (!flag(p, 'no-check')) await checkCertificateMatches(cert, certFile, hsm, key);
  }

  const file = configToChange(str(p, 'config'));
  const config = readJson(file);
  const vaults = object(config, 'vaults');
  const vaultName = Object.keys(vaults).find((n) => n.toLowerCase() === hsm.toLowerCase()) ?? hsm;
  const vault = object(vaults, vaultName);
  const certs = object(vault, 'certificates');
  const keyName = Object.keys(certs).find((n) => n.toLowerCase() === key.toLowerCase()) ?? key;
  if (certFile !== undefined) certs[keyName] = certFile;
  else {
    if (!(keyName in certs)) {
      console.error(`akv pkcs11: ${file} names no certificate for ${hsm}/${key}; nothing changed`);
      return 0;
    }
    delete certs[keyName];
    if (Object.keys(certs).length === 0) delete vault.certificates;
  }
  writeConfig(config, file);
  console.log(
    certFile !== undefined
      ? `${file}: vaults.${vaultName}.certificates.${keyName} = ${certFile}`
      : `${file}: removed the certificate of ${vaultName}/${keyName}`,
  );
  console.error(
    'akv pkcs11: a running agent reads it on reload (kill -HUP <agent pid>, or systemctl reload akv-agent)',
  );
  return 0;
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || ((sub === '--help' || sub === '-h') && rest.length === 0)) {
    console.log(usage);
    return sub === undefined ? 2 : 0;
  }
  if (wantsHelp(rest)) {
    console.log(usage);
    return 0;
  }
  try {
    if (sub === 'module') {
      if (rest.length > 0) throw new UsageError('pkcs11 module: takes no arguments');
      console.log(pkcs11ModulePath());
      return 0;
    }
    if (sub === 'set-certificate') return await setCertificate(rest);
  } catch (err) {
    if (err instanceof AkvError) {
      console.error(`akv pkcs11: ${withHint(err.message, err.hint)}`);
      return 1;
    }
    throw err;
  }
  throw new UsageError(`pkcs11: unknown sub-command '${sub}'. Run \`akv pkcs11 --help\`.`);
}

const command: Command = {
  summary: 'the PKCS#11 module: its path, and the certificate it shows for a key',
  usage,
  run,
};

export default command;
