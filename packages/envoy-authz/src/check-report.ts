// What became of one check (allowed, denied, failed closed…, with the status the client got), for metrics and logs.

import type { CheckResponse } from './envoy-protos.ts';
import { ENVOY_HTTP_STATUS_CODES, RPC_CODE_OK } from './envoy-protos.ts';

/**
 * - `allowed` / `denied`: the policy's verdict;
 * - `failed_closed` / `failed_open`: no verdict could be had (decide failed, invalid result) and the
 *   configured stance answered;
 * - `bad_request`: the request could not be made into an input (answered 400, as OPA-Envoy);
 * - `cancelled`: the caller went away or its deadline passed before the answer.
 */
export type CheckOutcome =
  | 'allowed'
  | 'denied'
  | 'failed_closed'
  | 'failed_open'
  | 'bad_request'
  | 'cancelled';

export const CHECK_OUTCOMES: readonly CheckOutcome[] = [
  'allowed',
  'denied',
  'failed_closed',
  'failed_open',
  'bad_request',
  'cancelled',
];

export interface CheckReport {
  outcome: CheckOutcome;
  /** The HTTP status the client is answered with (200 when the request passes); 0 when nothing was answered. */
  httpStatus: number;
  /** '' for a call that ended before anything was decided. */
  decisionId: string;
  /** From the check's start to its answer. */
  durationSeconds: number;
}

/** Receives every check's report; must not throw (a throw only becomes a process warning). */
export type CheckReporter = (report: CheckReport) => void;

const STATUS_BY_NAME: ReadonlyMap<string, number> = new Map(
  [...ENVOY_HTTP_STATUS_CODES].map(([status, name]) => [name, status]),
);

/**
 * The HTTP status Envoy answers the client with for this CheckResponse: 200 when it lets the
 * request through, the denied_response's status, else 403 (Envoy's default for a bare denial).
 */
export function responseHttpStatus(response: CheckResponse): number {
  if (response.status?.code === RPC_CODE_OK) return 200;
  const code = response.denied_response?.status?.code;
  if (typeof code === 'number' && code !== 0) return code;
  if (typeof code === 'string') return STATUS_BY_NAME.get(code) ?? 403;
  return 403;
}

export function safeCheckReporter(onCheck: CheckReporter | undefined): CheckReporter {
  if (onCheck === undefined) return () => {};
  return (report) => {
    try {
      onCheck(report);
    } catch (err) {
      process.emitWarning(`envoy-authz onCheck threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}

export function secondsSince(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}
