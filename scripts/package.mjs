// Completes the npm package wasm-pack wrote to DIR (default pkg/): node scripts/package.mjs DIR
// Copies the entry point js/index.js, its types js/index.d.ts (and js/types.d.ts, the classes'
// option and result types it builds on) and the licences, and rewrites
// package.json: the package's entry point is the wrapper (the generated metarec.js is an
// internal module of it), `exports`, `types`, `keywords`, `type: module`.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.resolve(root, process.argv[2] || 'pkg');
for (const [from, to] of [
  ['js/index.js', 'index.js'],
  ['js/index.d.ts', 'index.d.ts'],
  ['js/types.d.ts', 'types.d.ts'],
  ['LICENSE-MIT', 'LICENSE-MIT'],
  ['LICENSE-APACHE', 'LICENSE-APACHE'],
]) {
  copyFileSync(path.join(root, from), path.join(dir, to));
}
const generated = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
const files = ['index.js', 'index.d.ts', 'types.d.ts', 'metarec.js', 'metarec.d.ts', 'metarec_bg.wasm', 'metarec_bg.wasm.d.ts', 'LICENSE-MIT', 'LICENSE-APACHE', 'README.md'];
const pkg = {
  name: generated.name,
  version: generated.version,
  description: generated.description,
  keywords: ['recommender', 'recommendations', 'webgpu', 'wasm', 'meta-learning', 'reinforcement-learning', 'on-device'],
  license: generated.license,
  repository: generated.repository,
  type: 'module',
  main: './index.js',
  module: './index.js',
  types: './index.d.ts',
  exports: {
    '.': { types: './index.d.ts', default: './index.js' },
    './metarec_bg.wasm': './metarec_bg.wasm',
    './package.json': './package.json',
  },
  files,
  sideEffects: false,
};
if (pkg.license !== 'MIT OR Apache-2.0') throw new Error(`licence ${pkg.license}`);
writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
console.log(`${pkg.name}@${pkg.version} in ${path.relative(root, dir) || '.'}`);
