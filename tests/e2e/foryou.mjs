// End-to-end test of the "For you" view in headless Chromium: node tests/e2e/foryou.mjs
// Needs www/pkg (see selfcheck.mjs) and the default bundle (scripts/default-bundle.sh). Serves the
// page, opens it as a first visit (?person=1: the default bundle, 2,000 items, 60 iterations of
// first-order MAML meta-trained natively; without it the page meta-trains the same in a Worker), then through
// the page's own buttons: for 8 rounds (one reaction per slate) likes items of one genre (the
// most frequent in the first slate) and skips the top item when none is shown, and asserts that
// the genre's share of the slate rose by at least 0.3; 92 more reactions give a latency figure
// over 100 clicks; reloads and checks the state persisted (history, the same slate); "Forget me"
// resets it; a corrupted stored state is discarded with a notice; with ?engine=gpu runs the
// device-loss drill and checks the person's adapted network survived it (same greedy slate),
// the next reactions work, `recoveries` went up and history is intact. No request may leave the
// origin, no CSP violation, no page error. Screenshot: out/foryou.png. Latencies of all
// reactions are printed (median, p95).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

const OUT_DIR = path.join(REPO_ROOT, 'out');
const READY_MS = 1000 * Number(process.env.METAREC_E2E_TIMEOUT_S || 120);
// METAREC_E2E_FORYOU_QUERY overrides the first test's page settings (e.g. items=300&person=2).
// The first test opens the page as a visitor does: the default bundle (2,000 items, 1,000 users,
// 60 iterations, built by scripts/default-bundle.sh); person=1 gives the same exploration noise every run,
// so the genre-share assertion is reproducible (natively all of 60 simulated people gain at least
// 0.3; tests/adaptation.rs averages 8). The other tests use a smaller world.
const DEFAULT = process.env.METAREC_E2E_FORYOU_QUERY || 'person=1';
const SMALL = 'items=300&users=200&iterations=30&person=1';

const server = await startServer();
const origin = new URL(server.url).origin;
const browser = await launchChromium();
console.log(`chromium ${browser.version()}, page ${server.url}`);

// One browser context = one person's browser profile (IndexedDB persists across reloads in it).
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const log = { foreign: [], pageErrors: [], csp: [], failed: [], latencyLines: [] };
  context.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin) log.foreign.push(url);
  });
  context.on('requestfailed', (req) => log.failed.push(`${req.url()}: ${req.failure()?.errorText}`));
  const page = await context.newPage();
  page.on('websocket', (ws) => log.foreign.push(ws.url()));
  page.on('pageerror', (err) => log.pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Content-Security-Policy/i.test(text)) log.csp.push(text);
    if (text.startsWith('metarec adaptation')) log.latencyLines.push(text);
  });
  return { context, page, log };
}

function clean(log) {
  assert(log.foreign.length === 0, `requests left the origin: ${log.foreign.join(', ')}`);
  assert(log.csp.length === 0, `CSP violations: ${log.csp.join(' | ')}`);
  assert(log.pageErrors.length === 0, `uncaught page errors: ${log.pageErrors.join(' | ')}`);
  assert(log.failed.length === 0, `failed requests: ${log.failed.join(', ')}`);
}

async function open(page, query) {
  const res = await page.goto(new URL(`?${query}`, server.url).href, { waitUntil: 'load' });
  assert(res && res.status() === 200, `page answered ${res && res.status()}`);
  await waitReady(page);
}

async function waitReady(page) {
  await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('view-foryou').dataset.foryou), null, {
    timeout: READY_MS,
    polling: 200,
  });
  const phase = await page.evaluate(() => document.getElementById('view-foryou').dataset.foryou);
  if (phase !== 'ready') {
    throw new Error(`For you ended in ${phase}: ${await page.evaluate(() => window.metarecForYouError)}`);
  }
}

const slate = (page) =>
  page.$$eval('#fy-slate li.slate-item', (lis) => lis.map((li) => ({ item: li.dataset.item, genres: li.dataset.genres.split('|').filter(Boolean) })));
const reactions = (page) => page.evaluate(() => Number(document.getElementById('view-foryou').dataset.reactions));
const share = (s, g) => s.filter((x) => x.genres.includes(g)).length / Math.max(1, s.length);
// The genre most items of the slate have (ties: the first in the slate's order).
function mostFrequentGenre(s) {
  const counts = new Map();
  for (const x of s) for (const g of x.genres) counts.set(g, (counts.get(g) || 0) + 1);
  let best = null;
  for (const [g, n] of counts) if (best === null || n > counts.get(best)) best = g;
  return best;
}
const notices = (page) => page.$$eval('#fy-notices li', (lis) => lis.map((li) => li.textContent));

// One reaction through the page's buttons; waits until the slate was re-rendered.
async function reactOnce(page, genre) {
  const before = await reactions(page);
  const s = await slate(page);
  const hit = s.find((x) => x.genres.includes(genre));
  const target = hit || s[0];
  await page.click(`#fy-slate li[data-item="${target.item}"] button.${hit ? 'like' : 'skip'}`);
  await page.waitForFunction((n) => Number(document.getElementById('view-foryou').dataset.reactions) > n && !document.getElementById('view-foryou').dataset.busy, before, { timeout: 30_000, polling: 20 });
}

const history = (page) => page.evaluate(() => window.metarecForYou.rec.history());
const info = (page) => page.evaluate(() => window.metarecForYou.rec.engineInfo());

let genre = null;
const learned = { start: null, end: null, rounds: [] };

try {
  await runTests('e2e foryou', [
    {
      name: 'first visit (default bundle); 8 rounds liking one genre; reload restores; Forget me resets',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          const t0 = Date.now();
          await open(page, DEFAULT);
          console.log(`     first visit ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
          const i0 = await info(page);
          assert(i0.engine === 'cpu', `auto on SwiftShader should pick the CPU engine, got ${JSON.stringify(i0)}`);
          const badge = await page.textContent('#fy-badges');
          assert(/CPU engine/.test(badge) && /fallback|software/i.test(badge), `no fallback badge: ${badge}`);
          let s = await slate(page);
          assert(s.length === 10, `slate has ${s.length} items`);
          genre = mostFrequentGenre(s);
          learned.start = share(s, genre);
          for (let round = 0; round < 8; round++) {
            await reactOnce(page, genre);
            learned.rounds.push(share(await slate(page), genre));
          }
          s = await slate(page);
          learned.end = share(s, genre);
          console.log(`     genre ${genre}: share of the slate ${learned.start} at the start; after each round ${learned.rounds.join(' ')}`);
          assert(learned.end >= learned.start + 0.3, `genre share did not rise: ${learned.start} → ${learned.end}`);
          // 92 more reactions (same rule), so that the latency figure is over 100 clicks.
          for (let i = 0; i < 92; i++) await reactOnce(page, genre);
          s = await slate(page);
          learned.after100 = share(s, genre);
          const h = await history(page);
          assert(h.length === 100, `history has ${h.length} reactions`);
          const lat = await page.evaluate(() => window.metarecForYou.stats());
          console.log(`     adaptation latency (click → new slate rendered) over ${lat.n}: median ${lat.median.toFixed(2)} ms, p95 ${lat.p95.toFixed(2)} ms`);
          const chart = await page.evaluate(() => ({ points: document.getElementById('fy-chart').dataset.points, canvas: !!document.querySelector('#fy-chart canvas'), summary: document.getElementById('fy-learning-summary').textContent }));
          assert(chart.canvas && chart.points === '100', `Learning chart: ${JSON.stringify(chart)}`);
          console.log(`     Learning panel: ${chart.summary}`);
          assert(log.latencyLines.length === 100, `${log.latencyLines.length} latency lines logged`);
          await mkdir(OUT_DIR, { recursive: true });
          await page.screenshot({ path: path.join(OUT_DIR, 'foryou.png'), fullPage: true });
          // A smaller one, the top of the page at 820 px (docs/foryou.png is a copy of it).
          await page.setViewportSize({ width: 820, height: 980 });
          await page.screenshot({ path: path.join(OUT_DIR, 'foryou-small.png') });
          await page.setViewportSize({ width: 1100, height: 900 });

          // Reload: the bundle comes from IndexedDB (no meta-training), the state is restored.
          const slateBefore = s.map((x) => x.item).join(',');
          await page.reload({ waitUntil: 'load' });
          await waitReady(page);
          const timings = await page.textContent('#fy-timings');
          assert(!/meta-training/.test(timings), `the bundle was meta-trained again: ${timings}`);
          const h2 = await history(page);
          assert(JSON.stringify(h2) === JSON.stringify(h), 'history not restored after reload');
          const s2 = await slate(page);
          console.log(`     after reload: ${h2.length} reactions restored; genre share ${share(s2, genre)} (was ${learned.after100}); same items: ${s2.map((x) => x.item).join(',') === slateBefore}`);
          assert(Math.abs(share(s2, genre) - learned.after100) <= 0.2, `genre share changed on reload: ${learned.after100} → ${share(s2, genre)}`);
          assert(s2.map((x) => x.item).join(',') === slateBefore, 'the reloaded page shows another slate');
          const why = await page.$$eval('#fy-slate .slate-why', (n) => n.length);
          console.log(`     "why" lines shown: ${why}`);

          // Forget me.
          await page.getByRole('button', { name: 'Forget me' }).click();
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '0', null, { timeout: 30_000 });
          assert((await history(page)).length === 0, 'history not empty after Forget me');
          await page.reload({ waitUntil: 'load' });
          await waitReady(page);
          assert((await history(page)).length === 0, 'history came back after Forget me and a reload');

          // A corrupted stored state is discarded with a notice.
          await reactOnce(page, genre);
          await page.evaluate(
            () =>
              new Promise((resolve, reject) => {
                const req = indexedDB.open('metarec', 1);
                req.onsuccess = () => {
                  const tx = req.result.transaction('kv', 'readwrite');
                  const store = tx.objectStore('kv');
                  const all = store.getAllKeys();
                  all.onsuccess = () => {
                    for (const k of all.result) if (String(k).startsWith('state:')) store.put({ bytes: new Uint8Array([77, 82, 83, 69, 83, 83, 57, 57, 1, 2, 3]) }, k);
                  };
                  tx.oncomplete = () => resolve();
                  tx.onerror = () => reject(tx.error);
                };
                req.onerror = () => reject(req.error);
              }),
          );
          await page.reload({ waitUntil: 'load' });
          await waitReady(page);
          const n = await notices(page);
          assert(n.some((t) => /could not be restored/.test(t)), `no notice about the discarded state: ${JSON.stringify(n)}`);
          assert((await history(page)).length === 0, 'corrupted state was not discarded');
          assert((await slate(page)).length === 10, 'no slate after a discarded state');
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: '?engine=gpu: device-loss drill, the next reactions (buttons and the S key) work, recoveries up, history intact',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          await open(page, `${SMALL}&engine=gpu`);
          const i0 = await info(page);
          assert(i0.engine === 'gpu', `engine ${JSON.stringify(i0)}`);
          const g = (await slate(page))[0].genres[0];
          for (let i = 0; i < 3; i++) await reactOnce(page, g);
          const h0 = await history(page);
          const greedy = () => page.evaluate(async () => (await window.metarecForYou.rec.recommend(10, true)).map((r) => r.item).join(','));
          const before = await greedy();
          await page.getByRole('button', { name: 'Device-loss drill' }).click();
          assert((await greedy()) === before, 'the adapted network did not survive the device loss (another greedy slate)');
          for (let i = 0; i < 3; i++) await reactOnce(page, g);
          // Keyboard (WCAG 2.1.4): S with the focus outside the list does nothing; with the
          // focus on an item it skips that item.
          const first = (await slate(page))[0].item;
          await page.evaluate(() => document.activeElement && document.activeElement.blur());
          await page.keyboard.press('s');
          // a reaction marks the view busy synchronously, in the key's handler
          const acted = await page.evaluate(() => {
            const v = document.getElementById('view-foryou');
            return Boolean(v.dataset.busy) || v.dataset.reactions !== '6';
          });
          assert(!acted, 'S acted with the focus outside the list');
          await page.focus('#fy-slate li.slate-item button.like');
          await page.keyboard.press('s');
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '7' && !document.getElementById('view-foryou').dataset.busy, null, { timeout: 30_000 });
          const i1 = await info(page);
          const h1 = await history(page);
          assert(JSON.stringify(h1[6]) === JSON.stringify([first, 0]), `the S key did not skip ${first}: ${JSON.stringify(h1[6])}`);
          assert(i1.recoveries > i0.recoveries, `recoveries ${i0.recoveries} → ${i1.recoveries}`);
          assert(h1.length === 7 && JSON.stringify(h1.slice(0, 3)) === JSON.stringify(h0), `history after the drill: ${JSON.stringify(h1)}`);
          assert((await slate(page)).length === 10, 'no slate after the drill');
          const status = await page.textContent('#fy-engine');
          assert(/recovered/.test(status), `status bar does not show the recovery: ${status}`);
          console.log(`     ${JSON.stringify(i1)}`);
          clean(log);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: 'export → import of the state as a file (picker and drop); ?bundle= a same-origin file; a foreign ?bundle= is refused without a request',
      fn: async () => {
        const { context, page, log } = await newContext();
        try {
          await open(page, SMALL);
          const g = (await slate(page))[0].genres[0];
          for (let i = 0; i < 4; i++) await reactOnce(page, g);
          const h = await history(page);
          const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export my state' }).click()]);
          await mkdir(OUT_DIR, { recursive: true });
          const statePath = path.join(OUT_DIR, 'e2e-state.bin');
          await download.saveAs(statePath);
          // The bundle the page trained, read back from IndexedDB, saved under out/ (served).
          const bundle = await page.evaluate(
            () =>
              new Promise((resolve, reject) => {
                const req = indexedDB.open('metarec', 1);
                req.onsuccess = () => {
                  const store = req.result.transaction('kv').objectStore('kv');
                  const keys = store.getAllKeys();
                  keys.onsuccess = () => {
                    const k = keys.result.find((x) => String(x).startsWith('bundle:synthetic'));
                    const get = store.get(k);
                    get.onsuccess = () => resolve(Array.from(get.result));
                  };
                };
                req.onerror = () => reject(req.error);
              }),
          );
          await writeFile(path.join(OUT_DIR, 'e2e.bundle'), Buffer.from(bundle));
          await page.getByRole('button', { name: 'Forget me' }).click();
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '0', null, { timeout: 30_000 });
          await page.setInputFiles('#fy-import', statePath);
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '4', null, { timeout: 30_000 });
          assert(JSON.stringify(await history(page)) === JSON.stringify(h), 'imported history differs');
          // Dropping the state file on the page imports it too.
          await page.getByRole('button', { name: 'Forget me' }).click();
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '0', null, { timeout: 30_000 });
          const stateBytes = Array.from(await readFile(statePath));
          await page.evaluate((bytes) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'dropped-state.bin'));
            document.getElementById('fy-slate').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
          }, stateBytes);
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.reactions === '4', null, { timeout: 30_000 });
          assert(JSON.stringify(await history(page)) === JSON.stringify(h), 'dropped state: history differs');
          // A file that is not a state: a notice, nothing changes.
          const junk = path.join(OUT_DIR, 'e2e-junk.bin');
          await writeFile(junk, 'not a state');
          await page.setInputFiles('#fy-import', junk);
          await page.waitForFunction(() => [...document.querySelectorAll('#fy-notices li')].some((li) => /Could not use e2e-junk/.test(li.textContent)), null, { timeout: 30_000 });
          assert((await history(page)).length === 4, 'a bad import changed the history');
          clean(log);

          // ?bundle= a same-origin file: no meta-training, the bundle's path in the status bar.
          await open(page, 'bundle=/out/e2e.bundle');
          assert(!/meta-training/.test(await page.textContent('#fy-timings')), 'meta-trained despite ?bundle=');
          assert(/e2e\.bundle/.test(await page.textContent('#fy-bundle')), 'bundle label');
          assert((await slate(page)).length === 10, 'no slate from ?bundle=');
          await page.setViewportSize({ width: 390, height: 844 });
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
          assert(overflow <= 0, `page is ${overflow}px wider than a 390px screen`);
          // Another origin: refused before any request.
          await page.goto(new URL('?bundle=http://203.0.113.1/x.bundle', server.url).href, { waitUntil: 'load' });
          await page.waitForFunction(() => document.getElementById('view-foryou').dataset.foryou === 'error', null, { timeout: 30_000 });
          assert(/origin/.test(await page.textContent('#fy-notices')), 'no explanation for the foreign bundle');
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
