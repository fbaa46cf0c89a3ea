// For you's meta-training, in a Web Worker (www/remote-trainer.js), so the page stays responsive:
// the synthetic catalog of a first visit without the default bundle, and a site's own catalog
// (a CSV or JSON file of items: id, title, |-separated categories, optional year, description,
// embedding; MetaTrainer.overCatalog meta-trains over a synthetic world of simulated people over
// these items' own vectors). `ui` is `{ status(text), progress(done, of) }`.
import { RemoteTrainer } from './remote-trainer.js';
import { rewardAndLoss, stepLoop } from './steps.js';

// Meta-training settings of a site's own catalog: the default bundle's (60 iterations of
// first-order MAML over 1,000 simulated people).
const CATALOG_OPTIONS = { iterations: 60, algorithm: 'fomaml' };

// Runs `trainer` to its last iteration, reporting each one as `what: iteration i of n, …`;
// resolves to the bundle's bytes.
async function trainToEnd(trainer, ui, what) {
  try {
    ui.progress(0, trainer.iterations);
    await stepLoop({
      more: () => !trainer.done,
      step: () => trainer.step(),
      show: (p) => {
        ui.progress(p.iteration + 1, trainer.iterations);
        const skipped = p.skipped_total ? `, ${p.skipped_total} skipped steps` : '';
        ui.status(`${what}: iteration ${p.iteration + 1} of ${trainer.iterations}, ${rewardAndLoss(p)}${skipped}`);
      },
    });
    return await trainer.bundle();
  } finally {
    trainer.free();
  }
}

/** Meta-trains on the synthetic world of `options` (MetaTrainOptions); resolves to the bundle. */
export async function trainSynthetic(options, ui) {
  return trainToEnd(await RemoteTrainer.create(options), ui, 'Meta-training');
}

/**
 * Meta-trains over the items in `bytes` (the file `name`, CSV or JSON by its ending) on
 * `engine`. Resolves to `{ bytes, key, label }` of the bundle; rejects with the parser's error
 * (row and field) for a bad file.
 */
export async function trainOnCatalog(bytes, name, engine, ui) {
  ui.status(`Reading your catalog ${name}…`);
  const trainer = await RemoteTrainer.overCatalog(bytes, name, { ...CATALOG_OPTIONS, engine });
  const items = trainer.items;
  return {
    bytes: await trainToEnd(trainer, ui, `Meta-training on your catalog (${items} items)`),
    key: `catalog:${name}`,
    label: `your catalog ${name}, ${items} items (meta-trained in this browser)`,
  };
}
