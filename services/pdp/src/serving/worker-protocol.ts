// What the worker pool sends its threads and what they answer (structured-cloned, so plain data only).

/** One decision: a normalized entrypoint and the input as JSON text. */
export interface Evaluation {
  readonly entrypoint: string;
  readonly input: string | undefined;
}

/** A thread's answer to a revision: whether it swapped (false: already serving it) and what it serves. */
export interface LoadAnswer {
  readonly loaded: boolean;
  readonly entrypoints: string[];
}
