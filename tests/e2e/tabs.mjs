// End-to-end test of the Simulate and Meta-train views in headless Chromium: node tests/e2e/tabs.mjs
// Needs www/pkg (wasm-pack build --release --target web --out-dir www/pkg). Serves the page with a
// small synthetic world for For you (?items=300&users=200&iterations=30, meta-trained on first
// visit), then through the page's own controls:
// - the generated TypeScript declarations type the JS API (Recommendation[], MetaProgress, ...);
// - the view tabs are a tablist (arrow keys move and show);
// - Simulate: 10 held-out users × 20 rounds against the baselines, paused (nothing advances) and
//   resumed; the curves have a point per round for every method, the table a row per method; on
//   WebGPU, a GPU device destroyed mid-run is replaced and the run completes;
// - Meta-train: a short run on another world (seed 3) on WebGPU, paused, the GPU device destroyed,
//   resumed (it continues from its checkpoint on a new device); the learning curves have a point
//   per iteration; when it ends For you recommends with it (status bar, the new catalog),
//   Simulate switches to that world, and a reload keeps it; a run paused on the CPU engine is
//   found paused at the same iteration after a reload and finishes when resumed;
// - titles are text: a bundle whose titles are `<img src=x onerror=…>` markup shows them as text;
// - both views fit a 390 px screen; no request leaves the origin, no CSP violation, no page error.
// Screenshots: out/simulate.png, out/metatrain.png. Prints the hit rates and meta-training speed.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import path from 'node:path';
import { REPO_ROOT, assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

const OUT_DIR = path.join(REPO_ROOT, 'out');
const READY_MS = 1000 * Number(process.env.METAREC_E2E_TIMEOUT_S || 120);
const SMALL = 'items=300&users=200&iterations=30';

const server = await startServer();
const origin = new URL(server.url).origin;
const browser = await launchChromium();
console.log(`chromium ${browser.version()}, page ${server.url}`);

async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const log = { foreign: [], pageErrors: [], csp: [], failed: [] };
  context.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin) log.foreign.push(url);
  });
  context.on('requestfailed', (req) => log.failed.push(`${req.url()}: ${req.failure()?.errorText}`));
  const page = await context.newPage();
  // Long tasks (> 50 ms) of the page's main thread, with their start times (performance.now()).
  await page.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.longTasks.push({ start: e.startTime, ms: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  });
  page.on('websocket', (ws) => log.foreign.push(ws.url()));
  page.on('pageerror', (err) => log.pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (msg) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(msg.text())) log.csp.push(msg.text());
  });
  return { context, page, log };
}

function clean(log) {
  assert(log.foreign.length === 0, `requests left the origin: ${log.foreign.join(', ')}`);
  assert(log.csp.length === 0, `CSP violations: ${log.csp.join(' | ')}`);
  assert(log.pageErrors.length === 0, `uncaught page errors: ${log.pageErrors.join(' | ')}`);
  assert(log.failed.length === 0, `failed requests: ${log.failed.join(', ')}`);
}

// The main thread's long tasks that started at or after `since` (performance.now()).
const longTasksSince = (page, since) => page.evaluate((t) => window.longTasks.filter((e) => e.start >= t), since);
const now = (page) => page.evaluate(() => performance.now());

const data = (page, id, key) => page.evaluate(([i, k]) => document.getElementById(i).dataset[k], [id, key]);
// Waits until data-<key> of #id is one of `want` (an array) or a number at least `want`.
const waitData = (page, id, key, want, timeout = READY_MS) =>
  page.waitForFunction(
    ([i, k, w]) => {
      const v = document.getElementById(i).dataset[k];
      return Array.isArray(w) ? w.includes(v) : Number(v) >= w;
    },
    [id, key, want],
    { timeout, polling: 50 },
  );

// Presses Simulate's Pause as soon as `slates` rounds are shown: inside the page, on the DOM
// mutation that shows them, so the click lands before the next round whatever the machine's load
// (a click from outside could arrive after a short run has already finished).
const pauseAt = (page, slates) =>
  page.evaluate(
    (n) =>
      new Promise((resolve, reject) => {
        const view = document.getElementById('view-simulate');
        const observer = new MutationObserver(() => check());
        const timer = setTimeout(() => {
          observer.disconnect();
          reject(new Error(`Simulate did not reach ${n} rounds in 60 s`));
        }, 60_000);
        const check = () => {
          if (!(Number(view.dataset.slates) >= n)) return;
          observer.disconnect();
          clearTimeout(timer);
          document.getElementById('sim-pause').click();
          resolve();
        };
        observer.observe(view, { attributes: true, attributeFilter: ['data-slates'] });
        check();
      }),
    slates,
  );

// Fills the Meta-train form (a 300-item, 200-user world; 2 users × 5 rounds per iteration) and
// presses Start.
async function startMetaTrain(page, { iterations, seed, engine }) {
  const fields = [['Catalog items', 300], ['Training users', 200], ['Iterations', iterations], ['Users per iteration', 2], ['Rounds per episode', 5], ['World seed', seed]];
  for (const [label, value] of fields) await page.getByLabel(label, { exact: true }).fill(String(value));
  await page.getByLabel('Engine', { exact: true }).selectOption(engine);
  await page.click('#mt-start');
}

async function noOverflow(page, what) {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.setViewportSize({ width: 1100, height: 900 });
  assert(overflow <= 0, `${what}: the page is ${overflow}px wider than a 390px screen`);
}

// A copy of bundle `bytes` in which every title at least as long as `markup` is replaced by it
// (padded with spaces to the same byte length), with the CRC-32 recomputed. Titles are a u32
// length and UTF-8 bytes ending in "(year)" (the synthetic catalog's), found by that shape.
function withTitles(bytes, markup) {
  const out = Buffer.from(bytes);
  const text = out.toString('latin1');
  let replaced = 0;
  for (const m of text.matchAll(/\(\d{4}\)/g)) {
    const end = m.index + m[0].length;
    for (let len = markup.length; len <= 120 && end - len - 4 >= 0; len++) {
      if (out.readUInt32LE(end - len - 4) === len) {
        out.write(markup.padEnd(len, ' '), end - len, 'latin1');
        replaced += 1;
        break;
      }
    }
  }
  out.writeUInt32LE(crc32(out.subarray(0, out.length - 4)), out.length - 4);
  return { bytes: out, replaced };
}

try {
  await runTests('e2e tabs', [
    {
      name: 'the generated TypeScript declarations type the JS API',
      fn: async () => {
        const dts = await readFile(path.join(REPO_ROOT, 'www', 'pkg', 'metarec.d.ts'), 'utf8');
        for (const want of [
          /static create\(bundle: Uint8Array \| number\[\], options_value\?: RecommenderOptions\): Promise<Recommender>/,
          /recommend\(k: number, greedy\?: boolean \| null\): Promise<Recommendation\[\]>/,
          /feedback\(item: string, reward: number\): Promise<void>/,
          /metaTrain\(options_value\?: MetaTrainOptions, on_progress\?: \(progress: MetaProgress\) => unknown\): Promise<Uint8Array>/,
          /engineInfo\(\): EngineInfo/,
          /export interface Recommendation \{[^}]*item: string;[^}]*title: string;[^}]*score: number;[^}]*propensity: number;/s,
          /step\(\): Promise<SimulationStep>/,
          /step\(\): Promise<MetaProgress>/,
          /export function self_check\(options\?: SelfCheckOptions\): Promise<SelfCheckReport>/,
        ]) {
          assert(want.test(dts), `metarec.d.ts lacks ${want}`);
        }
      },
    },
    {
      name: 'tabs; Simulate: held-out users against the baselines, pause/resume, live curves',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          const res = await page.goto(new URL(`?${SMALL}&view=simulate`, server.url).href, { waitUntil: 'load' });
          assert(res && res.status() === 200, `page answered ${res && res.status()}`);
          const tabs = await page.$$eval('[role="tablist"] [role="tab"]', (ts) => ts.map((t) => [t.textContent, t.getAttribute('aria-selected'), t.tabIndex]));
          assert(JSON.stringify(tabs) === JSON.stringify([['For you', 'false', -1], ['Simulate', 'true', 0], ['Meta-train', 'false', -1], ['Engine self-check', 'false', -1]]), `tabs: ${JSON.stringify(tabs)}`);
          // The engine links keep the other settings; the self-check's stay on its view.
          const links = await page.$$eval('nav.engine-choice', (navs) => navs.map((n) => [...n.querySelectorAll('a')].map((a) => [a.textContent, new URL(a.href).search, a.getAttribute('aria-current')])));
          const want = (view) => ['auto', 'gpu', 'cpu'].map((e) => [e === 'auto' ? 'auto' : e.toUpperCase(), `?${SMALL}${view}&engine=${e}`, e === 'auto' ? 'page' : null]);
          assert(JSON.stringify(links) === JSON.stringify([want(''), want('&view=selfcheck')]), `engine links: ${JSON.stringify(links)}`);
          await waitData(page, 'view-simulate', 'sim', ['ready', 'error', 'unavailable']);
          assert((await data(page, 'view-simulate', 'sim')) === 'ready', `Simulate: ${await page.textContent('#sim-status')}`);
          const options = await page.$$eval('#sim-users option', (o) => o.map((x) => x.textContent));
          assert(options.length === 52 && /^user #201 \(likes /.test(options[2]), `held-out users: ${options.slice(0, 3)}… (${options.length})`);
          assert(/held-out users #201 to #250/.test(await page.textContent('#sim-world')), 'world line');
          await page.getByLabel('Held-out users', { exact: true }).selectOption('first10');
          await page.getByLabel('Rounds per user', { exact: true }).fill('20');
          const t0 = Date.now();
          await page.getByRole('button', { name: 'Start' }).click();
          await pauseAt(page, 30);
          await waitData(page, 'view-simulate', 'sim', ['paused'], 30_000);
          assert((await page.textContent('#sim-pause')) === 'Resume', 'the pause button does not offer Resume');
          const paused = Number(await data(page, 'view-simulate', 'slates'));
          await page.waitForTimeout(700);
          assert(Number(await data(page, 'view-simulate', 'slates')) === paused, 'the simulation advanced while paused');
          await page.click('#sim-pause');
          await waitData(page, 'view-simulate', 'sim', ['done', 'error'], 120_000);
          assert((await data(page, 'view-simulate', 'sim')) === 'done', `Simulate: ${await page.textContent('#sim-status')}`);
          const c = await page.evaluate(() => window.metarecSimulate.curves());
          assert(c.users_done === 10 && c.slates === 200 && c.rounds.length === 20, `curves: ${JSON.stringify(c).slice(0, 300)}`);
          assert(c.methods.join() === 'meta-rl,no-adaptation,popularity,linucb,random', `methods ${c.methods}`);
          assert([...c.reward, ...c.cumulative].every((s) => s.length === 20 && s.every((x) => x >= 0 && x <= 1)), 'curve values');
          const charts = await page.evaluate(() => ['sim-reward-chart', 'sim-cum-chart'].map((id) => [document.getElementById(id).dataset.points, !!document.querySelector(`#${id} canvas`)]));
          assert(JSON.stringify(charts) === JSON.stringify([['20', true], ['20', true]]), `charts: ${JSON.stringify(charts)}`);
          assert((await page.$$('#sim-rows tr')).length === 5, 'a table row per method');
          const rates = c.methods.map((m, i) => `${m} ${c.cumulative[i][19].toFixed(3)}`).join(', ');
          console.log(`     10 held-out users × 20 rounds in ${((Date.now() - t0) / 1000).toFixed(1)} s; hit rate: ${rates}`);
          await mkdir(OUT_DIR, { recursive: true });
          await page.screenshot({ path: path.join(OUT_DIR, 'simulate.png'), fullPage: true });
          await noOverflow(page, 'Simulate');
          // Keyboard: arrow keys move along the tabs and show them.
          await page.focus('#tab-simulate');
          await page.keyboard.press('ArrowRight');
          const shown = await page.evaluate(() => [document.activeElement.id, document.getElementById('view-metatrain').hidden, document.getElementById('view-simulate').hidden, new URLSearchParams(location.search).get('view')]);
          assert(JSON.stringify(shown) === JSON.stringify(['tab-metatrain', false, true, 'metatrain']), `ArrowRight: ${JSON.stringify(shown)}`);
          await page.keyboard.press('Home');
          assert(!(await page.evaluate(() => document.getElementById('view-foryou').hidden)), 'Home does not show For you');
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: 'Simulate on WebGPU: a GPU device lost mid-run is replaced and the run completes',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          await page.goto(new URL(`?${SMALL}&view=simulate&engine=gpu`, server.url).href, { waitUntil: 'load' });
          await waitData(page, 'view-simulate', 'sim', ['ready', 'error', 'unavailable']);
          await page.getByLabel('Held-out users', { exact: true }).selectOption('0');
          await page.getByLabel('Rounds per user', { exact: true }).fill('4');
          await page.getByRole('button', { name: 'Start' }).click();
          await pauseAt(page, 1);
          await waitData(page, 'view-simulate', 'sim', ['paused'], 60_000);
          assert((await page.evaluate(() => window.metarecSimulate.engineInfo())).engine === 'gpu', 'Simulate does not run on the GPU engine');
          await page.evaluate(() => window.metarecSimulate.drill());
          await page.click('#sim-pause');
          await waitData(page, 'view-simulate', 'sim', ['done', 'error'], 120_000);
          assert((await data(page, 'view-simulate', 'sim')) === 'done', `Simulate: ${await page.textContent('#sim-status')}`);
          const c = await page.evaluate(() => window.metarecSimulate.curves());
          const info = await page.evaluate(() => window.metarecSimulate.engineInfo());
          assert(c.users_done === 1 && c.slates === 4, `curves after the drill: users_done ${c.users_done}, slates ${c.slates}`);
          assert(info.recoveries === 1 && info.engine === 'gpu', `engine after the drill: ${JSON.stringify(info)}`);
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: 'Meta-train on WebGPU: pause/resume, learning curves, For you and Simulate switch to the result, kept on reload',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          await page.goto(new URL(`?${SMALL}&view=metatrain`, server.url).href, { waitUntil: 'load' });
          await waitData(page, 'view-metatrain', 'mt', ['ready', 'error']);
          const before = await page.evaluate(() => window.metarecForYou.rec.engineInfo());
          await startMetaTrain(page, { iterations: 8, seed: 3, engine: 'gpu' });
          await waitData(page, 'view-metatrain', 'iteration', 2, 120_000);
          assert(/^GPU/.test(await page.textContent('#mt-engine-info')), `engine: ${await page.textContent('#mt-engine-info')}`);
          await page.getByRole('button', { name: 'Pause' }).click();
          await waitData(page, 'view-metatrain', 'mt', ['paused'], 60_000);
          const at = Number(await data(page, 'view-metatrain', 'iteration'));
          await page.waitForTimeout(700);
          assert(Number(await data(page, 'view-metatrain', 'iteration')) === at, 'training advanced while paused');
          assert(!(await page.isDisabled('#mt-use')), '"Use it for For you now" is disabled while paused');
          // The GPU device is lost while paused: the next iteration fails and the run continues
          // from its last checkpoint on a new device.
          await page.evaluate(() => window.metarecMetaTrain.drill());
          await page.getByRole('button', { name: 'Resume' }).click();
          await waitData(page, 'view-metatrain', 'mt', ['done', 'error'], 180_000);
          assert((await data(page, 'view-metatrain', 'mt')) === 'done', `Meta-train: ${await page.textContent('#mt-status')}`);
          assert((await data(page, 'view-metatrain', 'recoveries')) === '1', `recoveries: ${await data(page, 'view-metatrain', 'recoveries')}`);
          const h = await page.evaluate(() => window.metarecMetaTrain.history());
          assert(h.length === 8 && h.every((p, i) => p.iteration === i && Number.isFinite(p.mean_reward)), `history: ${JSON.stringify(h)}`);
          const charts = await page.evaluate(() => ['mt-reward-chart', 'mt-loss-chart'].map((id) => [document.getElementById(id).dataset.points, !!document.querySelector(`#${id} canvas`)]));
          assert(JSON.stringify(charts) === JSON.stringify([['8', true], ['8', true]]), `charts: ${JSON.stringify(charts)}`);
          const speed = await page.evaluate(() => window.metarecMetaTrain.speed());
          console.log(`     meta-training on WebGPU (SwiftShader), 300 items, 2 users × 5 rounds per iteration: ${speed.toFixed(2)} iterations/s; mean reward ${h.map((p) => p.mean_reward.toFixed(2)).join(' ')}`);
          await mkdir(OUT_DIR, { recursive: true });
          await page.screenshot({ path: path.join(OUT_DIR, 'metatrain.png'), fullPage: true });
          await noOverflow(page, 'Meta-train');
          // For you now recommends with it: a new person, the new bundle, a full slate.
          const label = await page.textContent('#fy-bundle');
          assert(/Meta-train tab \(8 of 8 iterations; 300 items, 200 users, seed 3\)/.test(label), `For you's bundle: ${label}`);
          const after = await page.evaluate(() => window.metarecForYou.rec.engineInfo());
          assert(after.engine === before.engine, `For you's engine changed: ${before.engine} → ${after.engine}`);
          assert((await page.evaluate(() => window.metarecForYou.rec.history())).length === 0, 'a new policy starts a new person');
          assert((await page.$$('#fy-slate li.slate-item')).length === 10, 'no slate from the new policy');
          // Simulate now simulates the new world.
          await page.getByRole('tab', { name: 'Simulate' }).click();
          await waitData(page, 'view-simulate', 'sim', ['ready', 'error', 'unavailable']);
          assert(/300 items, 200 training users, seed 3/.test(await page.textContent('#sim-world')), `Simulate: ${await page.textContent('#sim-world')}`);
          // A reaction works and the bundle is kept across a reload (no meta-training again).
          await page.click('#tab-foryou');
          await page.click('#fy-slate li.slate-item button.like');
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '1' && !document.getElementById('view-foryou').dataset.busy, null, { timeout: 30_000 });
          await page.reload({ waitUntil: 'load' });
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.foryou === 'ready', null, { timeout: READY_MS });
          assert(/seed 3/.test(await page.textContent('#fy-bundle')), `after reload: ${await page.textContent('#fy-bundle')}`);
          assert(!/meta-training/.test(await page.textContent('#fy-timings')), 'meta-trained again after the reload');
          assert((await page.evaluate(() => window.metarecForYou.rec.history())).length === 1, 'the reaction was not kept');
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: 'Meta-train: runs in a Worker (no long task on the main thread); a paused run survives a reload and finishes when resumed',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          await page.goto(new URL(`?${SMALL}&view=metatrain`, server.url).href, { waitUntil: 'load' });
          await waitData(page, 'view-metatrain', 'mt', ['ready', 'error']);
          // Meta-training runs in a Web Worker: no long task on the page's main thread.
          const t0 = await now(page);
          await startMetaTrain(page, { iterations: 400, seed: 4, engine: 'cpu' });
          await waitData(page, 'view-metatrain', 'iteration', 2, 120_000);
          await page.getByRole('button', { name: 'Pause' }).click();
          await waitData(page, 'view-metatrain', 'mt', ['paused'], 60_000);
          const long1 = await longTasksSince(page, t0);
          assert(long1.length === 0, `long tasks on the main thread while meta-training: ${JSON.stringify(long1)}`);
          const before = await page.evaluate(() => window.metarecMetaTrain.history());
          await page.reload({ waitUntil: 'load' });
          await waitData(page, 'view-metatrain', 'mt', ['paused', 'ready', 'error']);
          assert((await data(page, 'view-metatrain', 'mt')) === 'paused', `after reload: ${await page.textContent('#mt-status')}`);
          const after = await page.evaluate(() => window.metarecMetaTrain.history());
          assert(JSON.stringify(after) === JSON.stringify(before.map(({ iteration, mean_reward, loss, skipped_total }) => ({ iteration, mean_reward, loss, skipped_total }))), `history after reload: ${JSON.stringify(after)} vs ${JSON.stringify(before)}`);
          assert((await page.inputValue('#mt-seed')) === '4', 'the form does not show the restored run');
          const t1 = await now(page);
          await page.getByRole('button', { name: 'Resume' }).click();
          await waitData(page, 'view-metatrain', 'mt', ['done', 'error'], 180_000);
          assert((await data(page, 'view-metatrain', 'mt')) === 'done', `Meta-train: ${await page.textContent('#mt-status')}`);
          const long2 = await longTasksSince(page, t1);
          assert(long2.length === 0, `long tasks on the main thread while meta-training: ${JSON.stringify(long2)}`);
          const h = await page.evaluate(() => window.metarecMetaTrain.history());
          assert(h.length === 400 && h.every((p, i) => p.iteration === i), `history: ${h.length} iterations`);
          console.log(`     paused after ${before.length} iterations, reloaded, resumed: ${h.length} iterations`);
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: 'titles are rendered as text: a bundle whose every title is <svg onload> markup',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          await page.goto(new URL(`?${SMALL}`, server.url).href, { waitUntil: 'load' });
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.foryou === 'ready', null, { timeout: READY_MS });
          const bundle = await page.evaluate(
            () =>
              new Promise((resolve, reject) => {
                const req = indexedDB.open('metarec', 1);
                req.onsuccess = () => {
                  const store = req.result.transaction('kv').objectStore('kv');
                  const keys = store.getAllKeys();
                  keys.onsuccess = () => {
                    const get = store.get(keys.result.find((k) => String(k).startsWith('bundle:synthetic')));
                    get.onsuccess = () => resolve(Array.from(get.result));
                  };
                };
                req.onerror = () => reject(req.error);
              }),
          );
          // 16 bytes: as short as the shortest synthetic title ("Iron Echo (1990)"), so every
          // title is replaced and whatever the slate shows carries it
          const markup = '<svg onload=Q=1>';
          const evil = withTitles(bundle, markup);
          assert(evil.replaced === 300, `only ${evil.replaced} of 300 titles replaced`);
          await mkdir(OUT_DIR, { recursive: true });
          await writeFile(path.join(OUT_DIR, 'xss.bundle'), evil.bytes);
          await page.goto(new URL('?bundle=/out/xss.bundle', server.url).href, { waitUntil: 'load' });
          await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('view-foryou').dataset.foryou), null, { timeout: READY_MS });
          const seen = await page.evaluate(() => ({
            phase: document.getElementById('view-foryou').dataset.foryou,
            elements: document.querySelectorAll('#fy-slate svg, #fy-slate img').length,
            pwned: 'Q' in window,
            titles: [...document.querySelectorAll('#fy-slate .slate-title')].map((t) => t.textContent),
          }));
          assert(seen.phase === 'ready', `the markup bundle did not load: ${await page.textContent('#fy-notices')}`);
          assert(seen.titles.length === 10 && seen.titles.every((t) => t.startsWith(markup)), `not every title on the slate is the markup, as text: ${seen.titles}`);
          assert(seen.elements === 0 && !seen.pwned, `markup was parsed as HTML: ${JSON.stringify(seen)}`);
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
  ]);
} finally {
  await browser.close();
  await server.stop();
}
