/**
 * The root of this copy of akv (a checkout, or /usr/lib/akv when installed): where package.json,
 * native/build/ and provider/build/ are. Every compiled file that computes it sits two directories
 * below the root: tsc's dist/src/install-root.js, and the bundle's dist/bundle/*.js
 * (scripts/bundle.mjs), where esbuild puts this module's code. One place, so that the two layouts
 * cannot drift apart.
 */
import { fileURLToPath } from 'node:url';

export const AKV_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
