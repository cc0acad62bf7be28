// The `portcullis` CLI: bundle authoring, activation, evaluation and audit over the PAP REST API.
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient, ApiError, formatApiError, resolveConnection } from './api-client.ts';
import type { AuditPage, BundleView, EvaluateResult, RevisionSummary } from './api-types.ts';
import { readBundleDir } from './bundle-dir.ts';
import { activateBundleRevision, pushBundle } from './bundle-publishing.ts';
import { CA_COMMANDS, CA_OPTIONS, CA_USAGE, CaUsageError } from './ca-commands.ts';

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  fetch?: typeof fetch;
  /** Read for `eval … -`; default process.stdin. */
  stdin?: AsyncIterable<Uint8Array | string>;
}

const USAGE = `usage: portcullis <command> [options]

  bundle push <dir> [--name NAME] [--entrypoint EP]... [--activate]
  bundle list
  bundle revisions <name>
  bundle activate <name> <revision>
  bundle download <name> [--out FILE] [--target wasm|rego]
  eval <bundle> <revision> <entrypoint> <input.json | ->
  audit [--bundle NAME] [--actor NAME] [--limit N] [--cursor C]
${CA_USAGE.join('\n')}

Connection: PORTCULLIS_URL (default http://127.0.0.1:8080) and PORTCULLIS_TOKEN (default: the
embedded stack's token, $PORTCULLIS_HOME/admin-token, PORTCULLIS_HOME defaulting to ./.portcullis).
Add --json for machine-readable output. Exit status: 0 ok, 1 failure, 2 usage error.`;

class UsageError extends Error {}

/** A failure whose message names a place the user can open (`file:row:col`) under `fileBase`. */
class LocatedApiError extends Error {
  constructor(
    readonly apiError: ApiError,
    readonly fileBase: string,
  ) {
    super(apiError.message);
  }
}

type Handler = (args: string[], flags: Flags, api: ApiClient, io: CliIO) => Promise<void>;
interface Flags {
  name?: string;
  entrypoint?: string[];
  activate?: boolean;
  out?: string;
  target?: string;
  bundle?: string;
  actor?: string;
  limit?: string;
  cursor?: string;
  json?: boolean;
}

function need(args: string[], n: number, what: string): void {
  if (args.length < n) throw new UsageError(`missing ${what}`);
  if (args.length > n) throw new UsageError(`unexpected argument ${args[n]}`);
}

function revisionArg(raw: string): number {
  const revision = Number(raw);
  if (!/^[1-9][0-9]*$/.test(raw) || !Number.isSafeInteger(revision)) {
    throw new UsageError(`revision must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return revision;
}

function print(io: CliIO, flags: Flags, value: unknown, human: () => string[]): void {
  if (flags.json) io.out(JSON.stringify(value, null, 2));
  else for (const line of human()) io.out(line);
}

const enc = encodeURIComponent;
const short = (digest: string) => digest.slice(0, 12);

const COMMANDS: Record<string, Handler> = {
  async 'bundle push'(args, flags, api, io) {
    need(args, 1, 'bundle directory');
    const dir = args[0]!;
    const content = await readBundleDir(resolve(io.cwd, dir), {
      ...(flags.name ? { name: flags.name } : {}),
      ...(flags.entrypoint ? { entrypoints: flags.entrypoint } : {}),
    });
    const pushed = await pushBundle(api, content).catch((err: unknown) => {
      throw err instanceof ApiError ? new LocatedApiError(err, dir) : err;
    });
    const activated = flags.activate
      ? await activateBundleRevision(api, content.name, pushed.revision)
      : undefined;
    print(io, flags, { ...pushed, activated: activated ?? null }, () => [
      `${pushed.bundle}: ${pushed.created ? 'created' : 'unchanged, existing'} revision ${pushed.revision} (${short(pushed.digest)})`,
      ...(activated ? [`${pushed.bundle}: revision ${activated.revision} is now active`] : []),
    ]);
  },

  async 'bundle list'(args, flags, api, io) {
    need(args, 0, '');
    const res = await api.json<{ bundles: BundleView[] }>('GET', '/v1/bundles');
    print(io, flags, res, () =>
      res.bundles.length === 0
        ? ['no bundles']
        : res.bundles.map(
            (b) =>
              `${b.name}\tactive: ${b.active ? `r${b.active.revision}` : '-'}\tlatest: r${b.latest_revision}\tentrypoints: ${b.entrypoints.join(',')}`,
          ),
    );
  },

  async 'bundle revisions'(args, flags, api, io) {
    need(args, 1, 'bundle name');
    const res = await api.json<{ revisions: RevisionSummary[] }>(
      'GET',
      `/v1/bundles/${enc(args[0]!)}/revisions`,
    );
    print(io, flags, res, () =>
      res.revisions.map(
        (r) => `${r.active ? '*' : ' '} r${r.revision}\t${short(r.digest)}\t${r.author}\t${r.created_at}`,
      ),
    );
  },

  async 'bundle activate'(args, flags, api, io) {
    need(args, 2, 'bundle name and revision');
    const res = await activateBundleRevision(api, args[0]!, revisionArg(args[1]!));
    print(io, flags, res, () => [
      `${res.bundle}: revision ${res.revision} is now active (${short(res.digest)})`,
    ]);
  },

  async 'bundle download'(args, flags, api, io) {
    need(args, 1, 'bundle name');
    if (flags.target !== undefined && flags.target !== 'wasm' && flags.target !== 'rego') {
      throw new UsageError(`--target must be wasm or rego, got ${JSON.stringify(flags.target)}`);
    }
    const target = flags.target ? `?target=${enc(flags.target)}` : '';
    const res = await api.request('GET', `/v1/bundles/${enc(args[0]!)}/bundle.tar.gz${target}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const out = flags.out ?? `${args[0]}${flags.target === 'rego' ? '-rego' : ''}.tar.gz`;
    await writeFile(resolve(io.cwd, out), bytes);
    const revision = Number(res.headers.get('x-portcullis-revision'));
    print(io, flags, { file: out, bytes: bytes.length, revision, etag: res.headers.get('etag') }, () => [
      `wrote ${out} (revision ${revision}, ${bytes.length} bytes)`,
    ]);
  },

  async eval(args, flags, api, io) {
    need(args, 4, 'bundle, revision, entrypoint and input file');
    const [bundle, rev, entrypoint, inputFile] = args as [string, string, string, string];
    const revision = revisionArg(rev);
    const text =
      inputFile === '-'
        ? await readAll(io.stdin ?? process.stdin)
        : await readFile(resolve(io.cwd, inputFile), 'utf8');
    let input: unknown;
    try {
      input = JSON.parse(text);
    } catch (err) {
      throw new Error(`${inputFile}: invalid JSON: ${(err as Error).message}`);
    }
    const res = await api.json<EvaluateResult>(
      'POST',
      `/v1/bundles/${enc(bundle)}/revisions/${revision}/evaluate`,
      { entrypoint, input },
    );
    print(io, flags, res, () =>
      'result' in res ? [JSON.stringify(res.result, null, 2)] : ['undefined (no value for this input)'],
    );
  },

  async audit(args, flags, api, io) {
    need(args, 0, '');
    const q = new URLSearchParams();
    if (flags.bundle) q.set('bundle', flags.bundle);
    if (flags.actor) q.set('actor', flags.actor);
    if (flags.limit) q.set('limit', flags.limit);
    if (flags.cursor) q.set('cursor', flags.cursor);
    const res = await api.json<AuditPage>('GET', `/v1/audit${q.size ? `?${q}` : ''}`);
    print(io, flags, res, () => [
      ...res.entries.map((e) => `${e.at}\t${e.actor}\t${e.action}\t${e.target}`),
      ...(res.next_cursor ? [`(older entries: --cursor ${res.next_cursor})`] : []),
    ]);
  },

  ...CA_COMMANDS,
};

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs one CLI invocation and returns its exit status (0 ok, 1 API or runtime failure, 2 usage). */
export async function main(argv: string[], io: CliIO = defaultIO()): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { positionals, values } = parsed;
  if (positionals.length === 0 || positionals[0] === 'help') {
    (positionals.length === 0 ? io.err : io.out)(USAGE);
    return positionals.length === 0 ? 2 : 0;
  }
  // `bundle` takes a subcommand; the other commands are one word.
  const arity = positionals[0] === 'bundle' || positionals[0] === 'ca' ? 2 : 1;
  const name = positionals.slice(0, arity).join(' ');
  const command = COMMANDS[name];
  if (!command) {
    io.err(`error: unknown command: ${name}\n\n${USAGE}`);
    return 2;
  }
  const rest = positionals.slice(arity);
  const api = new ApiClient({
    ...resolveConnection(io.env, io.cwd),
    ...(io.fetch ? { fetch: io.fetch } : {}),
  });
  try {
    await command(rest, values as Flags, api, io);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || err instanceof CaUsageError) {
      io.err(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof LocatedApiError) io.err(formatApiError(err.apiError, err.fileBase));
    else if (err instanceof ApiError) io.err(formatApiError(err));
    else io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      entrypoint: { type: 'string', multiple: true },
      activate: { type: 'boolean' },
      out: { type: 'string' },
      target: { type: 'string' },
      bundle: { type: 'string' },
      actor: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      json: { type: 'boolean' },
      ...CA_OPTIONS,
    },
  });
}

function defaultIO(): CliIO {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    cwd: process.cwd(),
  };
}
