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
  {
    // Type-aware rules for a promise-heavy daemon: a promise nobody awaits loses its error, an
    // async callback where a void one is expected runs unawaited, a switch over a union must
    // name every member.
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test/describe/it return promises that the runner itself awaits.
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: [
                'test',
                'describe',
                'it',
                'suite',
                'before',
                'after',
                'beforeEach',
                'afterEach',
              ],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
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
  const bottomFiles = ['src/errors.ts', 'src/guards.ts', 'src/version.ts'];
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
    { files: bottomFiles, rules: rule('errors.ts, guards.ts and version.ts', upper) },
  ];
}
