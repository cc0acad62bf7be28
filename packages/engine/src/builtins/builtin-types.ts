// The contract between the WASM host and a host-implemented builtin.

/**
 * Per-evaluation state shared by the builtins of one `evaluate` call; reset (not reallocated) before each.
 * OPA fixes `time.now_ns` once per query, and `io.jwt.decode_verify` uses that same instant.
 */
export interface EvalContext {
  nowNs: bigint | undefined;
}

export function nowNs(ctx: EvalContext): bigint {
  if (ctx.nowNs === undefined) {
    // performance.timeOrigin + now() is wall-clock with sub-millisecond resolution, unlike Date.now().
    const micros = Math.round((performance.timeOrigin + performance.now()) * 1000);
    ctx.nowNs = BigInt(micros) * 1000n;
  }
  return ctx.nowNs;
}

/**
 * A builtin's operands arrive decoded (bigint for integers beyond 2^53; JS Set for sets when `sets` is true,
 * otherwise sets arrive as arrays, as `opa_json_dump` writes them). Returning `undefined` makes the call
 * undefined; throwing makes it undefined too (OPA's default, non-strict builtin errors) unless the engine
 * runs with strict builtin errors.
 */
export interface BuiltinDef {
  readonly fn: (args: readonly unknown[], ctx: EvalContext) => unknown;
  /** Operands are read with sets intact (opa_value_dump) instead of as JSON. */
  readonly sets?: boolean;
  /** The result may contain a Set (written as Rego text). */
  readonly setResult?: boolean;
  /**
   * The result depends on the operands alone and is worth remembering: each instance keeps a bounded map
   * from operand text to result text, so a token seen on every request of a session is decoded once.
   */
  readonly pure?: boolean;
}

export type BuiltinTable = Readonly<Record<string, BuiltinDef>>;

/** A builtin's own failure (bad operand, unparsable token…): OPA reports these as builtin errors. */
export class BuiltinError extends Error {
  override readonly name = 'BuiltinError';
}

export function str(v: unknown, pos: number): string {
  if (typeof v !== 'string') throw new BuiltinError(`operand ${pos} must be string`);
  return v;
}

export function num(v: unknown, pos: number): number | bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint') throw new BuiltinError(`operand ${pos} must be number`);
  return v;
}

/** An integer operand as bigint; non-integers are an error (OPA's IntOperand). */
export function int(v: unknown, pos: number): bigint {
  const n = num(v, pos);
  if (typeof n === 'bigint') return n;
  if (!Number.isInteger(n))
    throw new BuiltinError(`operand ${pos} must be integer number but got floating-point number`);
  return BigInt(n);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Set);
}

/** Collapses a bigint that fits back into a number, so results stay plain JSON numbers where possible. */
export function intValue(n: bigint): number | bigint {
  return n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n;
}
