// Types of the metarec package (its entry point, index.js). Hand-written, checked by
// `tsc --noEmit` on examples/ts/app.ts in the test command (tests/e2e/package.mjs also checks
// that the packed types never use the any type). The options and results the package passes
// through from the wasm-bindgen classes are those classes' types (./types.d.ts, which the
// generated ./metarec.d.ts includes too), the same objects or, with camelCase keys, `Camel` of
// them: what index.js's camel() makes of a result and its snake() of options.

import type * as raw from "./types.js";

/** The keys index.js renames beyond snake_case → camelCase. */
interface Renamed {
  iterations_per_s: "iterationsPerSecond";
  steps_per_s: "stepsPerSecond";
}

/** A snake_case key (lowercase words) in camelCase, as index.js's camel() writes it. */
type CamelKey<K extends string> = K extends keyof Renamed
  ? Renamed[K]
  : K extends `${infer Head}_${infer C}${infer Rest}`
    ? `${Head}${Uppercase<C>}${CamelKey<Rest>}`
    : K;

/** An object type with its keys in camelCase, recursively (arrays and nested objects). */
export type Camel<T> = T extends readonly (infer U)[]
  ? Camel<U>[]
  : T extends object
    ? { [K in keyof T as K extends string ? CamelKey<K> : K]: Camel<T[K]> }
    : T;

import type { CatalogItem, EngineChoice, RecommenderOptions, SelfCheckOptions } from "./types.js";
export type { CatalogItem, EngineChoice, RecommenderOptions, SelfCheckOptions };

/** Where the WebAssembly module comes from, for {@link init}. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/**
 * Loads the WebAssembly module (once; later calls return the same promise). Every factory
 * calls it, so call it yourself only to load the module early or from another URL
 * (default: `metarec_bg.wasm` next to the package's files).
 */
export function init(input?: InitInput): Promise<void>;

/**
 * Stable error codes:
 * - `bundle-version`: a bundle of another format version;
 * - `bundle-corrupt`: bytes that are not a readable bundle (truncated, checksum, ...);
 * - `catalog-row`: a catalog's item (row) or file is wrong; the message names the row and
 *   field (CSV: `items.csv:LINE: field N (name)`, JSON: `item N (field)`);
 * - `state-mismatch`: a saved state or checkpoint that does not fit;
 * - `device-lost`: the GPU device was lost and the call could not recover;
 * - `invalid-argument`: an option or argument out of its domain;
 * - `engine`: any other failure of the engine (no GPU adapter where one was required, ...);
 * - `aborted`: the call's AbortSignal fired;
 * - `disposed`: a call on an object after its dispose();
 * - `internal`: anything else (a bug: please report it).
 */
export type MetarecErrorCode =
  | "bundle-version"
  | "bundle-corrupt"
  | "catalog-row"
  | "state-mismatch"
  | "device-lost"
  | "invalid-argument"
  | "engine"
  | "aborted"
  | "disposed"
  | "internal";

/** Every failure of the package rejects with a MetarecError. */
export class MetarecError extends Error {
  constructor(code: MetarecErrorCode, message: string, options?: { cause?: unknown });
  readonly name: "MetarecError";
  readonly code: MetarecErrorCode;
}

/** One item as given to {@link Catalog.fromJSON}. */
export interface CatalogItemInput {
  id: string | number;
  title: string;
  /** Categories or tags: an array, or one `|`-separated string. */
  categories?: string[] | string;
  /** Same as `categories` (one of the two). */
  tags?: string[] | string;
  year?: number | null;
  description?: string | null;
  /** The item's own embedding (every item the same length, or none has one). */
  embedding?: Float32Array | number[];
}

export interface CatalogOptions {
  /** Names the input in error messages (default `items.csv` / `items.json`). */
  name?: string;
}

/** A site's own items: ids, titles, categories, years, descriptions, optional embeddings. */
export class Catalog {
  private constructor();
  /**
   * Items from CSV: a header with `id`, `title`, `categories` (or `tags`, `|`-separated),
   * optionally `year`, `description`, and `embedding` (numbers separated by spaces) or
   * `embedding_1`, `embedding_2`, ... Bytes that are not UTF-8 are refused (`catalog-row`).
   */
  static fromCSV(text: string | Uint8Array | ArrayBuffer, options?: CatalogOptions): Promise<Catalog>;
  /** Items from an array of objects (or its JSON text). */
  static fromJSON(items: CatalogItemInput[] | string, options?: CatalogOptions): Promise<Catalog>;
  /** Number of items. */
  readonly size: number;
  /** Columns of the items' own embedding (0 without one). */
  readonly embeddingWidth: number;
  /** Every category, in order of first appearance. */
  readonly categories: string[];
  items(): Promise<CatalogItem[]>;
  /** Frees the catalog once the calls already made on it have run. */
  dispose(): void;
}

/** Meta-training settings and its synthetic world. */
export type MetaTrainOptions = Camel<raw.MetaTrainOptions>;

/** A long call's progress callback and cancellation. */
export interface LongCallOptions {
  /**
   * Called after every meta-iteration; training waits for a returned promise, and stops there
   * (keeping the policy so far) when it returns or resolves to `false`.
   */
  onProgress?: (progress: MetaProgress) => unknown;
  /** Aborting rejects the call with code `aborted` (after the running meta-iteration). */
  signal?: AbortSignal;
}

export type TrainOptions = MetaTrainOptions & LongCallOptions;

export type MetaIteration = Camel<raw.MetaIteration>;

/** A meta-iteration's result with the run's progress. */
export type MetaProgress = Camel<raw.MetaProgress>;

/** A recommended item with its own fields. */
export interface Recommendation extends CatalogItem {
  /** The policy's logit for the item. */
  score: number;
  /** Probability of the item at its slate position. */
  propensity: number;
}

export interface Reaction {
  id: string;
  /** 1 = liked, 0 = skipped. */
  reward: number;
}

export type EngineInfo = Camel<raw.EngineInfo>;

/** On-device recommendations that adapt to one person. Calls on one object run in order. */
export class Recommender {
  private constructor();
  /** A recommender for a new person from a bundle (`metarec bundle`, {@link MetaTrainer.bundle}). */
  static create(bundle: Uint8Array | ArrayBuffer, options?: RecommenderOptions): Promise<Recommender>;
  /** A recommender that continues a person's state saved by {@link Recommender.saveState}. */
  static restore(
    bundle: Uint8Array | ArrayBuffer,
    state: Uint8Array | ArrayBuffer,
    options?: RecommenderOptions,
  ): Promise<Recommender>;
  /**
   * A recommender over a site's own items: meta-trains a policy on a synthetic world over
   * `catalog` (the items' categories, years and own embeddings), then serves a new person.
   */
  static fromCatalog(catalog: Catalog, options?: TrainOptions): Promise<Recommender>;
  /** `k` items not shown yet; `greedy` ranks by score, otherwise the slate is sampled. */
  recommend(k: number, options?: { greedy?: boolean }): Promise<Recommendation[]>;
  /** Learns from one reaction: `reward` 1 = liked, 0 = skipped (anything in [0, 1]). */
  feedback(id: string, reward: number): Promise<void>;
  /** Meta-trains a new policy on a generated world and switches to it; the new bundle. */
  metaTrain(options?: TrainOptions): Promise<Uint8Array>;
  /** The person's state, for IndexedDB or a file. */
  saveState(): Promise<Uint8Array>;
  history(): Promise<Reaction[]>;
  engineInfo(): Promise<EngineInfo>;
  /** Destroys the GPU device as a driver reset would (tests, drills); the next call recovers. */
  simulateDeviceLoss(): Promise<void>;
  /** Frees the recommender once the calls already made on it have run. */
  dispose(): void;
}

export interface MetaTrainerOptions extends MetaTrainOptions {
  /** Meta-train over a site's own items instead of a generated catalog. */
  catalog?: Catalog;
}

/** Meta-training one meta-iteration per {@link MetaTrainer.step}. */
export class MetaTrainer {
  private constructor();
  static create(options?: MetaTrainerOptions, checkpoint?: Uint8Array | ArrayBuffer): Promise<MetaTrainer>;
  /** Meta-iterations of the whole run. */
  readonly iterations: number;
  /** Meta-iterations run so far (updated when a step resolves). */
  readonly iteration: number;
  readonly done: boolean;
  step(): Promise<MetaProgress>;
  history(): Promise<MetaIteration[]>;
  /** Everything needed to continue later exactly where the run stands. */
  checkpoint(): Promise<Uint8Array>;
  /** The policy trained so far with its catalog, for {@link Recommender.create}. */
  bundle(): Promise<Uint8Array>;
  engineInfo(): Promise<EngineInfo>;
  dispose(): void;
}

export type SelfCheckReport = Camel<raw.SelfCheckReport>;

/** Checks the GPU kernels against the CPU reference and measures training steps per second. */
export function selfCheck(options?: SelfCheckOptions): Promise<SelfCheckReport>;
