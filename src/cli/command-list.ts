/**
 * The `akv` sub-commands in the order `akv --help` lists them, with their one-line summaries, so
 * that `akv --help` loads no command module (some import the Azure SDK). Each maps to
 * `commands/<name>.js`, which main.ts loads only for the command that runs; its `summary` is the
 * same text (test/coldstart/cli-modules.test.ts checks).
 */
export const COMMANDS: Record<string, string> = {
  emulator: 'run the local Managed HSM emulator (HTTPS, loopback)',
  agent: 'run the agent that performs key operations for the provider (foreground)',
  dev: 'Start/stop a local emulator + agent environment (prints export lines)',
  key: 'manage HSM keys like az keyvault key: create, list, delete, recover, purge, release ...',
  keyref: 'Write a PEM key-reference file for an HSM key (for nginx, curl, s_server ...)',
  sign: 'Sign data or a digest with an HSM key',
  verify: 'Verify a signature with the public part of an HSM key',
  encrypt: 'Encrypt with the public part of an RSA HSM key',
  decrypt: 'Decrypt with an HSM key (RSA)',
  wrap: 'Wrap a key with an HSM key (AES key wrap, or RSA)',
  unwrap: 'Unwrap a key with an HSM key (AES key wrap, or RSA)',
  doctor: 'Check every link from OpenSSL to the HSM key and say which one is broken',
  ping: 'check that the agent answers on its socket (exit 0 when it does)',
  pkcs11: 'the PKCS#11 module: its path, and the certificate it shows for a key',
};
