// Types of the options and results of the wasm-bindgen classes (./metarec.js), snake_case as
// the classes take and return them. wasm-bindgen appends this file to the generated
// metarec.d.ts (src/web/ts_types.rs); the package's index.d.ts imports it for the types it
// passes through as they are or, in camelCase, as `Camel` of them.

/** Which engine to use: WebGPU ("gpu"), the CPU engine ("cpu"), or the GPU when there is one. */
export type EngineChoice = "auto" | "gpu" | "cpu";

export interface SelfCheckOptions { engine?: EngineChoice }

export interface SelfCheckReport {
  engine: "gpu" | "cpu";
  adapter: { name: string; backend: string; device_type: string; fallback: boolean } | null;
  gpu_error: string | null;
  kernels: { name: string; shape: string; max_rel_err: number; tolerance: number; pass: boolean }[];
  steps_per_s: { gpu: number | null; cpu: number };
  dispatches_per_step: number | null;
}

export interface RecommenderOptions {
  engine?: EngineChoice;
  /** Seed of the exploration noise of a new session. */
  seed?: number;
}

export interface Recommendation {
  /** The dataset's item id. */
  item: string;
  title: string;
  /** The item's categories. */
  genres: string[];
  year: number | null;
  /** The item's description ("" when it has none). */
  description: string;
  /** The policy's logit for the item. */
  score: number;
  /** Probability of the item at its slate position. */
  propensity: number;
}

/** One item of a site's catalog, with its own fields. */
export interface CatalogItem {
  id: string;
  title: string;
  categories: string[];
  year: number | null;
  /** "" when the item has none. */
  description: string;
}

export interface EngineInfo {
  engine: "gpu" | "cpu";
  adapter: string;
  backend: string;
  device_type: string;
  /** True on software adapters (SwiftShader, lavapipe). */
  fallback: boolean;
  /** Why the CPU engine runs where the GPU was wanted, if it does. */
  fallback_reason: string | null;
  /** Engine rebuilds after a lost GPU device. */
  recoveries: number;
}

/** The synthetic world (items, users, seed) and the meta-training settings. */
export interface MetaTrainOptions {
  engine?: EngineChoice;
  seed?: number;
  /** Items of a generated world (ignored over a catalog: its items are the world's). */
  items?: number;
  /** Simulated people of the world (default 1000). */
  users?: number;
  /** Meta-iterations (default 60). */
  iterations?: number;
  users_per_iteration?: number;
  /** Reactions per simulated person and episode (default 20). */
  rounds?: number;
  /** Outer loop (default "fomaml"): "fomaml" and "reptile" give each person their own copy of
   * the network to adapt; "cavia" adapts a context vector only. */
  algorithm?: "cavia" | "reptile" | "fomaml";
  /** Adam step size of a person's network per reaction (default 0.01). */
  param_lr?: number;
  /** CAVIA's outer update (default "reinforce"; "ppo": 4 clipped-surrogate steps per
   * iteration; "ppo" and "trpo" need algorithm "cavia"). */
  optimizer?: "reinforce" | "ppo" | "trpo";
  /** TRPO's KL radius per outer step (default 0.01). */
  max_kl?: number;
}

export interface MetaIteration {
  iteration: number;
  /** Mean reward per round over the iteration's episodes. */
  mean_reward: number;
  /** Outer loss (null when the step was skipped). */
  loss: number | null;
  skipped_total: number;
  /** TRPO: measured mean KL(old || new) of the accepted step (absent when none was). */
  kl?: number;
  /** TRPO: steps the line search rejected this iteration. */
  backtracks?: number;
}

/** A meta-iteration's result with the run's progress. */
export interface MetaProgress extends MetaIteration {
  iterations: number;
  /** Milliseconds of this meta-iteration. */
  ms: number;
  iterations_per_s: number;
}

/** The bundle's synthetic world (items, users, seed) and the simulation. */
export interface SimulationOptions {
  engine?: EngineChoice;
  items?: number;
  users?: number;
  seed?: number;
  /** Fresh users after the training population (default 50). */
  held_out?: number;
  rounds?: number;
  slate?: number;
}

export interface HeldOutUser {
  index: number;
  world_user: number;
  favourite_genres: string[];
}

export interface SimulationLane {
  method: "meta-rl" | "no-adaptation" | "popularity" | "linucb" | "random";
  items: { item: string; title: string }[];
  clicked: string | null;
  reward: number;
}

export interface SimulationStep {
  user: number;
  position: number;
  round: number;
  done: boolean;
  lanes: SimulationLane[];
}

export interface SimulationCurves {
  methods: SimulationLane["method"][];
  rounds: number[];
  reward: number[][];
  cumulative: number[][];
  users_done: number;
  users: number;
  slates: number;
}
