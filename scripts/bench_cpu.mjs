#!/usr/bin/env node
// The CPU engine in the browser (wasm, simd128), in paired rounds in one headless Chromium
// session (bench/ page; build it first: wasm-pack build --release --target web --out-dir www/pkg):
//   node scripts/bench_cpu.mjs
// Training: per round, the reference step (batch 64, 258→256→256→64, 1,682 items) on metarec's
// CPU engine with its blocked kernels, with its reference kernels and on TF.js wasm, the order
// rotating from round to round. Interaction: per catalog and round, BENCH_INTERACTIONS
// interactions (reaction → adaptation step → new top-10) on each kernel set, and TF.js wasm
// inference (forward + top-10, the floor). Reports per figure the median of the per-round paired
// ratios with a binomial 95% CI (order statistics), and writes out/bench/cpu.json.
// Environment: BENCH_ROUNDS [20], BENCH_STEPS [5], BENCH_INTERACTIONS [10],
// BENCH_CATALOGS [1682,100000,1000000].
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, startServer } from '../tests/e2e/lib/harness.mjs';
import { openBenchPage } from '../tests/e2e/lib/benchpage.mjs';

const env = (name, fallback) => process.env[name] ?? fallback;
const ROUNDS = Number(env('BENCH_ROUNDS', 20));
const STEPS = Number(env('BENCH_STEPS', 5));
const INTERACTIONS = Number(env('BENCH_INTERACTIONS', 10));
const CATALOGS = env('BENCH_CATALOGS', '1682,100000,1000000').split(',').map(Number);

const t0 = Date.now();
const say = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.floor((xs.length - 1) / 2)];

// Median of paired ratios and the order statistics [r_(l), r_(n+1-l)] covering it with ≥ 95%.
function paired(ratios) {
  const r = sorted(ratios);
  const n = r.length;
  let cdf = 0;
  let pmf = 0.5 ** n;
  let l = 0;
  for (let i = 0; i < n; i++) {
    cdf += pmf;
    if (cdf > 0.025) {
      l = Math.max(0, i - 1);
      break;
    }
    pmf *= (n - i) / (i + 1);
  }
  return { rounds: n, median: median(r), ci95: [r[l], r[n - 1 - l]] };
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
    const runs = {
      blocked: () => call('adaptation', 'cpu', items, INTERACTIONS, 1e9, 'blocked'),
      reference: () => call('adaptation', 'cpu', items, INTERACTIONS, 1e9, 'reference'),
      tfjs_wasm_inference: () => call('tfInference', 'wasm', items, INTERACTIONS, 1e9),
    };
    const keys = Object.keys(runs);
    const all = Object.fromEntries(keys.map((k) => [k, []]));
    const med = Object.fromEntries(keys.map((k) => [k, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < keys.length; k++) {
        const key = keys[(round + k) % keys.length];
        const r = await runs[key]();
        all[key].push(...r.ms);
        med[key].push(median(r.ms));
      }
    }
    const q = (xs, p) => sorted(xs)[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)];
    const row = { items, interactions_per_round: INTERACTIONS };
    for (const k of keys) row[k] = { p50_ms: q(all[k], 0.5), p95_ms: q(all[k], 0.95) };
    row.blocked_over_reference = paired(med.reference.map((x, i) => x / med.blocked[i]));
    row.tfjs_inference_over_blocked = paired(med.tfjs_wasm_inference.map((x, i) => x / med.blocked[i]));
    results.interaction.push(row);
    say(
      `${items} items: p50/p95 ms blocked ${row.blocked.p50_ms.toFixed(2)}/${row.blocked.p95_ms.toFixed(2)}, ` +
        `reference ${row.reference.p50_ms.toFixed(2)}/${row.reference.p95_ms.toFixed(2)}, ` +
        `TF.js wasm inference ${row.tfjs_wasm_inference.p50_ms.toFixed(2)}/${row.tfjs_wasm_inference.p95_ms.toFixed(2)}; ` +
        `speedup over reference ${fmt(row.blocked_over_reference)}; TF.js inference / blocked interaction ${fmt(row.tfjs_inference_over_blocked)}`,
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
