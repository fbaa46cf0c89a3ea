// A module Web Worker that runs one MetaTrainer (www/pkg) off the page's main thread, so that
// meta-training never blocks the page (www/remote-trainer.js is its other half). Messages:
// { id, op, args } → { id, ok: true, value, done } or { id, ok: false, error }.
// op "create" (args: [options, checkpoint?]) and op "overCatalog" (args: [bytes, file name,
// options]: a site's own items, CSV or JSON by the name's ending) answer { iterations, history,
// engineInfo, items }.
import init, { Catalog, MetaTrainer } from './pkg/metarec.js';

let trainer = null;
const ready = init();

async function made(t, items) {
  if (trainer) trainer.free();
  trainer = t;
  return { iterations: t.iterations, history: t.history(), engineInfo: t.engineInfo(), items };
}

// The catalog in a file's bytes: JSON when the name ends in .json (the text must be UTF-8),
// else CSV.
function parseCatalog(bytes, name) {
  if (/\.json$/i.test(name)) {
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new Error(`[catalog-row] ${name}: the file is not UTF-8 text`);
    }
    return Catalog.fromJSONText(text, name);
  }
  return Catalog.fromCSVBytes(bytes, name);
}

const ops = {
  async create(options, checkpoint) {
    await ready;
    return made(await MetaTrainer.create(options, checkpoint));
  },
  async overCatalog(bytes, name, options) {
    await ready;
    const catalog = parseCatalog(bytes, name);
    try {
      return made(await MetaTrainer.overCatalog(catalog, options), catalog.size);
    } finally {
      catalog.free();
    }
  },
  step: () => trainer.step(),
  checkpoint: () => trainer.checkpoint(),
  bundle: () => trainer.bundle(),
  simulateDeviceLoss: () => trainer.simulateDeviceLoss(),
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    if (!(op in ops)) throw new Error(`unknown operation ${op}`);
    if (!['create', 'overCatalog'].includes(op) && !trainer) throw new Error('no meta-training run: create one first');
    const value = await ops[op](...args);
    self.postMessage({ id, ok: true, value, done: trainer ? trainer.done : false });
  } catch (err) {
    self.postMessage({ id, ok: false, error: String((err && err.message) || err) });
  }
};
