import type { Command } from './command.js';

/**
 * The `akv` sub-commands in the order `akv --help` lists them, with their one-line summaries, so
 * that `akv --help` loads no command module (some import the Azure SDK). Each maps to
 * `commands/<name>.js`, which main.ts loads only for the command that runs; its `summary` is the
 * same text (test/coldstart/cli-modules.test.ts checks).
 */
export const COMMANDS = {
  emulator: 'run the local Managed HSM emulator (HTTPS, loopback)',
  agent: 'run the agent that performs key operations for the provider (foreground)',
  dev: 'Start/stop a local emulator + agent environment (prints export lines) and services',
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
} satisfies Record<string, string>;

export type CommandName = keyof typeof COMMANDS;

/**
 * How main.ts loads each command: one literal import() per command, so that the bundler
 * (scripts/bundle.mjs) makes each command a chunk of its own that loads only when it runs.
 */
export const LOAD_COMMAND: Record<CommandName, () => Promise<{ default: Command }>> = {
  emulator: () => import('./commands/emulator.js'),
  agent: () => import('./commands/agent.js'),
  dev: () => import('./commands/dev.js'),
  key: () => import('./commands/key.js'),
  keyref: () => import('./commands/keyref.js'),
  sign: () => import('./commands/sign.js'),
  verify: () => import('./commands/verify.js'),
  encrypt: () => import('./commands/encrypt.js'),
  decrypt: () => import('./commands/decrypt.js'),
  wrap: () => import('./commands/wrap.js'),
  unwrap: () => import('./commands/unwrap.js'),
  doctor: () => import('./commands/doctor.js'),
  ping: () => import('./commands/ping.js'),
  pkcs11: () => import('./commands/pkcs11.js'),
};

export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}
