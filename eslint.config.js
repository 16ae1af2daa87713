import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'provider/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  ...layerRules(),
);

/**
 * The folder graph of src/ as a rule (docs/architecture.md, "Layers"): protocol, crypto, system
 * (and errors.ts, version.ts) at the bottom; uri; config; azure; agent beside client (both speak
 * the protocol, neither knows the other); cli on top; emulator and demo apart, on the bottom only.
 * Each entry names the folders a layer must not import from.
 */
function layerRules() {
  const upper = ['uri', 'config', 'azure', 'agent', 'client', 'cli', 'emulator', 'demo'];
  const forbidden = {
    protocol: upper,
    crypto: upper,
    system: upper,
    uri: upper.filter((l) => l !== 'uri'),
    config: ['azure', 'agent', 'client', 'cli', 'emulator', 'demo'],
    azure: ['agent', 'client', 'cli', 'emulator', 'demo'],
    agent: ['client', 'cli', 'emulator', 'demo'],
    client: ['azure', 'agent', 'cli', 'emulator', 'demo'],
    cli: ['demo'],
    emulator: ['uri', 'config', 'azure', 'agent', 'client', 'cli', 'demo'],
    demo: ['azure', 'agent', 'client', 'cli', 'emulator'],
  };
  const bottomFiles = ['src/errors.ts', 'src/version.ts'];
  const rule = (layer, names) => ({
    'no-restricted-imports': [
      'error',
      {
        patterns: names.map((name) => ({
          group: [`**/${name}/**`, `../${name}/*`, `../../${name}/*`],
          message: `src/${layer} must not import from src/${name} (layers: eslint.config.js, docs/architecture.md)`,
        })),
      },
    ],
  });
  return [
    ...Object.entries(forbidden).map(([layer, names]) => ({
      files: [`src/${layer}/**/*.ts`],
      rules: rule(layer, names),
    })),
    { files: bottomFiles, rules: rule('errors.ts and version.ts', upper) },
  ];
}
