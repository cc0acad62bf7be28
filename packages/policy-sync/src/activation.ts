// An activation as decision points see it (a bus event or a GetActive row), parsed and checked at the boundary.
import { PortcullisError } from '@portcullis/runtime';

/** One activation of one bundle at the PAP: which revision, by digest, in which order. */
export interface Activation {
  bundle: string;
  revision: number;
  /** sha256 hex of the bundle's .tar.gz: the identity of the content. */
  digest: string;
  /** Strictly increasing across all activations of all bundles; the only order consumers trust. */
  activationSeq: number;
  /** When the PAP committed the activation; absent when unknown. */
  activatedAt?: Date;
  /** Entrypoints as GetActive reports them (events do not carry them; the archive's manifest is authoritative). */
  entrypoints?: string[];
}

const DIGEST = /^[0-9a-f]{64}$/;
const BUNDLE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

function invalid(message: string): PortcullisError {
  return new PortcullisError('validation_failed', `policy event: ${message}`);
}

/** A non-negative safe integer from a number or a decimal string (gRPC uint64 arrives as a string). */
function count(value: unknown, field: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw invalid(`${field} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

function time(value: unknown): Date | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * Reads an activation from a decoded object with the PAP's field names (`bundle`, `revision`,
 * `digest`, `activation_seq`, `activated_at`, optional `entrypoints`). Throws `validation_failed`
 * naming the field: a malformed event must be refused, not half-applied.
 */
export function parseActivation(value: unknown): Activation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('not a JSON object');
  const v = value as Record<string, unknown>;
  if (typeof v.bundle !== 'string' || !BUNDLE.test(v.bundle)) {
    throw invalid(`bundle ${JSON.stringify(v.bundle)} is not a bundle name`);
  }
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest))
    throw invalid('digest is not a sha256 hex digest');
  const activation: Activation = {
    bundle: v.bundle,
    revision: count(v.revision, 'revision'),
    digest: v.digest,
    activationSeq: count(v.activation_seq, 'activation_seq'),
  };
  const at = time(v.activated_at);
  if (at) activation.activatedAt = at;
  if (Array.isArray(v.entrypoints) && v.entrypoints.every((e) => typeof e === 'string')) {
    activation.entrypoints = v.entrypoints as string[];
  }
  return activation;
}

/** Parses the JSON text of a `portcullis.policy.events` message. */
export function parseActivationEvent(json: string): Activation {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw invalid(`not JSON (${(err as Error).message})`);
  }
  return parseActivation(value);
}
