// Configuration declared once per service: env name, type, default and doc; validated at start.

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export interface Setting<T> {
  /** Parses the raw string; throws Error with the reason when it does not parse. */
  parse(raw: string): T;
  /** Default when the variable is unset (or empty); `undefined` with `required` means it must be set. */
  default: T | undefined;
  required: boolean;
  doc: string;
  /** How the default reads in docs (for secrets or computed defaults). */
  defaultDoc?: string;
}

type Opts<T> = { default?: T; doc: string; defaultDoc?: string };

function setting<T>(parse: (raw: string) => T, opts: Opts<T>): Setting<T> {
  return {
    parse,
    default: opts.default,
    required: opts.default === undefined,
    doc: opts.doc,
    ...(opts.defaultDoc === undefined ? {} : { defaultDoc: opts.defaultDoc }),
  };
}

export const env = {
  string(opts: Opts<string>): Setting<string> {
    return setting((raw) => raw, opts);
  },
  optionalString(opts: { doc: string }): Setting<string | undefined> {
    return { parse: (raw) => raw, default: undefined, required: false, doc: opts.doc };
  },
  int(opts: Opts<number> & { min?: number; max?: number }): Setting<number> {
    return setting((raw) => {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`expected an integer, got ${JSON.stringify(raw)}`);
      const n = Number.parseInt(raw, 10);
      if (opts.min !== undefined && n < opts.min) throw new Error(`must be >= ${opts.min}, got ${n}`);
      if (opts.max !== undefined && n > opts.max) throw new Error(`must be <= ${opts.max}, got ${n}`);
      return n;
    }, opts);
  },
  port(opts: Opts<number>): Setting<number> {
    return env.int({ ...opts, min: 0, max: 65535 });
  },
  bool(opts: Opts<boolean>): Setting<boolean> {
    return setting((raw) => {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new Error(`expected true or false, got ${JSON.stringify(raw)}`);
    }, opts);
  },
  oneOf<const T extends string>(values: readonly T[], opts: Opts<T>): Setting<T> {
    return setting((raw) => {
      if (!(values as readonly string[]).includes(raw)) {
        throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw as T;
    }, opts);
  },
  /** Durations like `500ms`, `30s`, `5m`, `1h`, `2d`, or a bare number of milliseconds. */
  duration(opts: Opts<number>): Setting<number> {
    return setting(parseDurationMs, opts);
  },
  /** Sizes like `8MiB`, `64KiB`, `1024`, `2MB`. Returns bytes. */
  bytes(opts: Opts<number>): Setting<number> {
    return setting(parseBytes, opts);
  },
  url(opts: Opts<string>): Setting<string> {
    return setting((raw) => {
      try {
        new URL(raw);
      } catch {
        throw new Error(`expected a URL, got ${JSON.stringify(raw)}`);
      }
      return raw;
    }, opts);
  },
  list(opts: Opts<string[]>): Setting<string[]> {
    return setting(
      (raw) =>
        raw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0),
      opts,
    );
  },
};

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDurationMs(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(raw);
  if (!m) throw new Error(`expected a duration such as 500ms, 30s or 5m, got ${JSON.stringify(raw)}`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms']!);
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

export function parseBytes(raw: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = BYTE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m || unit === undefined)
    throw new Error(`expected a size such as 8MiB or 65536, got ${JSON.stringify(raw)}`);
  return Number(m[1]) * unit;
}

export type ConfigSpec = Record<string, Setting<unknown>>;
export type ConfigOf<S extends ConfigSpec> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never;
};

/**
 * Reads every declared variable from `source` (default `process.env`), parses and validates it,
 * and returns a frozen object. A value that does not parse throws ConfigError naming the
 * variable: a service must stop at start rather than run with a silently substituted default.
 */
export function loadConfig<S extends ConfigSpec>(
  spec: S,
  source: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) {
    const raw = source[name];
    if (raw === undefined || raw === '') {
      if (s.required) throw new ConfigError(name, 'must be set');
      out[name] = s.default;
      continue;
    }
    try {
      out[name] = s.parse(raw);
    } catch (err) {
      throw new ConfigError(name, err instanceof Error ? err.message : String(err));
    }
  }
  return Object.freeze(out) as ConfigOf<S>;
}

/** Markdown rows (`| VAR | default | meaning |`) for the README's configuration table. */
export function describeConfig(spec: ConfigSpec): string[] {
  return Object.entries(spec).map(([name, s]) => {
    const def = s.defaultDoc ?? (s.required ? '(required)' : formatDefault(s.default));
    return `| \`${name}\` | ${def} | ${s.doc} |`;
  });
}

function formatDefault(v: unknown): string {
  if (Array.isArray(v)) return v.length === 0 ? '(empty)' : `\`${v.join(',')}\``;
  if (v === undefined) return '(unset)';
  return `\`${String(v)}\``;
}
