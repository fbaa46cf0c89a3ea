// The npm package as a web developer gets it: node tests/e2e/package.mjs
// Needs pkg/ built by scripts/package.sh (scripts/test.sh's e2e stage runs it). Packs it with
// `npm pack`, installs the tarball into a fresh folder (offline, from the file), checks what
// the tarball holds (licences, package.json fields, no benchmark classes, types without the
// any type) and type-checks examples/ts/app.ts against the installed package with tsc; then
// serves that folder and, in headless Chromium, a page and a module Worker import the package
// from its node_modules, build a 20-item catalog from JSON made here, create a recommender
// over it, react 10 times, recommend, run overlapping calls on one object, abort a long call,
// use a disposed object, and get MetarecError codes for bad bundles and bad catalogs.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

const TIMEOUT_MS = 1000 * Number(process.env.METAREC_E2E_TIMEOUT_S || 180);
const PKG = path.join(REPO_ROOT, 'pkg');
const TSC = process.env.METAREC_TSC || path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

// The catalog: 20 items with categories, years, descriptions and a 3-number embedding.
const KINDS = ['shoes', 'hats', 'bags', 'coats'];
const ITEMS = Array.from({ length: 20 }, (_, i) => ({
  id: `sku-${i + 1}`,
  title: `Product ${i + 1}`,
  categories: [KINDS[i % 4], i % 3 === 0 ? 'sale' : 'new'],
  year: 2010 + i,
  description: `Description of product ${i + 1}`,
  embedding: [i / 20, (i % 5) / 5, 1 - i / 20],
}));

// What the page and the worker run (an ES module served next to the installed package).
const APP = `import { Catalog, MetaTrainer, MetarecError, Recommender } from './node_modules/metarec/index.js';

const ITEMS = ${JSON.stringify(ITEMS)};

async function failure(promise) {
  try {
    await promise;
    return { code: 'none', message: 'no error' };
  } catch (e) {
    return { code: e instanceof MetarecError ? e.code : 'not a MetarecError: ' + (e && e.name), message: String(e && e.message), isError: e instanceof Error };
  }
}

export async function run(engine) {
  const world = { engine, iterations: 3, users: 24, usersPerIteration: 4, rounds: 5, seed: 3 };
  const catalog = await Catalog.fromJSON(ITEMS.map((it) => ({ ...it, embedding: new Float32Array(it.embedding) })));
  const progress = [];
  const rec = await Recommender.fromCatalog(catalog, { ...world, onProgress: (p) => { progress.push(p.iteration); } });
  const reactions = [];
  for (let i = 0; i < 10; i++) {
    const [first] = await rec.recommend(3);
    await rec.feedback(first.id, i % 2);
    reactions.push(first.id);
  }
  const slate = await rec.recommend(5);
  // overlapping calls on one object: queued, never "recursive use of an object"
  const [a, b, history, info] = await Promise.all([rec.recommend(2), rec.recommend(2), rec.history(), rec.engineInfo()]);
  const overlap = { a: a.length, b: b.length, history: history.length, engine: info.engine };

  const abort = new AbortController();
  const aborted = await failure(rec.metaTrain({ ...world, onProgress: () => abort.abort() , signal: abort.signal }));
  const afterAbort = (await rec.recommend(1))[0];

  const trainer = await MetaTrainer.create({ ...world, iterations: 1, catalog });
  await trainer.step();
  const bundle = await trainer.bundle();
  trainer.dispose();
  const versioned = bundle.slice();
  versioned[8] = 99;
  const truncated = bundle.slice(0, bundle.length - 10);
  rec.dispose();
  const disposed = await failure(rec.recommend(1));
  catalog.dispose();

  const bad = {
    missingId: await failure(Catalog.fromJSON([ITEMS[0], { title: 'No id' }])),
    duplicateId: await failure(Catalog.fromCSV('id,title,categories\\na,A,x\\nb,B,y\\na,C,z\\n')),
    emptyTitle: await failure(Catalog.fromCSV('id,title,categories\\na,A,x\\nb,,y\\n')),
    embedding: await failure(Catalog.fromJSON([ITEMS[0], { ...ITEMS[1], embedding: [1, 2] }])),
    notUtf8: await failure(Catalog.fromCSV(new Uint8Array([...new TextEncoder().encode('id,title\\n1,A\\n2,Caf'), 0xe9, 10]))),
    empty: await failure(Catalog.fromJSON([])),
    bundleVersion: await failure(Recommender.create(versioned, { engine })),
    bundleCorrupt: await failure(Recommender.create(truncated, { engine })),
  };
  return { progress, reactions, slate, overlap, aborted, afterAbort: afterAbort && afterAbort.id, disposed, bad, used: info.engine };
}
`;

// The README's "Use it on your own site" example, as written there, with `items` and `bar`.
function readmeExample() {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const m = /<!-- package-example[^>]*-->\n```js\n([\s\S]*?)```/.exec(readme);
  assert(m, 'README.md has no package-example block');
  assert(m[1].trim().split('\n').length <= 10, 'the README example is longer than 10 lines');
  const body = m[1].replace('from "metarec"', "from './node_modules/metarec/index.js'");
  return `const items = ${JSON.stringify(ITEMS)};\nconst bars = [];\nconst bar = (i) => bars.push(i);\n${body}\nexport { next, bars };\n`;
}

const WORKER = `import { run } from './app.js';
self.onmessage = async ({ data: { engine } }) => {
  try {
    self.postMessage({ ok: true, result: await run(engine) });
  } catch (e) {
    self.postMessage({ ok: false, error: String((e && e.code) || '') + ' ' + String((e && e.message) || e) });
  }
};
`;

const PAGE = `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>a site using the metarec package</title>
<p>tests/e2e/package.mjs runs app.js here and in worker.js.</p></html>
`;

function sh(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Without comments: the declarations only. */
function code(ts) {
  return ts.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

function checkResult(result, engine) {
  assert(JSON.stringify(result.progress) === '[0,1,2]', `fromCatalog progress: ${JSON.stringify(result.progress)}`);
  assert(result.reactions.length === 10, `reactions: ${result.reactions.length}`);
  const ids = new Set(ITEMS.map((it) => it.id));
  assert(result.reactions.every((id) => ids.has(id)), `reactions outside the catalog: ${result.reactions}`);
  assert(result.slate.length === 5, `slate: ${result.slate.length}`);
  for (const r of result.slate) {
    const it = ITEMS.find((x) => x.id === r.id);
    assert(it, `unknown recommended id ${r.id}`);
    assert(!result.reactions.includes(r.id), `${r.id} recommended again after a reaction`);
    assert(
      r.title === it.title && JSON.stringify([...r.categories].sort()) === JSON.stringify([...it.categories].sort())
        && r.year === it.year && r.description === it.description,
      `the item's own fields: ${JSON.stringify(r)} for ${JSON.stringify(it)}`,
    );
    assert(Number.isFinite(r.score) && r.propensity > 0 && r.propensity <= 1, `score/propensity: ${JSON.stringify(r)}`);
  }
  const o = result.overlap;
  assert(o.a === 2 && o.b === 2 && o.history === 10, `overlapping calls: ${JSON.stringify(o)}`);
  assert(result.used === engine, `engine ${result.used}, asked for ${engine}`);
  assert(result.aborted.code === 'aborted' && result.aborted.isError, `abort: ${JSON.stringify(result.aborted)}`);
  assert(ids.has(result.afterAbort), `after the abort the recommender still serves the catalog: ${result.afterAbort}`);
  assert(result.disposed.code === 'disposed', `after dispose: ${JSON.stringify(result.disposed)}`);
  const want = {
    missingId: ['catalog-row', /items\.json: item 2 \(id\)/],
    duplicateId: ['catalog-row', /items\.csv:4: field 1 \(id\).*"a" again/],
    emptyTitle: ['catalog-row', /items\.csv:3: field 2 \(title\)/],
    embedding: ['catalog-row', /item 2 \(embedding\): expected 3 numbers/],
    notUtf8: ['catalog-row', /items\.csv:3: not UTF-8/],
    empty: ['catalog-row', /no items/],
    bundleVersion: ['bundle-version', /unsupported version/],
    bundleCorrupt: ['bundle-corrupt', /truncated/],
  };
  for (const [k, [c, re]] of Object.entries(want)) {
    const got = result.bad[k];
    assert(got.code === c && re.test(got.message), `${k}: ${JSON.stringify(got)}, expected ${c} ${re}`);
  }
}

// ---- pack, install into a fresh folder, check the tarball and the types ----
assert(existsSync(path.join(PKG, 'index.js')), 'pkg/ is not built: run scripts/package.sh');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'metarec-package-'));
const site = path.join(tmp, 'site');
let server;
let browser;
try {
  const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', tmp], PKG))[0];
  const tarball = path.join(tmp, packed.filename);
  mkdirSync(site);
  writeFileSync(path.join(site, 'package.json'), JSON.stringify({ name: 'a-site', private: true, type: 'module' }));
  sh('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], site);
  const installed = path.join(site, 'node_modules', 'metarec');
  writeFileSync(path.join(site, 'index.html'), PAGE);
  writeFileSync(path.join(site, 'app.js'), APP);
  writeFileSync(path.join(site, 'worker.js'), WORKER);
  writeFileSync(path.join(site, 'readme.js'), readmeExample());
  server = await startServer({ root: site });
  browser = await launchChromium();

  async function inPage(engine, worker) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(String(err)));
    page.on('console', (msg) => {
      if (/Content Security Policy|recursive use/i.test(msg.text())) problems.push(msg.text());
    });
    try {
      const response = await page.goto(server.url, { waitUntil: 'load' });
      assert(response && response.status() === 200, `the site answered ${response && response.status()}`);
      const out = await page.evaluate(
        ({ engine, worker, timeout }) =>
          new Promise((resolve) => {
            const timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${timeout} ms` }), timeout);
            const done = (v) => {
              clearTimeout(timer);
              resolve(v);
            };
            if (!worker) {
              import('/app.js')
                .then((m) => m.run(engine))
                .then((result) => done({ ok: true, result }), (e) => done({ ok: false, error: `${e && e.code} ${e && e.message}` }));
              return;
            }
            const w = new Worker('/worker.js', { type: 'module' });
            w.onmessage = ({ data }) => {
              w.terminate();
              done(data);
            };
            w.onerror = (e) => done({ ok: false, error: `worker error: ${e.message}` });
            w.postMessage({ engine });
          }),
        { engine, worker, timeout: TIMEOUT_MS },
      );
      assert(out.ok, `${worker ? 'the worker' : 'the page'} failed: ${out.error}`);
      checkResult(out.result, engine);
      assert(problems.length === 0, `page problems: ${problems.join('\n')}`);
    } finally {
      await context.close();
    }
  }

  await runTests('e2e package', [
    {
      name: 'npm pack: licences, package.json (exports, types, keywords), no benchmark classes',
      fn: () => {
        const files = packed.files.map((f) => f.path);
        for (const f of ['LICENSE-MIT', 'LICENSE-APACHE', 'index.js', 'index.d.ts', 'metarec.js', 'metarec_bg.wasm', 'package.json']) {
          assert(files.includes(f), `the tarball lacks ${f}: ${files}`);
        }
        const pkg = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8'));
        assert(pkg.name === 'metarec' && pkg.license === 'MIT OR Apache-2.0', `package.json: ${pkg.name} ${pkg.license}`);
        assert(pkg.types === './index.d.ts' && pkg.exports['.'].default === './index.js', `entry: ${JSON.stringify(pkg.exports)}`);
        assert(pkg.keywords.length > 0 && pkg.description && pkg.repository, 'keywords, description, repository');
        const raw = readFileSync(path.join(installed, 'metarec.d.ts'), 'utf8');
        assert(!/Bench|bench_/.test(raw), 'the benchmark classes are in the package');
      },
    },
    {
      name: 'the public types never use the any type; examples/ts/app.ts type-checks against the installed package',
      fn: () => {
        const dts = code(readFileSync(path.join(installed, 'index.d.ts'), 'utf8'));
        const anys = dts.split('\n').filter((l) => /\bany\b/.test(l));
        assert(anys.length === 0, `any in index.d.ts: ${anys.join('\n')}`);
        assert(existsSync(TSC), `no TypeScript compiler at ${TSC} (npm ci installs it; METAREC_TSC overrides)`);
        const ts = path.join(site, 'ts');
        cpSync(path.join(REPO_ROOT, 'examples', 'ts', 'app.ts'), path.join(ts, 'app.ts'));
        const config = JSON.parse(readFileSync(path.join(REPO_ROOT, 'examples', 'ts', 'tsconfig.json'), 'utf8'));
        delete config.compilerOptions.paths; // resolve "metarec" from node_modules, as a site would
        writeFileSync(path.join(ts, 'tsconfig.json'), JSON.stringify(config));
        try {
          sh(process.execPath, [TSC, '-p', ts], site);
        } catch (e) {
          throw new Error(`tsc: ${e.stdout}${e.stderr}`);
        }
      },
    },
    { name: 'in a page: a 20-item JSON catalog, 10 reactions, recommendations, errors', fn: () => inPage('cpu', false) },
    { name: 'in a module Worker: the same', fn: () => inPage('cpu', true) },
    {
      name: "the README's example as written (default engine, 20 meta-iterations) in a page",
      fn: async () => {
        const context = await browser.newContext();
        const page = await context.newPage();
        try {
          await page.goto(server.url, { waitUntil: 'load' });
          const out = await page.evaluate(() =>
            import('/readme.js').then(
              (m) => ({ ok: true, next: m.next, bars: m.bars }),
              (e) => ({ ok: false, error: `${e && e.code} ${e && e.message}` }),
            ),
          );
          assert(out.ok, `the README example failed: ${out.error}`);
          assert(out.bars.length === 20 && out.next.length === 5, `progress ${out.bars.length}, next ${out.next.length}`);
          assert(out.next.every((r) => ITEMS.some((it) => it.id === r.id && it.title === r.title)), 'next: not the items');
        } finally {
          await context.close();
        }
      },
    },
  ]);
} finally {
  if (browser) await browser.close();
  if (server) await server.stop();
  rmSync(tmp, { recursive: true, force: true });
}
