// DOM helpers shared by the page's views.

/** The element with `id`; a missing one is a bug in the page, so it throws. */
export const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el;
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
