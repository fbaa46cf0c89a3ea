// A module Web Worker that runs one MetaTrainer (www/pkg) off the page's main thread, so that
// meta-training never blocks the page (www/remote-trainer.js is its other half). Messages:
// { id, op, args } → { id, ok: true, value, done } or { id, ok: false, error }.
// op "create" (args: [options, checkpoint?]) answers { iterations, history, engineInfo }.
import init, { MetaTrainer } from './pkg/metarec.js';

let trainer = null;
const ready = init();

const ops = {
  async create(options, checkpoint) {
    await ready;
    if (trainer) trainer.free();
    trainer = await MetaTrainer.create(options, checkpoint);
    return { iterations: trainer.iterations, history: trainer.history(), engineInfo: trainer.engineInfo() };
  },
  step: () => trainer.step(),
  checkpoint: () => trainer.checkpoint(),
  bundle: () => trainer.bundle(),
  simulateDeviceLoss: () => trainer.simulateDeviceLoss(),
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    if (!(op in ops)) throw new Error(`unknown operation ${op}`);
    if (op !== 'create' && !trainer) throw new Error('no meta-training run: create one first');
    const value = await ops[op](...args);
    self.postMessage({ id, ok: true, value, done: trainer ? trainer.done : false });
  } catch (err) {
    self.postMessage({ id, ok: false, error: String((err && err.message) || err) });
  }
};
