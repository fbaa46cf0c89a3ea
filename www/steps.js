// What the page's step-by-step runs share: meta-training (For you's first visit, the Meta-train
// view) and the simulation (the Simulate view) run one step at a time, with a turn of the event
// loop between steps so that the page renders and a pause takes effect.
import { message, nextTurn } from './dom.js';

/**
 * Runs `step()` while `more()` holds and hands each result to `show`; a step that resolves to
 * `undefined` shows nothing (`more()` is asked again).
 */
export async function stepLoop({ more, step, show }) {
  while (more()) {
    const result = await step();
    if (result !== undefined) await show(result);
    await nextTurn();
  }
}

/** A meta-iteration's progress (MetaProgress) in words: its mean reward and loss. */
export const rewardAndLoss = (p) => `mean reward ${p.mean_reward.toFixed(3)}, loss ${p.loss === null ? 'skipped' : p.loss.toFixed(3)}`;

/**
 * Waits for For you, on whose bundle and engine the Meta-train and Simulate views run; when it
 * did not start, says so through `status`, puts the view in its error phase and resolves to
 * false.
 */
export async function forYouReady(foryou, { status, setPhase }) {
  try {
    await foryou.ready;
    return true;
  } catch (err) {
    status(`Not available: For you did not start (${message(err)}).`);
    setPhase('error');
    return false;
  }
}
