// A small client for the PAP REST API: base URL, bearer token, and errors carrying the API's code.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown>[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiClientOptions {
  url: string;
  token: string | undefined;
  fetch?: typeof fetch;
}

export const DEFAULT_PAP_URL = 'http://127.0.0.1:8080';

/** The CLI's environment variables, `{ doc, defaultDoc }` each, for the README (scripts/config-docs.mjs). */
export const CLI_SETTINGS = {
  PORTCULLIS_URL: { defaultDoc: `\`${DEFAULT_PAP_URL}\``, doc: 'The PAP that the `portcullis` CLI calls.' },
  PORTCULLIS_TOKEN: {
    defaultDoc: 'the token in `$PORTCULLIS_HOME/admin-token`',
    doc: 'Bearer token the `portcullis` CLI sends.',
  },
} as const;

/**
 * Where the CLI finds the PAP and its token: PORTCULLIS_URL and PORTCULLIS_TOKEN, else the embedded
 * stack's token file, `$PORTCULLIS_HOME/admin-token` (PORTCULLIS_HOME defaults to `<cwd>/.portcullis`).
 */
export function resolveConnection(env: NodeJS.ProcessEnv, cwd: string): ApiClientOptions {
  const url = env.PORTCULLIS_URL || DEFAULT_PAP_URL;
  let token = env.PORTCULLIS_TOKEN || undefined;
  const tokenFile = join(resolve(cwd, env.PORTCULLIS_HOME || '.portcullis'), 'admin-token');
  if (!token && existsSync(tokenFile)) token = readFileSync(tokenFile, 'utf8').trim();
  return { url, token };
}

export class ApiClient {
  private readonly doFetch: typeof fetch;

  constructor(private readonly opts: ApiClientOptions) {
    this.doFetch = opts.fetch ?? fetch;
  }

  get url(): string {
    return this.opts.url;
  }

  /** Sends one request; resolves with the response when its status is below 400, else throws ApiError. */
  async request(
    method: string,
    path: string,
    opts: { json?: unknown; body?: Uint8Array; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    let body: string | Uint8Array | undefined;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.body;
    }
    let res: Response;
    try {
      res = await this.doFetch(new URL(path, this.opts.url), { method, headers, body });
    } catch (err) {
      const reason =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : err;
      throw new ApiError(0, 'unavailable', `cannot reach the PAP at ${this.opts.url}: ${String(reason)}`);
    }
    if (res.status >= 400) throw await toApiError(res);
    return res;
  }

  async json<T>(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<T> {
    const res = await this.request(method, path, { json, ...(headers ? { headers } : {}) });
    return (await res.json()) as T;
  }
}

async function toApiError(res: Response): Promise<ApiError> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return new ApiError(res.status, `http_${res.status}`, text || res.statusText);
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const details = Array.isArray(b.details)
    ? b.details.filter((d): d is Record<string, unknown> => typeof d === 'object' && d !== null)
    : [];
  return new ApiError(
    res.status,
    typeof b.code === 'string' ? b.code : `http_${res.status}`,
    typeof b.message === 'string' ? b.message : text,
    details,
  );
}

const str = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;

/**
 * One line per problem. Rego errors and test failures read `file:row:col: message` from the start
 * of the line, the form editors and CI problem matchers link to; `fileBase` (the pushed directory)
 * prefixes bundle paths so the link resolves from where the command ran. Other details are indented.
 */
export function formatApiError(err: ApiError, fileBase?: string): string {
  const lines = [`error: ${err.message} (${err.code}${err.status ? `, HTTP ${err.status}` : ''})`];
  for (const d of err.details) {
    const file = str(d.file);
    const message = str(d.message) ?? str(d.reason);
    if (file) {
      const where = [fileBase ? join(fileBase, file) : file, str(d.row), str(d.col)].filter((x) => x);
      const what = [str(d.test), str(d.code)].filter((x) => x);
      lines.push([where.join(':'), ...what, message].filter((x) => x).join(': '));
    } else {
      const what = [d.entrypoint, d.builtin, d.field, d.test].map(str).find((x) => x);
      lines.push(`  ${[what, message].filter((x) => x).join(': ')}`);
    }
  }
  return lines.join('\n');
}
