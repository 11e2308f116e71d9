// Lint for what the compiler does not check: the module boundaries of docs/architecture.md
// and a few correctness rules. No formatting rules. `npm run lint` (part of `npm test`).
import tseslint from 'typescript-eslint';
import { moduleBoundaries } from './eslint/module-boundaries.js';

/**
 * The module map (docs/architecture.md, "Module map"): which modules under src/ each module
 * may import. Arrows point one way, toward `domain`; `cli` and `demo` are the entry points.
 */
export const MODULES = {
  domain: [],
  lib: ['domain'],
  'source/trust': ['domain', 'lib'],
  source: ['domain', 'lib', 'source/trust'],
  compile: ['domain', 'lib'],
  rollout: ['domain', 'lib', 'compile'],
  plan: ['domain', 'lib', 'source', 'source/trust', 'compile'],
  signing: ['domain', 'lib'],
  pki: ['domain', 'lib'],
  fleet: ['domain', 'lib', 'pki'],
  transport: ['domain', 'lib', 'pki'],
  admin: ['domain', 'lib', 'fleet', 'rollout'],
  agent: ['domain', 'lib', 'pki', 'signing', 'transport'],
  server: ['domain', 'lib', 'source', 'source/trust', 'compile', 'rollout', 'signing', 'pki', 'fleet', 'transport', 'admin'],
  cli: ['domain', 'lib', 'source', 'source/trust', 'compile', 'rollout', 'plan', 'signing', 'pki', 'fleet', 'transport', 'admin', 'agent', 'server'],
  demo: ['domain', 'lib', 'source', 'source/trust', 'compile', 'rollout', 'plan', 'signing', 'pki', 'fleet', 'transport', 'admin', 'agent', 'server', 'cli'],
};

export default [
  {
    files: ['src/**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { ecmaVersion: 2022, sourceType: 'module' } },
    plugins: { meshcfg: { rules: { 'module-boundaries': moduleBoundaries } } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'meshcfg/module-boundaries': ['error', { modules: MODULES, indexFree: ['domain'] }],
      'no-debugger': 'error',
      'no-dupe-keys': 'error',
      'no-duplicate-case': 'error',
      'no-self-assign': 'error',
      'no-self-compare': 'error',
      'no-unreachable': 'error',
      'no-unsafe-finally': 'error',
      'no-constant-binary-expression': 'error',
      'no-cond-assign': 'error',
      'no-compare-neg-zero': 'error',
      'no-async-promise-executor': 'error',
      'no-unused-private-class-members': 'error',
      'use-isnan': 'error',
      'valid-typeof': 'error',
      'no-duplicate-imports': ['error', { allowSeparateTypeImports: true }],
      // One convention for private members (docs/architecture.md, "Conventions"): TypeScript's
      // `private`, never ECMAScript `#name` fields or methods.
      'no-restricted-syntax': [
        'error',
        { selector: 'PrivateIdentifier', message: "Use TypeScript's `private` modifier, not a `#name` member (docs/architecture.md, Conventions)." },
      ],
    },
  },
];
