#!/usr/bin/env node
// The benchmark run behind scripts/bench.sh (which installs and builds first):
//   node scripts/bench.mjs
// In one headless Chromium session (WebGPU on whatever adapter Chromium finds; SwiftShader on a
// machine without a GPU) it loads bench/ and measures, alternating implementations:
//   1. training throughput of the reference policy: metarec GPU engine vs TF.js WebGPU, metarec
//      CPU engine (wasm) vs TF.js wasm, with the equivalence check first (the run fails if the
//      TF.js step is not the same step);
//   2. interaction latency on catalogs of 1,682, 100,000 and 1,000,000 random item vectors in
//      paired rounds: metarec's GPU engine against TF.js WebGPU, its CPU engine (wasm) against
//      TF.js wasm, both sides doing the same interaction (a reaction: one REINFORCE step on the
//      context with Adam; then the next list: a Gumbel-top-10 draw read back), and the
//      recommend-only path against TF.js inference (scores, top-10);
// then natively (target/release/metarec): 3. meta-training iterations/s and peak memory, GPU
// engine vs CPU engine; 4. dispatches and bytes read back per training step.
// Writes out/bench/results.json, out/bench/tables.md (BENCHMARKS.md-ready) and
// out/bench/latency.svg (drawn by `metarec bench chart`).
//
// Environment (defaults in brackets): BENCH_OUT [out/bench], BENCH_REPS [20] paired rounds per
// training figure, BENCH_STEPS [10] steps per round, BENCH_ROUNDS [20] paired rounds per latency
// figure, BENCH_PER_ROUND [5] calls per side and round (BENCH_PER_ROUND_LARGE [2] from 1,000,000
// items, where software WebGPU takes seconds per call), BENCH_CATALOGS [1682,100000,1000000],
// BENCH_META_ITERATIONS [10], CHROMIUM [/usr/bin/chromium].
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, startServer } from '../tests/e2e/lib/harness.mjs';
import { GRAD_TOL, LOSS_TOL, UPDATE_TOL, checkEquivalence, openBenchPage } from '../tests/e2e/lib/benchpage.mjs';
import { CHROMIUM } from '../tests/e2e/lib/harness.mjs';
import { median, medianWithCi, pairedRounds, quantile } from './lib/paired.mjs';

const env = (name, fallback) => process.env[name] ?? fallback;
const OUT = path.resolve(REPO_ROOT, env('BENCH_OUT', 'out/bench'));
const REPS = Number(env('BENCH_REPS', 20));
const STEPS = Number(env('BENCH_STEPS', 10));
const ROUNDS = Number(env('BENCH_ROUNDS', 20));
const PER_ROUND = Number(env('BENCH_PER_ROUND', 5));
const PER_ROUND_LARGE = Number(env('BENCH_PER_ROUND_LARGE', 2));
const CATALOGS = env('BENCH_CATALOGS', '1682,100000,1000000').split(',').map(Number);
const META_ITERATIONS = Number(env('BENCH_META_ITERATIONS', 10));
const METAREC = path.join(REPO_ROOT, 'target', 'release', 'metarec');

const t0 = Date.now();
const say = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
const sh = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
const tryRun = (f) => {
  try {
    return f();
  } catch {
    return null;
  }
};

async function browserBenchmarks(results) {
  const server = await startServer();
  const session = await openBenchPage(server.url);
  const { browser, page } = session;
  const call = (fn, ...args) => page.evaluate(([f, a]) => window.metarecBench[f](...a), [fn, args]);
  try {
    results.browser = { version: browser.version(), ...(await call('info')) };
    say(`Chromium ${results.browser.version}; adapter ${JSON.stringify(results.browser.adapter)}; TF.js ${results.browser.tfjs}`);

    // ---- equivalence ----
    results.equivalence = { tolerances: { loss: LOSS_TOL, grad: GRAD_TOL, update_over_lr: UPDATE_TOL }, checks: [] };
    for (const engine of ['cpu', 'gpu']) {
      for (const backend of ['wasm', 'webgpu']) {
        const r = await call('equivalence', engine, backend);
        let error = null;
        try {
          checkEquivalence(r);
        } catch (e) {
          error = e.message;
        }
        results.equivalence.checks.push({ ...r, pass: !error, error });
        say(`equivalence metarec ${engine} vs TF.js ${backend}: ${error ?? 'ok'} (grad rel. err ${r.grad_rel_err.toExponential(1)})`);
      }
    }

    // ---- training throughput, alternating ----
    const names = ['metarec-gpu', 'tfjs-webgpu', 'metarec-cpu', 'tfjs-wasm'];
    results.training = { steps_per_round: STEPS, rounds: REPS, implementations: {} };
    for (const n of names) {
      results.training.implementations[n] = { info: await call('trainerCreate', n), rounds: [] };
      say(`training: ${n} ready`);
    }
    for (let rep = 0; rep < REPS; rep++) {
      for (const n of names) {
        const r = await call('trainerRound', n, STEPS);
        results.training.implementations[n].rounds.push({ ...r, steps_per_s: (r.steps * 1000) / r.ms });
      }
      say(`training round ${rep + 1}/${REPS}: ${names.map((n) => `${n} ${results.training.implementations[n].rounds[rep].steps_per_s.toFixed(1)}`).join(', ')} steps/s`);
    }
    for (const n of names) await call('trainerFree', n);

    // ---- interaction latency vs catalog size: paired rounds ----
    results.latency = [];
    for (const items of CATALOGS) {
      const perRound = items >= 1_000_000 ? PER_ROUND_LARGE : PER_ROUND;
      for (const [mr, tfName] of [['metarec-gpu', 'tfjs-webgpu'], ['metarec-cpu', 'tfjs-wasm']]) {
        const setup = {};
        try {
          for (const n of [mr, tfName]) setup[n] = await call('sessionCreate', n, items);
        } catch (e) {
          results.latency.push({ items, metarec: mr, tfjs: tfName, error: String(e.message ?? e).split('\n')[0] });
          say(`latency ${items} items, ${mr} / ${tfName}: failed: ${results.latency.at(-1).error}`);
          for (const n of Object.keys(setup)) await call('sessionFree', n);
          continue;
        }
        for (const mode of ['interact', 'recommend']) {
          const start = Date.now();
          const r = await pairedRounds(call, { a: mr, b: tfName, mode, rounds: ROUNDS, perRound });
          const side = (n) => {
            const c = r[n].counters;
            const mean = (f) => (c.length ? c.reduce((t, x) => t + x[f], 0) / c.length : null);
            return { n: r[n].ms.length, p50_ms: quantile(r[n].ms, 0.5), p95_ms: quantile(r[n].ms, 0.95), max_ms: Math.max(...r[n].ms), setup_ms: setup[n].setup_ms, info: setup[n].info, dispatches: mean('dispatches'), submits: mean('submits'), bytes_read_back: mean('bytes_read_back') };
          };
          const row = { items, mode, rounds: ROUNDS, per_round: perRound, metarec: { name: mr, ...side(mr) }, tfjs: { name: tfName, ...side(tfName) }, ratio: medianWithCi(r.ratios) };
          results.latency.push(row);
          say(`latency ${items} items, ${mode}: ${mr} p50 ${row.metarec.p50_ms.toFixed(2)} / p95 ${row.metarec.p95_ms.toFixed(2)} ms, ${tfName} p50 ${row.tfjs.p50_ms.toFixed(2)} ms; TF.js / metarec ${row.ratio.median.toFixed(2)} (${((Date.now() - start) / 1000).toFixed(0)} s)`);
        }
        for (const n of [mr, tfName]) await call('sessionFree', n);
      }
    }
    results.browser.problems = session.problems();
  } finally {
    await browser.close();
    await server.stop();
  }
}

function nativeBenchmarks(results) {
  say('native: metarec bench engine');
  results.native = { engine: JSON.parse(sh(METAREC, ['bench', 'engine', '--json'])), meta: {} };
  for (const engine of ['gpu', 'cpu']) {
    say(`native: metarec bench meta --engine ${engine}`);
    results.native.meta[engine] = JSON.parse(sh(METAREC, ['bench', 'meta', '--engine', engine, '--iterations', String(META_ITERATIONS)]));
  }
}

function machine() {
  const lscpu = tryRun(() => sh('lscpu', [])) ?? '';
  return {
    nproc: tryRun(() => sh('nproc', [])),
    cpu_model: /Model name:\s*(.*)/.exec(lscpu)?.[1] ?? os.cpus()[0]?.model,
    memory_gib: (os.totalmem() / 2 ** 30).toFixed(1),
    os: tryRun(() => /PRETTY_NAME="(.*)"/.exec(sh('cat', ['/etc/os-release']))[1]) ?? os.type(),
    debian_version: tryRun(() => sh('cat', ['/etc/debian_version'])),
    chromium: tryRun(() => sh(CHROMIUM, ['--version'])),
    rustc: tryRun(() => sh('rustc', ['--version'])),
    node: process.version,
    load_average_start: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    date: new Date().toISOString(),
  };
}

// ---- tables ----
const f1 = (x) => (x == null || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fInt = (x) => Math.round(x).toLocaleString('en-US');
const yes = (ok) => (ok ? 'met' : '**missed**');

// Paired training ratio a / b per round: median with its 95% CI, min, max.
function ratios(a, b) {
  const r = a.rounds.map((x, k) => x.steps_per_s / b.rounds[k].steps_per_s);
  return { min: Math.min(...r), max: Math.max(...r), ...medianWithCi(r) };
}
const ci = (m) => (m.low == null ? `${f1(m.median)} (n ${m.n}: too few for a CI)` : `${f1(m.median)} (${f1(m.low)}–${f1(m.high)})`);

function tables(results) {
  const L = [];
  const m = results.machine;
  L.push(`Command: \`./scripts/bench.sh\` (${results.seconds.toFixed(0)} s, ${m.date}).`);
  L.push('');
  L.push(`Machine: ${m.nproc} cores (\`nproc\`), ${m.cpu_model}, ${m.memory_gib} GiB, ${m.os} (Debian ${m.debian_version}); load average at start ${m.load_average_start}, shared with other jobs.`);
  const a = results.browser.adapter;
  L.push(`Browser: ${m.chromium} headless (\`--enable-unsafe-webgpu\`), WebGPU adapter: ${a ? `${a.vendor} / ${a.architecture}${a.description ? ` (${a.description})` : ''}, fallback adapter: ${a.isFallbackAdapter}` : 'none'}; TF.js ${results.browser.tfjs}; native GPU engine on ${results.native.engine.gpu?.adapter ?? 'no adapter'}.`);
  L.push('');

  const tr = results.training.implementations;
  const label = {
    'metarec-gpu': 'metarec GPU engine (WebGPU)',
    'tfjs-webgpu': 'TF.js WebGPU',
    'metarec-cpu': 'metarec CPU engine (wasm)',
    'tfjs-wasm': 'TF.js wasm (SIMD, 1 thread)',
  };
  L.push(`### 1. Training throughput in the browser`);
  L.push('');
  L.push(`Reference policy: batch 64, input 128, hidden 256-256, output 64, 1,682 items; one REINFORCE step (entropy bonus 0.01) with Adam. ${results.training.rounds} rounds of ${results.training.steps_per_round} steps per implementation, alternating in one page; each round ends with a readback.`);
  L.push('');
  L.push('| implementation | steps/s median | min | max | dispatches/step | bytes read back/step |');
  L.push('|---|---|---|---|---|---|');
  for (const [n, t] of Object.entries(tr)) {
    const sps = t.rounds.map((r) => r.steps_per_s);
    const steps = t.rounds.reduce((s, r) => s + r.steps, 0);
    const disp = n.startsWith('metarec')
      ? f1(t.rounds.reduce((s, r) => s + r.dispatches, 0) / steps)
      : `${t.info.kernels_per_step} kernels (tf.profile)`;
    const bytes = n.startsWith('metarec') ? f1(t.rounds.reduce((s, r) => s + r.bytes_read_back, 0) / steps) : '–';
    L.push(`| ${label[n]} | ${f1(median(sps))} | ${f1(Math.min(...sps))} | ${f1(Math.max(...sps))} | ${disp} | ${bytes} |`);
  }
  L.push('');
  const g = ratios(tr['metarec-gpu'], tr['tfjs-webgpu']);
  const c = ratios(tr['metarec-cpu'], tr['tfjs-wasm']);
  L.push('| ratio (paired rounds) | median (95% CI) | min | max | target | |');
  L.push('|---|---|---|---|---|---|');
  L.push(`| metarec GPU / TF.js WebGPU | ${ci(g)} | ${f1(g.min)} | ${f1(g.max)} | ≥ 5× | ${yes(g.median >= 5)} |`);
  L.push(`| metarec CPU / TF.js wasm | ${ci(c)} | ${f1(c.min)} | ${f1(c.max)} | ≥ 1.5× | ${yes(c.median >= 1.5)} |`);
  L.push('');

  L.push('### Equivalence check');
  L.push('');
  const tol = results.equivalence.tolerances;
  L.push(`Same parameters, item vectors and batch; tolerances: loss ${tol.loss}, gradient ${tol.grad} (max |difference| / max |metarec|), Adam update ${tol.update_over_lr} × lr.`);
  L.push('');
  L.push('| metarec engine | TF.js backend | loss metarec | loss TF.js | loss rel. error | gradient rel. error | update diff / lr | |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const e of results.equivalence.checks) {
    L.push(`| ${e.engine} | ${e.backend} | ${e.loss_metarec.toFixed(6)} | ${e.loss_tfjs.toFixed(6)} | ${e.loss_rel_err.toExponential(1)} | ${e.grad_rel_err.toExponential(1)} | ${e.update_max_abs_diff_over_lr.toExponential(1)} | ${e.pass ? 'pass' : '**FAIL**'} |`);
  }
  L.push('');

  L.push('### 2. Interaction latency vs catalog size (paired rounds)');
  L.push('');
  L.push(`Each figure: ${ROUNDS} rounds; a round times ${PER_ROUND} calls of each side (${PER_ROUND_LARGE} from 1,000,000 items), the order alternating; the ratio of a round is TF.js's median over metarec's (above 1: metarec is faster), reported as the median over rounds with a distribution-free 95% CI (order statistics).`);
  L.push('');
  L.push('**interact**: one reaction to the first item of the list (one REINFORCE step on the 128-value context through the network, Adam; the item into the 130-value feedback summary; the item masked), then the next list (a Gumbel-top-10 draw, read back) — metarec `Session::react` (`feedback` then `recommend`; on the GPU engine one engine call, one submit), TF.js the same in `TfInteraction` (bench/bench.js). **recommend**: the list only — metarec `Session::recommend` (sampled), TF.js inference (scores, `tf.topk` 10). Network 258-256-256-64, random item vectors.');
  L.push('');
  L.push('| items | path | metarec | p50 ms | p95 ms | TF.js | p50 ms | p95 ms | TF.js / metarec (95% CI) | dispatches | submits | bytes read back |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const nice = { 'metarec-gpu': 'GPU engine', 'metarec-cpu': 'CPU engine (wasm)', 'tfjs-webgpu': 'WebGPU', 'tfjs-wasm': 'wasm' };
  for (const r of results.latency) {
    if (r.error) {
      L.push(`| ${fInt(r.items)} | – | ${nice[r.metarec]} | failed: ${r.error.replace(/\|/g, '/')} | | ${nice[r.tfjs]} | | | | | | |`);
      continue;
    }
    const m = r.metarec;
    const counters = m.submits != null ? `${f1(m.dispatches)} | ${f1(m.submits)} | ${fInt(m.bytes_read_back)}` : '– | – | –';
    L.push(`| ${fInt(r.items)} | ${r.mode} | ${nice[m.name]} (n ${m.n}) | ${f1(m.p50_ms)} | ${f1(m.p95_ms)} | ${nice[r.tfjs.name]} | ${f1(r.tfjs.p50_ms)} | ${f1(r.tfjs.p95_ms)} | ${ci(r.ratio)} | ${counters} |`);
  }
  L.push('');
  L.push(...latencyTargets(results.latency));
  L.push('');

  L.push('### 3. Native meta-training');
  L.push('');
  const meta = results.native.meta;
  const any = meta.cpu ?? meta.gpu;
  L.push(`\`metarec bench meta\`: synthetic world (${fInt(any.items)} items), policy ${any.model.input}-${any.model.hidden.join('-')}-${any.model.output} (input: context and feedback summary), ${any.users_per_iteration} users × ${any.rounds} rounds per meta-iteration, ${any.iterations} timed iterations after one warm-up; one process per engine, peak RSS = \`VmHWM\` (lavapipe's buffers are host memory and count).`);
  L.push('');
  L.push('| engine | adapter | meta-iterations/s | s/iteration | dispatches/iteration | submits/iteration | bytes read back/iteration | peak RSS MiB |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const e of ['gpu', 'cpu']) {
    const t = meta[e];
    L.push(`| ${e.toUpperCase()} | ${t.adapter} | ${f1(t.iterations_per_s)} | ${f1(1 / t.iterations_per_s)} | ${fInt(t.dispatches_per_iteration)} | ${fInt(t.submits_per_iteration)} | ${fInt(t.bytes_read_back_per_iteration)} | ${f1(t.peak_rss_mib)} |`);
  }
  L.push('');
  L.push(`GPU / CPU meta-iterations/s: ${f1(meta.gpu.iterations_per_s / meta.cpu.iterations_per_s)}.`);
  L.push('');

  L.push('### 4. Work per training step (engine counters)');
  L.push('');
  const ne = results.native.engine;
  L.push(`Native \`metarec bench engine\` (${ne.gpu?.steps_per_submit ?? ne.cpu.steps_per_submit} steps per submit; dispatch budget ${ne.dispatch_budget_per_step} = 2 per layer + 3):`);
  L.push('');
  L.push('| engine | adapter | steps/s median (min–max) | dispatches/step | submits per round | bytes read back/step |');
  L.push('|---|---|---|---|---|---|');
  for (const t of [ne.gpu, ne.cpu].filter(Boolean)) {
    L.push(`| ${t.engine.toUpperCase()} | ${t.adapter} | ${f1(t.median_steps_per_s)} (${f1(t.steps_per_s[0])}–${f1(t.steps_per_s.at(-1))}) | ${f1(t.dispatches_per_step)} | ${f1(t.submits_per_repetition)} | ${f1(t.bytes_read_back_per_step)} |`);
  }
  L.push('');
  L.push(`In the browser (table 1) the GPU engine's counters give the same figures; per adaptation interaction see table 2.`);
  return L.join('\n') + '\n';
}

function latencyTargets(rows) {
  const ok = rows.filter((r) => !r.error);
  const get = (engine, mode, items) => ok.find((r) => r.metarec.name === engine && r.mode === mode && r.items === items);
  const out = ['| target (issue #16) | measured | |', '|---|---|---|'];
  const gpuSmall = get('metarec-gpu', 'interact', 1682);
  if (gpuSmall) {
    out.push(`| GPU engine interaction p50 ≤ 10 ms and p95 ≤ 16 ms at 1,682 items | ${f1(gpuSmall.metarec.p50_ms)} / ${f1(gpuSmall.metarec.p95_ms)} ms | ${yes(gpuSmall.metarec.p50_ms <= 10 && gpuSmall.metarec.p95_ms <= 16)} |`);
    out.push(`| GPU engine: 1 submit and ≤ 1 KB read back per interaction | ${f1(gpuSmall.metarec.submits)} submits, ${fInt(gpuSmall.metarec.bytes_read_back)} B | ${yes(gpuSmall.metarec.submits <= 1 && gpuSmall.metarec.bytes_read_back <= 1024)} |`);
  }
  const gpuLarge = get('metarec-gpu', 'interact', 1_000_000);
  const tfLarge = get('metarec-gpu', 'recommend', 1_000_000);
  if (gpuLarge && tfLarge) out.push(`| GPU engine interaction p50 ≤ TF.js WebGPU inference p50 at 1,000,000 items | ${f1(gpuLarge.metarec.p50_ms)} vs ${f1(tfLarge.tfjs.p50_ms)} ms | ${yes(gpuLarge.metarec.p50_ms <= tfLarge.tfjs.p50_ms)} |`);
  for (const items of [...new Set(ok.map((r) => r.items))].sort((a, b) => a - b)) {
    const cpu = get('metarec-cpu', 'interact', items);
    if (cpu) out.push(`| CPU engine (wasm) interaction p50 ≤ TF.js wasm's same interaction at ${fInt(items)} items | ${f1(cpu.metarec.p50_ms)} vs ${f1(cpu.tfjs.p50_ms)} ms; paired ratio ${ci(cpu.ratio)} | ${yes(cpu.metarec.p50_ms <= cpu.tfjs.p50_ms)} |`);
  }
  return out;
}

async function main() {
  await mkdir(OUT, { recursive: true });
  const results = { machine: machine() };
  await browserBenchmarks(results);
  nativeBenchmarks(results);
  results.seconds = (Date.now() - t0) / 1000;
  results.machine.load_average_end = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  await writeFile(path.join(OUT, 'results.json'), JSON.stringify(results, null, 1));
  const series = {};
  for (const r of results.latency.filter((r) => !r.error && r.mode === 'interact')) {
    for (const side of [r.metarec, r.tfjs]) (series[`${side.name} interaction`] ??= []).push({ items: r.items, p50_ms: side.p50_ms, p95_ms: side.p95_ms });
  }
  const chartJson = path.join(OUT, 'latency.json');
  await writeFile(chartJson, JSON.stringify({ series: Object.entries(series).map(([name, points]) => ({ name, points })) }, null, 1));
  sh(METAREC, ['bench', 'chart', '--input', chartJson, '--out', path.join(OUT, 'latency.svg')]);
  const md = tables(results);
  await writeFile(path.join(OUT, 'tables.md'), md);
  console.log(`\n${md}`);
  say(`wrote ${path.relative(REPO_ROOT, OUT)}/results.json, tables.md, latency.svg`);
  const failed = results.equivalence.checks.filter((c) => !c.pass);
  const problems = results.browser.problems;
  if (failed.length || problems.length) {
    console.error(`bench: ${failed.length} equivalence check(s) failed; page problems: ${problems.join('; ') || 'none'}`);
    process.exitCode = 1;
  }
}

await main();
