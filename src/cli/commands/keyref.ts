/**
 * `akv keyref URI [--out FILE]`: writes a key-reference PEM file that stands for an HSM key
 * wherever an application reads a PEM private key file (nginx `ssl_certificate_key`, HAProxy,
 * Apache, curl `--key`, `openssl s_server -key`), once akv_provider is activated in openssl.cnf.
 *
 * The file holds no secret, only the URI (docs/provider.md, "Key-reference files"):
 *
 *   -----BEGIN AKV KEY REFERENCE-----
 *   base64(DER  AKVKeyReference ::= SEQUENCE { version INTEGER (1),
 *                                              description UTF8String,
 *                                              uri UTF8String })
 *   -----END AKV KEY REFERENCE-----
 *
 * The provider's decoder (provider/src/decoder.c) reads it back and asks the agent for the key.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { formatKeyUri, parseKeyUri } from '../../uri/index.js';
import { errnoCode, errorMessage } from '../../errors.js';

export const KEYREF_PEM_LABEL = 'AKV KEY REFERENCE';
export const KEYREF_VERSION = 1;

const usage = `Usage: akv keyref URI [--out FILE] [--description TEXT]

Writes a PEM "key reference" for an HSM key. Applications that only read PEM private key files
(nginx ssl_certificate_key, openssl s_server -key, curl --key, HAProxy, Apache) then use the HSM
key through akv_provider, provided the provider is activated in their openssl.cnf (default first,
then akv_provider). The file contains only the key URI, no key material.

Arguments:
  URI                 managedhsm:<hsm>:<key>[?version=<v>], keyvault:<vault>:<key>[?version=<v>]
                      or akv:vault=<hsm>,name=<key>[,version=<v>][,type=managedhsm|keyvault]

Options:
  --out FILE          where to write the PEM (default: stdout)
  --description TEXT  a note stored in the file for people (default names the key)

Example:
  akv keyref managedhsm:myhsm:tls-key --out /etc/nginx/tls-key.pem
  openssl pkey -provider akv_provider -provider default -in /etc/nginx/tls-key.pem -pubout`;

/** DER length octets (definite form). */
function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derTlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/** The DER of AKVKeyReference for a URI. */
export function encodeKeyReference(uri: string, description: string): Buffer {
  const version = derTlv(0x02, Buffer.from([KEYREF_VERSION]));
  const desc = derTlv(0x0c, Buffer.from(description, 'utf8'));
  const uriField = derTlv(0x0c, Buffer.from(uri, 'utf8'));
  return derTlv(0x30, Buffer.concat([version, desc, uriField]));
}

/** The PEM text of a key reference, 64 base64 characters per line. */
export function keyReferencePem(uri: string, description?: string): string {
  const der = encodeKeyReference(
    uri,
    description ?? `akv key reference to ${uri}; the private key stays in the HSM`,
  );
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${KEYREF_PEM_LABEL}-----\n${lines.join('\n')}\n-----END ${KEYREF_PEM_LABEL}-----\n`;
}

const command: Command = {
  summary: 'Write a PEM key-reference file for an HSM key (for nginx, curl, s_server ...)',
  usage,
  // eslint-disable-next-line @typescript-eslint/require-await -- async so that a throw reaches the caller as a rejected promise, as the interface says
  async run(argv) {
    if (wantsHelp(argv)) {
      console.log(usage);
      return 0;
    }
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: { out: { type: 'string' }, description: { type: 'string' } },
      });
    } catch (err) {
      throw new UsageError(`keyref: ${errorMessage(err)}. Run \`akv keyref --help\`.`);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1) {
      throw new UsageError(
        'keyref: give exactly one key URI, e.g. `akv keyref managedhsm:myhsm:mykey --out key.pem`',
      );
    }
    const uri = positionals[0] ?? '';
    // Refuse what the agent would refuse, now rather than at nginx start-up. Keep the user's form.
    parseKeyUri(uri);
    const description = values.description;
    if (description !== undefined && [...description].some((c) => c.charCodeAt(0) < 0x20)) {
      throw new UsageError('keyref: --description must not contain control characters');
    }
    const pem = keyReferencePem(uri, description);
    if (values.out === undefined || values.out === '-') {
      process.stdout.write(pem);
    } else {
      try {
        writeFileSync(values.out, pem, { mode: 0o644 });
      } catch (err) {
        throw new UsageError(
          `keyref: cannot write ${values.out}: ${errnoCode(err) ?? errorMessage(err)}`,
        );
      }
      console.error(`akv keyref: wrote ${values.out} for ${formatKeyUri(parseKeyUri(uri))}`);
    }
    return 0;
  },
};

export default command;
