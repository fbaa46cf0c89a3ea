// DOM helpers shared by the page's views.

/** The element with `id`; a missing one is a bug in the page, so it throws. */
export const $ = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page is missing #${id}`);
  return node;
};

/** The whole number in the number input `id`, or an error naming its label and range. */
export function intField(id) {
  const input = $(id);
  const n = Number(input.value);
  if (!input.checkValidity() || !Number.isInteger(n)) {
    throw new Error(`${input.labels[0].textContent} must be a whole number from ${input.min} to ${input.max}`);
  }
  return n;
}

/** A new `tag` element with `text` as its text and `className` as its class, when given. */
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** The message of an error (or of anything thrown), for the page's notices (without the
 * `[code] ` prefix the wasm classes put before their messages, src/web/error.rs). */
export const message = (err) =>
  (err instanceof Error ? err.message || String(err) : String(err)).replace(/^\[[a-z-]+\] /, '');

/** One turn of the event loop, so that the page renders between long steps. */
export const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Says `text` to screen readers through the page's one polite live region: summaries only
 * (started, paused, done, failed), never per-iteration progress. */
export const announce = (text) => {
  $('announcer').textContent = text;
};
