// End-to-end test of a first visit to the demo: node tests/e2e/firstvisit.mjs
// Needs www/pkg and the default bundle (scripts/default-bundle.sh writes www/default.bundle and
// www/default.json; a missing default bundle is a failure, not a skip). Opens the page as a new
// visitor (fresh profile, no URL settings) and asserts that the default bundle was used (no
// in-page meta-training) and that recommendations were on screen within 2 s of the navigation.
// Prints the time to the first slate and the engine start.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

const LIMIT_MS = 2000;
const meta = path.join(REPO_ROOT, 'www', 'default.json');

const server = await startServer();
const browser = await launchChromium();
try {
  await runTests('e2e first visit', [
    {
      name: `a first visit shows recommendations from the default bundle within ${LIMIT_MS} ms`,
      fn: async () => {
        assert(existsSync(meta), 'www/default.json is missing: run scripts/default-bundle.sh first');
        const { world } = JSON.parse(readFileSync(meta, 'utf8'));
        const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
        const errors = [];
        try {
          const page = await context.newPage();
          page.on('pageerror', (err) => errors.push(String(err)));
          const phases = [];
          await page.exposeFunction('recordPhase', (p) => phases.push(p));
          await page.addInitScript(() => {
            new MutationObserver(() => {
              const v = document.getElementById('view-foryou');
              if (v) window.recordPhase(v.dataset.foryou);
            }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-foryou'] });
          });
          const res = await page.goto(server.url, { waitUntil: 'load' });
          assert(res && res.status() === 200, `page answered ${res && res.status()}`);
          await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('view-foryou').dataset.foryou), null, { timeout: 60_000, polling: 50 });
          const phase = await page.evaluate(() => document.getElementById('view-foryou').dataset.foryou);
          assert(phase === 'ready', `For you ended in ${phase}: ${await page.evaluate(() => window.metarecForYouError)}`);
          assert(!phases.includes('training'), `the first visit meta-trained in the page (phases ${phases.join(' → ')})`);
          const label = await page.textContent('#fy-bundle');
          assert(label.includes(`${world.items} items`) && label.includes('scripts/demo.sh'), `not the default bundle: ${label}`);
          const items = await page.$$eval('#fy-slate li.slate-item', (lis) => lis.length);
          assert(items === 10, `the slate has ${items} items`);
          const t = await page.evaluate(() => window.metarecForYou.timings());
          console.log(`     first slate ${t.firstSlate.toFixed(0)} ms after the navigation (engine start ${t.create.toFixed(0)} ms)`);
          assert(t.firstSlate <= LIMIT_MS, `first slate after ${t.firstSlate.toFixed(0)} ms, over ${LIMIT_MS} ms`);
          assert(errors.length === 0, `page errors: ${errors.join(' | ')}`);
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
