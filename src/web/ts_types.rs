//! TypeScript types of the classes' options and results: `js/types.d.ts`, appended to the
//! generated `metarec.d.ts` (the npm package's `index.d.ts` imports the same file).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = include_str!("../../js/types.d.ts");
