// metarec demo page: the views ("For you", www/foryou.js, the default; Simulate, www/simulate.js,
// ?view=simulate; Meta-train, www/metatrain.js, ?view=metatrain; the engine self-check with
// ?view=selfcheck) and the self-check, on the wasm engine (www/pkg, built by wasm-pack).
//
// Contract with the engine (src/web/): www/pkg/metarec.js default-exports the wasm init function;
// after `await init()`, `self_check({ engine: "auto" | "gpu" | "cpu" })` resolves to
//   { engine, adapter: { name, backend, device_type, fallback } | null, gpu_error,
//     kernels: [{ name, shape, max_rel_err, tolerance, pass }],
//     steps_per_s: { gpu, cpu }, dispatches_per_step }
// or rejects with an Error.
//
// All data is rendered with textContent. When done, document.body.dataset.state is "ready" or
// "error" and the result (or the error message) is on window.metarecSelfCheck(Error), for tests.

import { $, announce, el, message as errorMessage } from './dom.js';

const ENGINES = ['auto', 'gpu', 'cpu'];
const PKG_URL = new URL('./pkg/metarec.js', import.meta.url);

function setText(id, text) {
  $(id).textContent = text;
}

// "loading" (from the HTML) → "running" → "ready" | "error"; data-runs counts finished runs.
function setState(state) {
  document.body.dataset.state = state;
  if (state === 'ready' || state === 'error') {
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
  }
}

function requestedEngine() {
  const value = new URLSearchParams(window.location.search).get('engine');
  if (value === null || value === '') return 'auto';
  if (!ENGINES.includes(value)) {
    throw new Error(`unknown engine ${JSON.stringify(value)} in the URL: use ?engine=auto, ?engine=gpu or ?engine=cpu`);
  }
  return value;
}

// ---- number formatting -------------------------------------------------------

const rateFormat = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });
const msFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function fmtSci(x) {
  if (typeof x !== 'number') return '—';
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  if (x === 0) return '0';
  return x.toExponential(2);
}

function fmtRate(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  return rateFormat.format(x);
}

function fmtMs(ms) {
  return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${msFormat.format(ms)} ms`;
}

// ---- rendering -----------------------------------------------------------------

function renderBadges(result, requested) {
  const list = $('badges');
  list.replaceChildren();
  const add = (kind, title, reason) => {
    const li = el('li', undefined, `badge tone-${kind}`);
    li.append(el('strong', title));
    if (reason) li.append(el('span', `: ${reason}`));
    list.append(li);
  };
  if (result.engine === 'cpu') {
    if (requested === 'cpu') {
      add('info', 'CPU engine', 'requested with ?engine=cpu');
    } else {
      add('warn', 'CPU fallback', result.gpu_error || 'the GPU engine is not available (no reason given)');
    }
  } else if (result.gpu_error) {
    add('warn', 'GPU warning', result.gpu_error);
  }
  if (result.adapter && result.adapter.fallback) {
    add('info', 'Software adapter', 'the browser offered a fallback (CPU-emulated) GPU adapter, so GPU timings are not representative');
  }
  list.hidden = list.childElementCount === 0;
}

function renderStatus(result, requested, timings) {
  const a = result.adapter;
  setText('st-adapter', a ? a.name || '(unnamed adapter)' : 'none');
  setText('st-backend', a ? [a.backend, a.device_type].filter(Boolean).join(', ') || '—' : '—');
  setText('st-engine', result.engine === 'gpu' ? 'GPU' : result.engine === 'cpu' ? 'CPU' : String(result.engine));
  setText('st-requested', `(requested: ${requested})`);
  setText('st-timings', `engine load ${fmtMs(timings.load)}, self-check ${fmtMs(timings.check)}`);
  renderBadges(result, requested);
}

// Text nodes for `text` with optional line breaks (<wbr>) after underscores and dots, so that long
// identifiers wrap in narrow table cells.
function breakable(text) {
  const parts = [];
  for (const piece of text.split(/(?<=[_.])/)) {
    if (parts.length) parts.push(document.createElement('wbr'));
    parts.push(document.createTextNode(piece));
  }
  return parts;
}

function verdictCell(pass) {
  const td = el('td');
  td.append(el('span', pass ? '✓ pass' : '✗ FAIL', `verdict ${pass ? 'tone-pass' : 'tone-fail'}`));
  return td;
}

// One <tbody> per shape (in first-seen order), headed by a row-group header with the shape.
function renderKernels(kernels) {
  const table = $('kernels');
  const wrap = table.closest('.table-wrap');
  const summary = $('kernels-summary');
  for (const tb of table.querySelectorAll('tbody')) tb.remove();
  if (kernels.length === 0) {
    wrap.hidden = true;
    summary.textContent = 'No kernel checks ran: the GPU kernels are only checked when the GPU engine runs.';
    summary.className = 'summary muted';
    return;
  }
  wrap.hidden = false;
  const groups = new Map();
  for (const k of kernels) {
    const shape = String(k.shape ?? '');
    if (!groups.has(shape)) groups.set(shape, []);
    groups.get(shape).push(k);
  }
  let passed = 0;
  for (const [shape, ks] of groups) {
    const tbody = el('tbody');
    const head = el('tr', undefined, 'group');
    const th = el('th');
    th.scope = 'rowgroup';
    th.colSpan = 4;
    th.append(el('span', 'Shape ', 'muted'), el('span', shape || '(unnamed)'));
    const groupFailed = ks.filter((k) => !k.pass).length;
    th.append(el('span', groupFailed ? ` — ${groupFailed} failed` : ` — ${ks.length} passed`, 'muted'));
    head.append(th);
    tbody.append(head);
    for (const k of ks) {
      const tr = el('tr', undefined, `kernel ${k.pass ? 'pass' : 'fail'}`);
      const name = el('th');
      name.scope = 'row';
      name.append(...breakable(String(k.name ?? '')));
      tr.append(name, el('td', fmtSci(k.max_rel_err), 'num'), el('td', fmtSci(k.tolerance), 'num'), verdictCell(k.pass));
      tbody.append(tr);
      if (k.pass) passed += 1;
    }
    table.append(tbody);
  }
  const failed = kernels.length - passed;
  summary.textContent =
    `${passed} of ${kernels.length} kernel checks passed on ${groups.size} shape${groups.size === 1 ? '' : 's'}` +
    `${failed ? `; ${failed} failed` : ''}.`;
  summary.className = `summary ${failed ? 'tone-fail' : 'tone-pass'}`;
}

function setRate(id, x) {
  const dd = $(id);
  if (typeof x === 'number' && Number.isFinite(x)) {
    dd.replaceChildren(fmtRate(x), ' ', el('span', 'steps/s', 'unit'));
  } else {
    dd.replaceChildren(el('span', 'not measured', 'unit'));
  }
}

function renderSpeed(result) {
  const gpu = result.steps_per_s ? result.steps_per_s.gpu : null;
  const cpu = result.steps_per_s ? result.steps_per_s.cpu : null;
  setRate('sp-gpu', gpu);
  setRate('sp-cpu', cpu);
  const ratioOk = typeof gpu === 'number' && typeof cpu === 'number' && gpu > 0 && cpu > 0;
  setText('sp-ratio', ratioOk ? `${rateFormat.format(gpu / cpu)}×` : '—');
  const d = result.dispatches_per_step;
  setText('sp-dispatches', typeof d === 'number' ? String(d) : '—');
}

function showError(err) {
  const message = errorMessage(err);
  const panel = $('error-panel');
  setText('error-message', message);
  let hint = '';
  if (/pkg\/metarec\.js|Failed to fetch dynamically imported module|Importing a module script failed/i.test(message)) {
    hint = 'The wasm package is missing: build it with ./scripts/demo.sh (wasm-pack build --target web --out-dir www/pkg).';
  } else if (!('gpu' in navigator)) {
    hint = 'This browser does not expose WebGPU; try ?engine=cpu, or a browser with WebGPU enabled.';
  } else if (/engine=/.test(message)) {
    hint = '';
  } else {
    hint = 'Reload to try again, or try ?engine=cpu to use the CPU engine only.';
  }
  setText('error-hint', hint);
  panel.hidden = false;
  setText('progress', 'Failed.');
  announce('Self-check failed.');
  window.metarecSelfCheckError = message;
  setState('error');
}

function validate(result) {
  const ok =
    result &&
    typeof result === 'object' &&
    (result.engine === 'gpu' || result.engine === 'cpu') &&
    Array.isArray(result.kernels) &&
    result.steps_per_s &&
    typeof result.steps_per_s === 'object';
  if (!ok) {
    throw new Error(`self_check returned an unexpected value: ${JSON.stringify(result)?.slice(0, 300)}`);
  }
  return result;
}

// ---- main ------------------------------------------------------------------------

let engineModule = null;
let loadMs = 0;

let enginePromise = null;

// Loads and initialises the wasm package once (shared by both views).
export function loadEngine() {
  if (!enginePromise) {
    enginePromise = (async () => {
      const t0 = performance.now();
      let mod;
      try {
        mod = await import(PKG_URL.href);
      } catch (err) {
        throw new Error(`cannot load ${PKG_URL.pathname}: ${err && err.message ? err.message : err}`);
      }
      if (typeof mod.default !== 'function' || typeof mod.self_check !== 'function') {
        throw new Error(`${PKG_URL.pathname} does not export init() and self_check(): rebuild the wasm package`);
      }
      await mod.default();
      loadMs = performance.now() - t0;
      engineModule = mod;
      return mod;
    })();
    enginePromise.catch(() => {
      enginePromise = null;
    });
  }
  return enginePromise;
}

async function run() {
  const button = $('rerun');
  button.disabled = true;
  $('error-panel').hidden = true;
  window.metarecSelfCheck = undefined;
  window.metarecSelfCheckError = undefined;
  setState('running');
  try {
    const requested = requestedEngine();
    setText('progress', 'Loading the engine…');
    const mod = await loadEngine();
    setText('progress', `Running the self-check (engine: ${requested})…`);
    const t0 = performance.now();
    const result = validate(await mod.self_check({ engine: requested }));
    const checkMs = performance.now() - t0;
    renderStatus(result, requested, { load: loadMs, check: checkMs });
    renderKernels(result.kernels);
    renderSpeed(result);
    const failed = result.kernels.filter((k) => !k.pass).length;
    setText('progress', failed ? `Done: ${failed} kernel check(s) failed.` : 'Done.');
    announce(failed ? `Self-check done: ${failed} kernel check(s) failed.` : 'Self-check done: every kernel check passed.');
    window.metarecSelfCheck = result;
    setState('ready');
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

// The engine links of each `nav.engine-choice`; they keep the other URL parameters (view, bundle,
// training settings).
const ENGINE_LINKS = { auto: 'auto', gpu: 'GPU', cpu: 'CPU' };
function markEngineChoice() {
  let current = 'auto';
  try {
    current = requestedEngine();
  } catch {
    current = null;
  }
  for (const nav of document.querySelectorAll('nav.engine-choice')) {
    nav.replaceChildren(
      ...ENGINES.map((engine) => {
        const a = el('a', ENGINE_LINKS[engine]);
        const params = new URLSearchParams(window.location.search);
        params.set('engine', engine);
        if (nav.closest('#view-selfcheck')) params.set('view', 'selfcheck');
        else params.delete('view');
        a.href = `?${params}`;
        if (engine === current) a.setAttribute('aria-current', 'page');
        return a;
      }),
    );
  }
}

// ---- views: "For you" (default), Simulate, Meta-train and the engine self-check ---------------
// The tabs follow the WAI-ARIA tabs pattern: one tab in the focus order, arrow keys, Home and End
// move between tabs and show them. Simulate and Meta-train work on the For you view's recommender
// and bundle, so For you starts whenever one of the three is shown first.

const VIEWS = ['foryou', 'simulate', 'metatrain', 'selfcheck'];
const TITLES = { foryou: 'for you', simulate: 'simulate', metatrain: 'meta-train', selfcheck: 'engine self-check' };

let selfCheckStarted = false;
let forYou = null; // the For you module, once started
const started = new Set();

function startForYou() {
  if (!forYou) {
    forYou = import('./foryou.js').then((m) => {
      m.start({ loadEngine });
      return m;
    });
  }
  return forYou;
}

function showView(view, { push = false, focus = false } = {}) {
  const which = VIEWS.includes(view) ? view : 'foryou';
  for (const tab of document.querySelectorAll('.view-tab')) {
    const on = tab.dataset.view === which;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on && focus) tab.focus();
  }
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== which;
  document.title = `metarec: ${TITLES[which]}`;
  if (push) {
    const params = new URLSearchParams(window.location.search);
    if (which === 'foryou') params.delete('view');
    else params.set('view', which);
    const q = params.toString();
    history.replaceState(null, '', q ? `?${q}` : window.location.pathname);
  }
  if (which === 'selfcheck') {
    if (!selfCheckStarted) {
      selfCheckStarted = true;
      run();
    }
  } else {
    // Started when first shown, so that a self-check is not slowed down by meta-training.
    const fy = startForYou();
    if ((which === 'simulate' || which === 'metatrain') && !started.has(which)) {
      started.add(which);
      const file = which === 'simulate' ? './simulate.js' : './metatrain.js';
      Promise.all([import(file), fy]).then(([m, foryou]) => m.start({ loadEngine, foryou }));
    }
  }
}

function onTabKey(event) {
  const tabs = [...document.querySelectorAll('.view-tab')];
  const i = tabs.indexOf(event.currentTarget);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  const tab = tabs[(next + tabs.length) % tabs.length];
  showView(tab.dataset.view, { push: true, focus: true });
}

window.addEventListener('unhandledrejection', (event) => {
  if (selfCheckStarted) showError(event.reason);
});
window.addEventListener('error', (event) => {
  if (selfCheckStarted) showError(event.error || event.message);
});

markEngineChoice();
$('rerun').addEventListener('click', () => {
  run();
});
for (const tab of document.querySelectorAll('.view-tab')) {
  tab.addEventListener('click', () => showView(tab.dataset.view, { push: true }));
  tab.addEventListener('keydown', onTabKey);
}
showView(new URLSearchParams(window.location.search).get('view') || 'foryou');
