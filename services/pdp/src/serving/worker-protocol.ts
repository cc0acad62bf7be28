// The messages between the worker pool and its threads (structured-cloned, so plain data only).
import type { EngineErrorCode, JsonDecision, Revision } from '@portcullis/engine';

export type ToWorker =
  | { type: 'eval'; id: number; entrypoint: string; input: string | undefined }
  | { type: 'load'; id: number; revision: Revision };

export interface WorkerError {
  engineCode?: EngineErrorCode;
  message: string;
  details?: unknown;
}

export type FromWorker =
  | { id: number; ok: true; decision?: JsonDecision; loaded?: boolean; entrypoints?: string[] }
  | { id: number; ok: false; error: WorkerError };
