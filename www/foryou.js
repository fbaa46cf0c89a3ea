// metarec "For you" view: a slate of recommendations that adapts on this device after every
// reaction (Recommender from www/pkg, see src/web/recommender.rs), persisted in IndexedDB.
//
// URL parameters: engine=auto|gpu|cpu; bundle=URL (same origin) loads a bundle file instead of
// meta-training one; items, users, iterations, seed, algorithm set the in-page meta-training of
// the default bundle (small values for tests); person=N fixes the exploration noise of a new
// person's session (default: random), for reproducible demos and tests. Everything is rendered with textContent. The Meta-train view
// hands its bundles over with useTrained(); Simulate reads current() (see the end of the file).
//
// For tests: <main id="view-foryou" data-foryou="loading|training|ready|error">, data-busy while a
// reaction is processed, data-reactions = history length; window.metarecForYou exposes the
// recommender, the latencies and the device-loss drill.

import { cssColor, lineChart } from './charts.js';
import { $, announce, el, message } from './dom.js';
import { trainOnCatalog, trainSynthetic } from './training.js';
import { defaultBundle, store } from './store.js';

const { get: dbGet, put: dbPut, del: dbDel } = store;

const SLATE = 10;
const MAX_LAT = 100;

const view = () => $('view-foryou');


// The IndexedDB store, shared with the other views (Meta-train keeps its run there).
export { store };

// ---- settings from the URL ----------------------------------------------------------------

const params = new URLSearchParams(window.location.search);

function requestedEngine() {
  const v = params.get('engine') || 'auto';
  if (!['auto', 'gpu', 'cpu'].includes(v)) {
    throw new Error(`unknown engine ${JSON.stringify(v)} in the URL: use ?engine=auto, ?engine=gpu or ?engine=cpu`);
  }
  return v;
}

function intParam(name, def, min, max) {
  const raw = params.get(name);
  if (raw === null || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`?${name}= must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

// URL parameters that ask for in-page meta-training instead of the default bundle.
const TRAINING_PARAMS = ['items', 'users', 'iterations', 'seed', 'algorithm'];

function trainingOptions() {
  return {
    seed: intParam('seed', 0, 0, 2 ** 32 - 1),
    items: intParam('items', 2000, 20, 100000),
    users: intParam('users', 1000, 10, 100000),
    iterations: intParam('iterations', 60, 0, 10000),
    algorithm: ['cavia', 'reptile', 'fomaml'].includes(params.get('algorithm')) ? params.get('algorithm') : 'fomaml',
  };
}

// ---- state -----------------------------------------------------------------------------

const st = {
  mod: null,
  rec: null,
  bundle: null, // Uint8Array
  bundleKey: '', // where the state of this bundle is stored
  bundleLabel: '',
  engine: 'auto', // what we ask the wasm for
  slate: [],
  itemGenres: {}, // item id -> genres, for the "why" lines (persisted with the state)
  latencies: [],
  busy: false,
  timings: {},
};

function setPhase(phase) {
  view().dataset.foryou = phase;
}

// The view's progress line; `live` also announces it (all but per-iteration progress).
function progressText(text, live = true) {
  $('fy-progress-text').textContent = text;
  if (live) announce(text);
}

function notice(kind, text) {
  const list = $('fy-notices');
  const li = el('li', undefined, `badge tone-${kind}`);
  li.append(el('span', text));
  const close = el('button', 'Dismiss', 'link-button');
  close.type = 'button';
  close.addEventListener('click', () => {
    li.remove();
    list.hidden = list.childElementCount === 0;
  });
  li.append(' ', close);
  list.append(li);
  list.hidden = false;
}

function fatal(err) {
  setPhase('error');
  progressText('Failed.');
  $('fy-progress').hidden = true;
  notice('warn', message(err));
  window.metarecForYouError = message(err);
}

// ---- engine choice -------------------------------------------------------------------------

// Whether the browser's WebGPU adapter is a software fallback, asked cheaply from JS so that the
// GPU engine is not built only to be thrown away (engineInfo().fallback is checked as well).
async function adapterIsFallback() {
  if (!('gpu' in navigator)) return { fallback: true, why: 'this browser does not expose WebGPU' };
  try {
    const a = await navigator.gpu.requestAdapter();
    if (!a) return { fallback: true, why: 'the browser offers no WebGPU adapter' };
    const info = a.info || {};
    if (a.isFallbackAdapter || info.isFallbackAdapter) {
      return { fallback: true, why: `the WebGPU adapter (${info.description || info.architecture || info.vendor || 'unnamed'}) is a software fallback` };
    }
    if (/swiftshader|llvmpipe|lavapipe/i.test(`${info.vendor} ${info.architecture} ${info.description}`)) {
      return { fallback: true, why: `the WebGPU adapter (${info.architecture || info.description}) is a software renderer` };
    }
    return { fallback: false };
  } catch (e) {
    return { fallback: true, why: `requesting a WebGPU adapter failed: ${message(e)}` };
  }
}

let fallbackWhy = null;

function renderBadges() {
  const list = $('fy-badges');
  list.replaceChildren();
  const info = st.rec ? st.rec.engineInfo() : null;
  if (fallbackWhy) {
    const li = el('li', undefined, 'badge tone-info');
    li.append(el('strong', 'CPU engine'), el('span', `: ${fallbackWhy}, so the CPU engine is faster here. `));
    const a = el('a', 'Use the GPU anyway');
    const p = new URLSearchParams(window.location.search);
    p.set('engine', 'gpu');
    a.href = `?${p}`;
    li.append(a);
    list.append(li);
  } else if (info && info.fallback_reason) {
    const li = el('li', undefined, 'badge tone-warn');
    li.append(el('strong', 'CPU fallback'), el('span', `: ${info.fallback_reason}`));
    list.append(li);
  }
  if (info && info.engine === 'gpu' && info.fallback) {
    const li = el('li', undefined, 'badge tone-info');
    li.append(el('strong', 'Software adapter'), el('span', ': the GPU engine runs on a CPU-emulated adapter; timings are not representative'));
    list.append(li);
  }
  list.hidden = list.childElementCount === 0;
}

function renderStatus() {
  const info = st.rec ? st.rec.engineInfo() : null;
  if (info) {
    $('fy-adapter').textContent = `${info.adapter || '—'} (${[info.backend, info.device_type].filter(Boolean).join(', ')})`;
    const rec = info.recoveries ? `, recovered from ${info.recoveries} device loss${info.recoveries === 1 ? '' : 'es'}` : '';
    $('fy-engine').textContent = `${info.engine === 'gpu' ? 'GPU' : 'CPU'} (requested: ${requestedEngineSafe()})${rec}`;
  }
  $('fy-bundle').textContent = st.bundleLabel || '—';
  const h = st.rec ? st.rec.history() : [];
  const likes = h.filter(([, r]) => r >= 0.5).length;
  $('fy-reactions').textContent = `${h.length} (${likes} liked)`;
  view().dataset.reactions = String(h.length);
  const t = st.timings;
  const parts = [];
  if (t.train !== undefined) parts.push(`meta-training ${fmtMs(t.train)}`);
  if (t.create !== undefined) parts.push(`engine start ${fmtMs(t.create)}`);
  $('fy-timings').textContent = parts.join(', ') || '—';
  renderLatency();
}

function requestedEngineSafe() {
  try {
    return requestedEngine();
  } catch {
    return '?';
  }
}

function fmtMs(ms) {
  return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function latencyStats() {
  const s = [...st.latencies].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), p95: quantile(s, 0.95), last: st.latencies[st.latencies.length - 1] };
}

function renderLatency() {
  const { n, median, p95, last } = latencyStats();
  $('fy-latency').textContent = n ? `last ${fmtMs(last)}; median ${fmtMs(median)}, p95 ${fmtMs(p95)} over ${n}` : '—';
}

// ---- the slate ------------------------------------------------------------------------------

function likedGenres() {
  const liked = new Map();
  for (const [item, r] of st.rec.history()) {
    if (r < 0.5) continue;
    for (const g of st.itemGenres[item] || []) liked.set(g, (liked.get(g) || 0) + 1);
  }
  return liked;
}

function renderSlate(focusIndex = -1) {
  const list = $('fy-slate');
  const liked = likedGenres();
  const rows = st.slate.map((r, i) => {
    const li = el('li', undefined, 'slate-item');
    li.dataset.item = r.item;
    li.dataset.genres = r.genres.join('|');
    li.title = `score ${r.score.toFixed(3)}, propensity ${r.propensity.toPrecision(3)}`;
    const text = el('div', undefined, 'slate-text');
    const title = el('span', r.title, 'slate-title');
    const meta = el('span', [r.genres.join(', ') || 'no genre', r.year ?? ''].filter((x) => x !== '').join(' · '), 'slate-meta muted');
    text.append(title, meta);
    const why = r.genres.filter((g) => liked.has(g));
    if (why.length) {
      text.append(el('span', `Because you liked ${why.map((g) => `${g} (${liked.get(g)})`).join(', ')}`, 'slate-why'));
    }
    const buttons = el('div', undefined, 'slate-buttons');
    const like = el('button', 'Like', 'like');
    like.type = 'button';
    like.setAttribute('aria-label', `Like ${r.title}`);
    like.addEventListener('click', () => react(r, 1, i, 'like'));
    const skip = el('button', 'Skip', 'skip');
    skip.type = 'button';
    skip.setAttribute('aria-label', `Skip ${r.title}`);
    skip.addEventListener('click', () => react(r, 0, i, 'skip'));
    buttons.append(like, skip);
    li.append(text, buttons);
    return li;
  });
  list.replaceChildren(...rows);
  if (!rows.length) list.append(el('li', 'Nothing left to recommend: you reacted to the whole catalog. Use “Forget me” to start again.', 'muted'));
  if (focusIndex >= 0 && rows.length) {
    const kind = document.activeElement && document.activeElement.classList.contains('skip') ? 'skip' : 'like';
    rows[Math.min(focusIndex, rows.length - 1)].querySelector(`button.${kind}`).focus();
  }
}

async function refreshSlate() {
  const slate = await st.rec.recommend(SLATE, false);
  for (const r of slate) st.itemGenres[r.item] = r.genres;
  st.slate = slate;
}

// `bytes`: the state taken right after the reaction, before the next slate was drawn, so that a
// reload draws the same slate again.
async function saveState(bytes = st.rec.saveState()) {
  const seen = {};
  for (const [item] of st.rec.history()) if (st.itemGenres[item]) seen[item] = st.itemGenres[item];
  await dbPut(`state:${st.bundleKey}`, { bytes, itemGenres: seen, saved: Date.now() });
}

async function react(r, reward, index, focusKind) {
  if (st.busy || !st.rec) return;
  st.busy = true;
  view().dataset.busy = 'true';
  const t0 = performance.now();
  const hadFocus = document.activeElement && $('fy-slate').contains(document.activeElement);
  try {
    await st.rec.feedback(r.item, reward);
    const state = st.rec.saveState();
    await refreshSlate();
    renderSlate(hadFocus ? index : -1);
    const ms = performance.now() - t0;
    st.latencies.push(ms);
    if (st.latencies.length > MAX_LAT) st.latencies.shift();
    const s = latencyStats();
    console.log(`metarec adaptation ${ms.toFixed(2)} ms (median ${s.median.toFixed(2)}, p95 ${s.p95.toFixed(2)} over ${s.n})`);
    renderStatus();
    renderBadges();
    await saveState(state);
    await renderLearning();
  } catch (err) {
    notice('warn', `That reaction could not be processed: ${message(err)}`);
  } finally {
    st.busy = false;
    delete view().dataset.busy;
    void focusKind;
  }
}

function onKey(event) {
  if (view().hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  const t = event.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  const rows = [...$('fy-slate').querySelectorAll('li.slate-item')];
  if (!rows.length) return;
  const current = rows.findIndex((li) => li.contains(document.activeElement));
  // Single-character shortcuts act only while an item has the focus (WCAG 2.1.4).
  if (current < 0) return;
  const key = event.key.toLowerCase();
  if (key === 'l' || key === 's') {
    rows[current].querySelector(key === 'l' ? 'button.like' : 'button.skip').click();
    event.preventDefault();
  } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    const next = Math.max(0, Math.min(rows.length - 1, current + (event.key === 'ArrowDown' ? 1 : -1)));
    const kind = document.activeElement.classList.contains('skip') ? 'skip' : 'like';
    rows[next].querySelector(`button.${kind}`).focus();
    event.preventDefault();
  }
}

// ---- the Learning panel: like rate over the reactions (uPlot, same origin) ----------------------

let chart = null;

function learningSeries() {
  const h = st.rec.history();
  const x = [];
  const overall = [];
  const recent = [];
  let likes = 0;
  h.forEach(([, r], i) => {
    likes += r;
    x.push(i + 1);
    overall.push(likes / (i + 1));
    const w = h.slice(Math.max(0, i - 9), i + 1);
    recent.push(w.reduce((a, [, rr]) => a + rr, 0) / w.length);
  });
  return { x, overall, recent, likes, n: h.length };
}

async function renderLearning() {
  const s = learningSeries();
  $('fy-learning-summary').textContent = s.n
    ? `${s.likes} liked of ${s.n} reactions (${((100 * s.likes) / s.n).toFixed(0)}%); last 10: ${(100 * s.recent[s.n - 1]).toFixed(0)}%.`
    : 'No reactions yet.';
  if (!chart) {
    chart = lineChart($('fy-chart'), {
      xLabel: 'reactions',
      yLabel: 'like rate',
      range: [0, 1],
      series: [
        { label: 'overall', stroke: cssColor('--accent', '#0b5cad') },
        { label: 'last 10', stroke: cssColor('--pass', '#116329'), width: 1.5 },
      ],
    });
  }
  chart.setData([s.x, s.overall, s.recent]);
  await chart.ready;
}

// ---- bundles ---------------------------------------------------------------------------------

async function obtainBundle() {
  const url = params.get('bundle');
  if (url) {
    const u = new URL(url, window.location.href);
    if (u.origin !== window.location.origin) {
      throw new Error(`?bundle= must be on this page's origin (${window.location.origin}), not ${u.origin}`);
    }
    progressText(`Loading the bundle ${u.pathname}…`);
    const res = await fetch(u.href);
    if (!res.ok) throw new Error(`cannot load the bundle ${u.pathname}: HTTP ${res.status}`);
    return { bytes: new Uint8Array(await res.arrayBuffer()), key: `url:${u.pathname}${u.search}`, label: u.pathname };
  }
  const picked = await dbGet('active');
  if (picked && picked.key && /^(file|trained|catalog):/.test(picked.key)) {
    const bytes = await dbGet(`bundle:${picked.key}`);
    if (bytes) return { bytes, key: picked.key, label: picked.label || `${picked.key.slice(5)} (loaded from a file)`, world: picked.world || null };
  }
  if (!TRAINING_PARAMS.some((k) => params.has(k))) {
    progressText('Loading the recommender…');
    const served = await defaultBundle();
    if (served) return served;
  }
  const opts = trainingOptions();
  const world = { items: opts.items, users: opts.users, seed: opts.seed };
  const key = `synthetic:items=${opts.items}&users=${opts.users}&iterations=${opts.iterations}&seed=${opts.seed}&algorithm=${opts.algorithm}`;
  const label = `synthetic catalog, ${opts.items} items (meta-trained in this browser)`;
  const cached = await dbGet(`bundle:${key}`);
  if (cached) return { bytes: cached, key, label, world, cached: true };
  setPhase('training');
  progressText(`First visit: meta-training the recommender on a synthetic catalog (${opts.iterations} iterations)…`);
  const t0 = performance.now();
  const bytes = await trainSynthetic({ ...opts, engine: st.trainEngine }, trainingUi());
  st.timings.train = performance.now() - t0;
  $('fy-progress').hidden = true;
  await dbPut(`bundle:${key}`, bytes);
  return { bytes, key, label, world };
}

// The progress bar and line of For you's meta-training.
const trainingUi = () => ({
  status: (text) => progressText(text, false),
  progress: (done, of) => {
    const bar = $('fy-progress');
    bar.hidden = false;
    bar.max = Math.max(1, of);
    bar.value = done;
  },
});

// Seed of a new person's exploration noise: ?person=N, else random.
const personSeed = () => (params.has('person') ? intParam('person', 0, 0, 2 ** 31 - 1) : (Math.random() * 2 ** 31) >>> 0);


async function openRecommender(bundle) {
  const mod = st.mod;
  const opts = { engine: st.engine, seed: personSeed() };
  const t0 = performance.now();
  const saved = await dbGet(`state:${bundle.key}`);
  let rec = null;
  st.itemGenres = {};
  if (saved && saved.bytes) {
    try {
      rec = await mod.Recommender.restore(bundle.bytes, saved.bytes, opts);
      st.itemGenres = { ...(saved.itemGenres || {}) };
    } catch (err) {
      await dbDel(`state:${bundle.key}`);
      notice('warn', `Your saved state could not be restored and was discarded; you start fresh. (${message(err)})`);
    }
  }
  if (!rec) rec = await mod.Recommender.create(bundle.bytes, opts);
  // auto on a software adapter: the CPU engine instead (the JS probe could not tell).
  if (st.engine === 'auto' && rec.engineInfo().engine === 'gpu' && rec.engineInfo().fallback) {
    fallbackWhy = `the WebGPU adapter (${rec.engineInfo().adapter}) is a software fallback`;
    st.engine = 'cpu';
    const state = rec.saveState();
    rec.free();
    rec = await mod.Recommender.restore(bundle.bytes, state, { ...opts, engine: 'cpu' });
  }
  st.timings.create = performance.now() - t0;
  if (st.rec) st.rec.free();
  st.rec = rec;
  st.bundle = bundle.bytes;
  st.bundleKey = bundle.key;
  st.bundleLabel = bundle.label;
  st.world = bundle.world || null;
  for (const fn of listeners) fn(current());
  await refreshSlate();
  renderSlate();
  renderStatus();
  renderBadges();
  await renderLearning();
}

async function useBundleBytes(bytes, name) {
  // Validate by opening it before anything is stored.
  const key = `file:${name}`;
  const bundle = { bytes, key, label: `${name} (loaded from a file)` };
  await openRecommender(bundle);
  await dbPut(`bundle:${key}`, bytes);
  await dbPut('active', { key });
  notice('info', `Loaded the bundle ${name}.`);
}

const BUNDLE_MAGIC = 'MRBUNDL\0';
// Any version of a saved state (restore refuses other versions with a clear message).
const STATE_MAGIC = 'MRSESS';
const startsWith = (bytes, magic) =>
  bytes.length >= magic.length && String.fromCharCode(...bytes.subarray(0, magic.length)) === magic;

async function importStateBytes(bytes, name) {
  const rec = await st.mod.Recommender.restore(st.bundle, bytes, { engine: st.engine, seed: 0 });
  st.rec.free();
  st.rec = rec;
  st.itemGenres = {};
  await saveState();
  await refreshSlate();
  renderSlate();
  renderStatus();
  renderBadges();
  await renderLearning();
  notice('info', `Imported the state ${name}: ${rec.history().length} reactions.`);
}

async function loadFile(file, kind) {
  if (!st.rec) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const k =
    kind ||
    (startsWith(bytes, STATE_MAGIC) ? 'state' : startsWith(bytes, BUNDLE_MAGIC) ? 'bundle' : /\.(csv|json)$/i.test(file.name) ? 'catalog' : null);
  // meta-training over a catalog runs in a Worker: reactions go on meanwhile
  if (k === 'catalog') return useCatalogFile(file, bytes);
  st.busy = true;
  try {
    if (k === 'state') await importStateBytes(bytes, file.name);
    else if (k === 'bundle') await useBundleBytes(bytes, file.name);
    else throw new Error('it is neither a metarec bundle, a saved state nor a catalog of items (.csv or .json)');
  } catch (err) {
    notice('warn', `Could not use ${file.name}: ${message(err)}`);
  } finally {
    st.busy = false;
  }
}

// ---- controls ----------------------------------------------------------------------------------

function wireControls() {
  document.addEventListener('keydown', onKey);
  $('fy-forget').addEventListener('click', async () => {
    if (!st.rec || st.busy) return;
    st.busy = true;
    try {
      await dbDel(`state:${st.bundleKey}`);
      const rec = await st.mod.Recommender.create(st.bundle, { engine: st.engine, seed: personSeed() });
      st.rec.free();
      st.rec = rec;
      st.itemGenres = {};
      st.latencies = [];
      await refreshSlate();
      renderSlate();
      renderStatus();
      await renderLearning();
      notice('info', 'Forgotten: your reactions and the adapted state were erased from this browser.');
    } catch (err) {
      notice('warn', `Could not forget: ${message(err)}`);
    } finally {
      st.busy = false;
    }
  });
  $('fy-export').addEventListener('click', () => {
    if (!st.rec) return;
    const blob = new Blob([st.rec.saveState()], { type: 'application/octet-stream' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'metarec-state.bin';
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  $('fy-import').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    e.target.value = '';
    if (f) loadFile(f, 'state');
  });
  $('fy-bundle-file').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    e.target.value = '';
    if (f) loadFile(f, 'bundle');
  });
  $('fy-catalog-file').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    e.target.value = '';
    if (f) loadFile(f, 'catalog');
  });
  $('fy-default-bundle').addEventListener('click', async () => {
    await dbDel('active');
    const p = new URLSearchParams(window.location.search);
    p.delete('bundle');
    window.location.search = p.toString();
  });
  $('fy-drill').addEventListener('click', () => drill());
  document.addEventListener('dragover', (e) => {
    if (!view().hidden && e.dataTransfer && [...e.dataTransfer.types].includes('Files')) {
      e.preventDefault();
      view().classList.add('dropping');
    }
  });
  document.addEventListener('dragleave', () => view().classList.remove('dropping'));
  document.addEventListener('drop', (e) => {
    view().classList.remove('dropping');
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (!f || view().hidden) return;
    e.preventDefault();
    loadFile(f);
  });
}

function drill() {
  if (!st.rec) return;
  st.rec.simulateDeviceLoss();
  const info = st.rec.engineInfo();
  notice('info', info.engine === 'gpu'
    ? 'Device-loss drill: the GPU device was destroyed; the next reaction rebuilds the engine.'
    : 'Device-loss drill: nothing to do on the CPU engine.');
}

// ---- for the Simulate and Meta-train views ---------------------------------------------------

const listeners = new Set();
let readyResolve;
let readyReject;
// Resolves when the first recommender is open; rejects when For you failed to start.
export const ready = new Promise((resolve, reject) => {
  readyResolve = resolve;
  readyReject = reject;
});
ready.catch(() => {});

// The bundle For you recommends from: { bytes, world: { items, users, seed } | null (not the
// synthetic world), label, engine (what the recommender was asked for), trainEngine, mod }.
export function current() {
  return { bytes: st.bundle, world: st.world, label: st.bundleLabel, engine: st.engine, trainEngine: st.trainEngine, mod: st.mod };
}

// Calls `fn(current())` whenever For you switches to another bundle.
export function onBundleChange(fn) {
  listeners.add(fn);
}

// Switches For you to a bundle meta-trained in this page on the synthetic world `world`, for a
// new person, and keeps it (IndexedDB) as the active bundle across reloads.
export async function useTrained(bytes, world, label) {
  const key = `trained:items=${world.items}&users=${world.users}&seed=${world.seed}&at=${Date.now()}`;
  await adopt({ bytes, key, label, world });
}

// Makes a newly trained bundle For you's (and the stored active one), replacing the previous
// trained one. Its key starts with `trained:` or `catalog:` (a site's own items, no world).
async function adopt({ bytes, key, label, world }) {
  while (st.busy) await new Promise((r) => setTimeout(r, 20));
  st.busy = true;
  try {
    const previous = await dbGet('active');
    await openRecommender({ bytes, key, label, world });
    await dbPut(`bundle:${key}`, bytes);
    await dbPut('active', { key, world, label });
    if (previous && previous.key && /^(trained|catalog):/.test(previous.key) && previous.key !== key) {
      await dbDel(`bundle:${previous.key}`);
      await dbDel(`state:${previous.key}`);
    }
    st.latencies = [];
    renderStatus();
    notice('info', `For you now recommends with ${label}.`);
  } finally {
    st.busy = false;
  }
}

// "Use your own catalog": meta-trains over a CSV or JSON file of items in a Worker
// (www/training.js) with the progress bar, then For you recommends from it; a bad file is
// refused with the row and field it names, and the current recommender stays.
async function useCatalogFile(file, bytes) {
  try {
    const trained = await trainOnCatalog(bytes, file.name, st.trainEngine, trainingUi());
    await adopt({ ...trained, world: null });
  } catch (err) {
    notice('warn', `Could not use ${file.name}: ${message(err)}`);
  } finally {
    $('fy-progress').hidden = true;
    progressText('Ready: like or skip to teach it what you like.');
  }
}

// ---- start ---------------------------------------------------------------------------------------

export async function start({ loadEngine }) {
  try {
    wireControls();
    st.engine = requestedEngine();
    progressText('Loading the engine…');
    const mod = await loadEngine();
    st.mod = mod;
    const probe = st.engine === 'cpu' ? { fallback: true } : await adapterIsFallback();
    // Meta-training is a one-off; on a software adapter it runs on the CPU engine (same result).
    st.trainEngine = probe.fallback ? 'cpu' : st.engine;
    if (st.engine === 'auto' && probe.fallback) {
      fallbackWhy = probe.why;
      st.engine = 'cpu';
    }
    const bundle = await obtainBundle();
    progressText('Starting the recommender…');
    await openRecommender(bundle);
    $('fy-help').hidden = false;
    progressText(bundle.cached === false ? 'Ready.' : 'Ready: like or skip to teach it what you like.');
    // Milliseconds from the navigation to the first slate on screen (tests/e2e/firstvisit.mjs).
    st.timings.firstSlate = performance.now();
    window.metarecForYou = {
      get rec() {
        return st.rec;
      },
      timings: () => ({ ...st.timings }),
      latencies: () => [...st.latencies],
      stats: latencyStats,
      drill,
    };
    setPhase('ready');
    readyResolve(current());
  } catch (err) {
    fatal(err);
    readyReject(err);
  }
}
