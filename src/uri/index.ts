/** The key-URI grammar (see key-uri.ts); import from here. */
export {
  parseKeyUri,
  parseVaultUri,
  formatKeyUri,
  formatVaultUri,
  ACCEPTED_KEY_URI_FORMS,
} from './key-uri.js';
export type { KeyRef, VaultRef } from './key-uri.js';
