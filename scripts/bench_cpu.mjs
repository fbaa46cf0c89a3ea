#!/usr/bin/env node
// The CPU engine in the browser (wasm, simd128), in paired rounds in one headless Chromium
// session (bench/ page; build it first: wasm-pack build --release --target web --out-dir www/pkg):
//   node scripts/bench_cpu.mjs
// Training: per round, the reference step (batch 64, 258→256→256→64, 1,682 items) on metarec's
// CPU engine with its blocked kernels, with its reference kernels and on TF.js wasm, the order
// rotating from round to round. Interaction: per catalog and round, BENCH_INTERACTIONS
// interactions (reaction → adaptation step → new top-10) on each kernel set and TF.js wasm doing
// the same interaction (bench/bench.js TfInteraction). Reports per figure the median of the
// per-round paired ratios with a binomial 95% CI (order statistics, scripts/lib/paired.mjs), and
// writes out/bench/cpu.json.
// Environment: BENCH_ROUNDS [20], BENCH_STEPS [5], BENCH_INTERACTIONS [10],
// BENCH_CATALOGS [1682,100000,1000000].
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, startServer } from '../tests/e2e/lib/harness.mjs';
import { openBenchPage } from '../tests/e2e/lib/benchpage.mjs';
import { median, medianWithCi, quantile } from './lib/paired.mjs';

const env = (name, fallback) => process.env[name] ?? fallback;
const ROUNDS = Number(env('BENCH_ROUNDS', 20));
const STEPS = Number(env('BENCH_STEPS', 5));
const INTERACTIONS = Number(env('BENCH_INTERACTIONS', 10));
const CATALOGS = env('BENCH_CATALOGS', '1682,100000,1000000').split(',').map(Number);

const t0 = Date.now();
const say = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
// Median of paired ratios with its 95% CI.
function paired(ratios) {
  const m = medianWithCi(ratios);
  return { rounds: m.n, median: m.median, ci95: [m.low, m.high] };
}
const fmt = (p) => `${p.median.toFixed(2)}× (95% CI ${p.ci95[0].toFixed(2)}–${p.ci95[1].toFixed(2)}, ${p.rounds} rounds)`;

const server = await startServer();
const { browser, page } = await openBenchPage(server.url);
const call = (fn, ...args) => page.evaluate(([f, a]) => window.metarecBench[f](...a), [fn, args]);
const results = { chromium: browser.version(), rounds: ROUNDS, training: {}, interaction: [] };
try {
  const names = ['metarec-cpu', 'metarec-cpu-reference', 'tfjs-wasm'];
  for (const n of names) results.training[n] = { info: await call('trainerCreate', n), ms: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(round + k) % names.length];
      results.training[n].ms.push((await call('trainerRound', n, STEPS)).ms);
    }
  }
  for (const n of names) await call('trainerFree', n);
  const ms = (n) => results.training[n].ms;
  const ratio = (a, b) => a.map((x, i) => x / b[i]);
  results.training.steps_per_round = STEPS;
  results.training.blocked_over_reference = paired(ratio(ms('metarec-cpu-reference'), ms('metarec-cpu')));
  results.training.blocked_over_tfjs_wasm = paired(ratio(ms('tfjs-wasm'), ms('metarec-cpu')));
  for (const n of names) results.training[n].steps_per_s = (1000 * STEPS) / median(ms(n));
  say(`training steps/s: ${names.map((n) => `${n} ${results.training[n].steps_per_s.toFixed(1)}`).join(', ')}`);
  say(`training speed, blocked / reference kernels: ${fmt(results.training.blocked_over_reference)}`);
  say(`training speed, metarec CPU (blocked) / TF.js wasm: ${fmt(results.training.blocked_over_tfjs_wasm)}`);

  for (const items of CATALOGS) {
    const keys = ['metarec-cpu', 'metarec-cpu-reference', 'tfjs-wasm'];
    for (const k of keys) await call('sessionCreate', k, items);
    const all = Object.fromEntries(keys.map((k) => [k, []]));
    const med = Object.fromEntries(keys.map((k) => [k, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let j = 0; j < keys.length; j++) {
        const key = keys[(round + j) % keys.length];
        const r = await call('sessionRound', key, 'interact', INTERACTIONS);
        all[key].push(...r.ms);
        med[key].push(median(r.ms));
      }
    }
    for (const k of keys) await call('sessionFree', k);
    const row = { items, interactions_per_round: INTERACTIONS };
    for (const k of keys) row[k] = { p50_ms: quantile(all[k], 0.5), p95_ms: quantile(all[k], 0.95) };
    row.blocked_over_reference = paired(med['metarec-cpu-reference'].map((x, i) => x / med['metarec-cpu'][i]));
    row.tfjs_over_blocked = paired(med['tfjs-wasm'].map((x, i) => x / med['metarec-cpu'][i]));
    results.interaction.push(row);
    const f = (k) => `${row[k].p50_ms.toFixed(2)}/${row[k].p95_ms.toFixed(2)}`;
    say(
      `${items} items: p50/p95 ms blocked ${f('metarec-cpu')}, reference ${f('metarec-cpu-reference')}, TF.js wasm (same interaction) ${f('tfjs-wasm')}; ` +
        `speedup over reference ${fmt(row.blocked_over_reference)}; TF.js / blocked ${fmt(row.tfjs_over_blocked)}`,
    );
  }
} finally {
  await browser.close();
  await server.stop();
}
const out = path.join(REPO_ROOT, 'out', 'bench');
await mkdir(out, { recursive: true });
await writeFile(path.join(out, 'cpu.json'), JSON.stringify(results, null, 2));
say(`wrote ${path.join(out, 'cpu.json')}`);
