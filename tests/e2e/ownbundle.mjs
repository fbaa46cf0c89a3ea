// A bundle of a site's own items, made by the CLI, in the page: node tests/e2e/ownbundle.mjs
// Needs www/pkg (scripts/test.sh builds it) and the CLI (target/release/metarec, built by the
// cargo test stage; METAREC_CLI overrides). Writes a 30-item CSV of books (tags, years,
// descriptions; not MovieLens), runs `metarec bundle --items` and `metarec inspect --json`,
// then opens the page with ?bundle= that file: For you recommends those books, and a reaction
// works. Then the page's own path: "Use your own catalog…" with the same CSV meta-trains over it
// in a Worker and switches For you to it; a CSV with an empty title is refused with its line.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

const CLI = process.env.METAREC_CLI || path.join(REPO_ROOT, process.env.CARGO_TARGET_DIR || 'target', 'release', 'metarec');
const OUT_DIR = path.join(REPO_ROOT, 'out');
const TAGS = ['fantasy', 'history', 'cooking', 'science', 'poetry'];
const BOOKS = Array.from({ length: 30 }, (_, i) => ({
  id: `isbn-${String(i).padStart(3, '0')}`,
  title: `Book ${i}, part ${(i % 3) + 1}`,
  tags: [TAGS[i % 5], TAGS[(i + 2) % 5]],
  year: 1990 + i,
}));

assert(existsSync(CLI), `no CLI at ${CLI}: run cargo test --release --features cli (or build it) first, or set METAREC_CLI`);
mkdirSync(OUT_DIR, { recursive: true });
const csv = path.join(OUT_DIR, 'e2e-books.csv');
const bundle = path.join(OUT_DIR, 'e2e-books.bundle');
writeFileSync(
  csv,
  `id,title,tags,year,description\n${BOOKS.map((b) => `${b.id},"${b.title}",${b.tags.join('|')},${b.year},About ${b.tags[0]}`).join('\n')}\n`,
);

const server = await startServer();
const browser = await launchChromium();
try {
  await runTests('e2e own bundle', [
    {
      name: 'metarec bundle --items books.csv, metarec inspect --json',
      fn: () => {
        execFileSync(CLI, ['bundle', '--items', csv, '--out', bundle, '--iterations', '10', '--users', '100'], { stdio: 'pipe' });
        const info = JSON.parse(execFileSync(CLI, ['inspect', bundle, '--json'], { encoding: 'utf8' }));
        assert(info.items === 30 && info.algorithm === 'fomaml' && /e2e-books\.csv/.test(info.trained_on), JSON.stringify(info));
      },
    },
    {
      name: 'the page loads that bundle (?bundle=): For you recommends the books, a reaction works',
      fn: async () => {
        const context = await browser.newContext();
        const page = await context.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        try {
          const res = await page.goto(new URL('?bundle=/out/e2e-books.bundle', server.url).href, { waitUntil: 'load' });
          assert(res && res.status() === 200, `page answered ${res && res.status()}`);
          await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('view-foryou').dataset.foryou), null, { timeout: 120_000, polling: 200 });
          const phase = await page.evaluate(() => document.getElementById('view-foryou').dataset.foryou);
          assert(phase === 'ready', `For you ended in ${phase}: ${await page.evaluate(() => window.metarecForYouError)}`);
          const slate = await page.$$eval('#fy-slate li.slate-item', (lis) => lis.map((li) => ({ item: li.dataset.item, tags: li.dataset.genres.split('|').filter(Boolean), text: li.textContent })));
          assert(slate.length === 10, `slate of ${slate.length}`);
          for (const s of slate) {
            const b = BOOKS.find((x) => x.id === s.item);
            assert(b && s.text.includes(b.title), `not a book of the CSV: ${JSON.stringify(s)}`);
            assert(JSON.stringify([...s.tags].sort()) === JSON.stringify([...b.tags].sort()), `tags of ${s.item}: ${s.tags}`);
          }
          await page.click(`#fy-slate li[data-item="${slate[0].item}"] button.like`);
          await page.waitForFunction(() => Number(document.getElementById('view-foryou').dataset.reactions) === 1 && !document.getElementById('view-foryou').dataset.busy, null, { timeout: 30_000, polling: 50 });
          assert(errors.length === 0, `page errors: ${errors.join(' | ')}`);
        } finally {
          await context.close();
        }
      },
    },
    {
      name: '"Use your own catalog…": the page meta-trains over the CSV in a Worker and recommends the books; a bad CSV names its line',
      fn: async () => {
        const context = await browser.newContext();
        const page = await context.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        const ready = () => page.waitForFunction(() => document.getElementById('view-foryou').dataset.foryou === 'ready', null, { timeout: 120_000, polling: 200 });
        try {
          await page.goto(new URL('?items=300&users=100&iterations=2&person=1', server.url).href, { waitUntil: 'load' });
          await ready();
          const bad = path.join(OUT_DIR, 'e2e-books-bad.csv');
          writeFileSync(bad, 'id,title,tags\nb1,One,poetry\nb2,,poetry\n');
          await page.setInputFiles('#fy-catalog-file', bad);
          await page.waitForFunction(() => /e2e-books-bad\.csv/.test(document.getElementById('fy-notices').textContent), null, { timeout: 60_000 });
          const notice = await page.textContent('#fy-notices');
          assert(/e2e-books-bad\.csv:3/.test(notice) && /title/.test(notice) && !/\[catalog-row\]/.test(notice), `notice: ${notice}`);
          await page.setInputFiles('#fy-catalog-file', csv);
          await page.waitForFunction(
            () => /your catalog e2e-books\.csv, 30 items/.test(document.getElementById('fy-bundle').textContent) || /Could not use e2e-books\.csv/.test(document.getElementById('fy-notices').textContent),
            null,
            { timeout: 180_000, polling: 200 },
          );
          assert(!/Could not use e2e-books\.csv/.test(await page.textContent('#fy-notices')), `refused: ${await page.textContent('#fy-notices')}`);
          const slate = await page.$$eval('#fy-slate li.slate-item', (lis) => lis.map((li) => ({ item: li.dataset.item, text: li.textContent })));
          assert(slate.length === 10 && slate.every((s) => BOOKS.some((b) => b.id === s.item && s.text.includes(b.title))), `slate: ${JSON.stringify(slate)}`);
          await page.click(`#fy-slate li[data-item="${slate[0].item}"] button.like`);
          await page.waitForFunction(() => Number(document.getElementById('view-foryou').dataset.reactions) === 1 && !document.getElementById('view-foryou').dataset.busy, null, { timeout: 30_000, polling: 50 });
          // kept on reload
          await page.reload({ waitUntil: 'load' });
          await ready();
          assert(/your catalog e2e-books\.csv/.test(await page.textContent('#fy-bundle')), `after reload: ${await page.textContent('#fy-bundle')}`);
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
