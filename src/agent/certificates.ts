/**
 * The certificate the config names for a key (`vaults.<hsm>.certificates.<key>`), which DESCRIBE
 * hands to the PKCS#11 module as the key's certificate object (docs/pkcs11.md). Read from the file
 * on every DESCRIBE, so a renewed certificate shows without a restart. A file that is missing, is
 * not a certificate or holds another key's certificate is left out with a warning in the agent
 * log: the key itself stays usable (the OpenSSL provider never asks for the certificate).
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AkvConfig } from '../config/types.js';
import { formatKeyUri, type KeyRef } from '../uri/index.js';
import { errorMessage } from '../errors.js';

/** The config's certificate path for the key, matching names as Azure does (case-insensitively). */
export function certificatePath(config: AkvConfig, ref: KeyRef): string | undefined {
  const lower = (s: string): string => s.toLowerCase();
  const vault = Object.entries(config.vaults).find(([name]) => lower(name) === lower(ref.vault));
  const certs = vault?.[1].certificates;
  if (certs === undefined) return undefined;
  return Object.entries(certs).find(([key]) => lower(key) === lower(ref.name))?.[1];
}

/** The DER certificate for the key, or undefined (none configured, or unusable: logged). */
export async function configuredCertificate(
  config: AkvConfig,
  ref: KeyRef,
  spki: Buffer | undefined,
  logger: Logger,
): Promise<Buffer | undefined> {
  const path = certificatePath(config, ref);
  if (path === undefined) return undefined;
  const uri = formatKeyUri(ref);
  try {
    const { X509Certificate } = process.getBuiltinModule('node:crypto');
    const cert = new X509Certificate(await readFile(path));
    const certSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
    if (spki !== undefined && !certSpki.equals(spki)) {
      logger.warn(
        { uri, file: path },
        `certificate file ${path} is for another key than ${uri}: not presented; hint: configure the certificate issued for this key (akv pkcs11 set-certificate)`,
      );
      return undefined;
    }
    return cert.raw;
  } catch (err) {
    logger.warn(
      { uri, file: path, error: errorMessage(err) },
      `certificate file ${path} for ${uri} cannot be used: not presented; hint: point vaults.${ref.vault}.certificates.${ref.name} at a PEM or DER certificate the agent can read`,
    );
    return undefined;
  }
}
