// A site using metarec, in TypeScript: every public call of the package, type-checked by
// `tsc --noEmit` (scripts/test.sh's e2e stage, and tests/e2e/package.mjs against the packed
// package). Not run as a whole; tests/e2e/package.mjs runs the same calls in a page and a Worker.
import {
  Catalog,
  MetaTrainer,
  MetarecError,
  Recommender,
  init,
  selfCheck,
  type CatalogItem,
  type CatalogItemInput,
  type EngineInfo,
  type MetaIteration,
  type MetaProgress,
  type MetarecErrorCode,
  type Reaction,
  type Recommendation,
  type SelfCheckReport,
} from "metarec";

const products: CatalogItemInput[] = [
  { id: "p1", title: "Trail shoes", categories: ["shoes", "outdoor"], year: 2024, description: "Grippy." },
  { id: 2, title: "Rain hat", tags: "hats|outdoor", embedding: new Float32Array([0.1, 0.2]) },
];

export async function run(csvText: string, savedBundle: Uint8Array, show: (line: string) => void): Promise<void> {
  await init();
  const report: SelfCheckReport = await selfCheck({ engine: "auto" });
  show(`engine ${report.engine}, ${report.stepsPerSecond.cpu.toFixed(0)} CPU steps/s`);
  for (const k of report.kernels) show(`${k.name} ${k.shape}: ${k.maxRelErr} (≤ ${k.tolerance})`);
  show(`${report.adapter?.deviceType ?? "no adapter"}: ${report.gpuError ?? "no GPU error"}`);

  const fromCsv: Catalog = await Catalog.fromCSV(csvText, { name: "products.csv" });
  const catalog = await Catalog.fromJSON(products);
  const items: CatalogItem[] = await catalog.items();
  show(`${catalog.size} items, ${catalog.categories.join(", ")}, embedding ${catalog.embeddingWidth}; first ${items[0].title}`);

  const abort = new AbortController();
  const rec = await Recommender.fromCatalog(catalog, {
    iterations: 20,
    users: 200,
    usersPerIteration: 8,
    rounds: 10,
    algorithm: "fomaml",
    paramLr: 0.01,
    engine: "auto",
    seed: 1,
    signal: abort.signal,
    onProgress: (p: MetaProgress) => show(`iteration ${p.iteration + 1}/${p.iterations}: ${p.meanReward.toFixed(3)}`),
  });
  const slate: Recommendation[] = await rec.recommend(5, { greedy: false });
  await rec.feedback(slate[0].id, 1);
  const history: Reaction[] = await rec.history();
  const info: EngineInfo = await rec.engineInfo();
  show(`${history.length} reaction(s) on ${info.engine} (${info.fallbackReason ?? "as asked"})`);
  show(`${info.adapter} (${info.deviceType}), ${info.recoveries} recoveries`);
  const state: Uint8Array = await rec.saveState();
  await rec.simulateDeviceLoss();
  const bundle: Uint8Array = await rec.metaTrain({ iterations: 2, optimizer: "reinforce", maxKl: 0.01 });
  rec.dispose();

  const trainer = await MetaTrainer.create({ catalog: fromCsv, iterations: 3 });
  while (!trainer.done) {
    const p: MetaProgress = await trainer.step();
    show(`step ${trainer.iteration}/${trainer.iterations} in ${p.ms.toFixed(0)} ms (${p.iterationsPerSecond}/s)`);
  }
  const past: MetaIteration[] = await trainer.history();
  show(past.map((m) => `${m.meanReward} ${m.loss ?? "skipped"} ${m.skippedTotal} ${m.kl ?? ""}`).join("; "));
  const checkpoint: Uint8Array = await trainer.checkpoint();
  const trained: Uint8Array = await trainer.bundle();
  show(`${past.length} iterations, checkpoint ${checkpoint.length} B, on ${(await trainer.engineInfo()).engine}`);
  trainer.dispose();
  fromCsv.dispose();
  catalog.dispose();

  const again = await Recommender.restore(savedBundle, state, { engine: "cpu" });
  again.dispose();
  const fresh = await Recommender.create(trained.length > 0 ? trained : bundle, { seed: 2 });
  fresh.dispose();

  try {
    await Catalog.fromJSON([{ id: "x", title: "" }]);
  } catch (e) {
    if (e instanceof MetarecError) {
      const code: MetarecErrorCode = e.code;
      show(`${e.name} ${code}: ${e.message}`);
    }
  }
}
