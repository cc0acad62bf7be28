// Bulk import of attributes from JSON lines: streamed, validated per line, written in multi-row batches.
import { PortcullisError } from '@portcullis/runtime';
import type { ValidateFunction } from 'ajv';
import { schemaProblems } from './attribute-schemas.ts';
import { type AttributeStore, type ImportRow, keyProblem } from './attribute-store.ts';

/** One refused line; the others are imported. */
export interface ImportLineError {
  line: number;
  field?: string;
  message: string;
}

export interface ImportResult {
  /** Lines written (a later line for the same key overwrites an earlier one; both count). */
  imported: number;
  failed: number;
  /** The first `maxReportedErrors` refusals, by line number. */
  errors: ImportLineError[];
  errors_truncated: boolean;
}

export interface ImportOptions {
  /** Rows per INSERT (default 2000). */
  batchSize?: number;
  /** Total bytes accepted (413 beyond; lines before the limit stay imported). */
  maxBytes: number;
  /** Largest attributes object per line, as JSON text. */
  maxAttributeBytes: number;
  /** Refusals listed in the answer (default 1000); the count is always exact. */
  maxReportedErrors?: number;
}

/**
 * Reads `{"kind", "id", "attributes"}` objects, one per line (blank lines are skipped), and upserts
 * them. Not all-or-nothing: a bad line is reported with its number and skipped, the good lines are
 * written in batches, each committed with its own change event. So an import can be re-run after
 * fixing the bad lines: upserts make it idempotent apart from the versions it bumps. If the
 * database fails mid-way, the batches committed so far stay and the error names the last line
 * committed.
 */
export async function importAttributes(
  store: AttributeStore,
  body: AsyncIterable<Buffer | string>,
  options: ImportOptions,
): Promise<ImportResult> {
  const batchSize = options.batchSize ?? 2000;
  const maxReported = options.maxReportedErrors ?? 1000;
  // A line holds the attributes plus the kind, id and punctuation: allow some room beyond the limit.
  const maxLineBytes = options.maxAttributeBytes + 4096;
  const result: ImportResult = { imported: 0, failed: 0, errors: [], errors_truncated: false };
  const fail = (error: ImportLineError): void => {
    result.failed++;
    if (result.errors.length < maxReported) result.errors.push(error);
    else result.errors_truncated = true;
  };

  let batch: ImportRow[] = [];
  let batchLines: number[] = [];
  let batchKeys = new Set<string>();
  let committedThrough = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const rows = batch;
    const lines = batchLines;
    batch = [];
    batchLines = [];
    batchKeys = new Set();
    const schemas = await store.attributeSchemas.validators(store.pool, [
      ...new Set(rows.map((r) => r.kind)),
    ]);
    const valid: ImportRow[] = [];
    let last = 0;
    rows.forEach((row, i) => {
      const validate: ValidateFunction | undefined = schemas.get(row.kind);
      if (validate !== undefined && !validate(row.attributes)) {
        const problem = schemaProblems(validate.errors)[0];
        fail({
          line: lines[i]!,
          field: problem?.field ?? 'attributes',
          message: `schema: ${problem?.message ?? 'invalid'}`,
        });
      } else valid.push(row);
      last = lines[i]!;
    });
    try {
      await store.importBatch(valid);
    } catch (err) {
      throw new PortcullisError(
        'unavailable',
        `the import stopped: ${(err as Error).message}; lines up to ${committedThrough} were committed`,
        { details: [{ imported: result.imported, committed_through_line: committedThrough }], cause: err },
      );
    }
    result.imported += valid.length;
    committedThrough = last;
  };

  let lineNo = 0;
  for await (const line of lines(body, options.maxBytes, maxLineBytes)) {
    lineNo++;
    if (line === undefined) {
      fail({ line: lineNo, message: `the line is longer than ${maxLineBytes} bytes` });
      continue;
    }
    if (line.trim() === '') continue;
    const parsed = parseLine(line, options.maxAttributeBytes);
    if ('message' in parsed) {
      fail({ line: lineNo, ...parsed });
      continue;
    }
    const key = `${parsed.kind}\u0000${parsed.id}`;
    // One INSERT … ON CONFLICT cannot touch a row twice: a repeated key starts a new batch, so lines apply in order.
    if (batchKeys.has(key)) await flush();
    batch.push(parsed);
    batchLines.push(lineNo);
    batchKeys.add(key);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return result;
}

function parseLine(line: string, maxAttributeBytes: number): ImportRow | { field?: string; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { message: `not JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { message: 'must be an object {"kind", "id", "attributes"}' };
  }
  const { kind, id, attributes, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) return { field: extra, message: 'unknown field' };
  const problem = keyProblem(kind, id);
  if (problem !== undefined) return problem;
  if (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes)) {
    return { field: 'attributes', message: 'must be an object' };
  }
  const json = JSON.stringify(attributes);
  if (Buffer.byteLength(json, 'utf8') > maxAttributeBytes) {
    return { field: 'attributes', message: `at most ${maxAttributeBytes} bytes of JSON` };
  }
  if (json.includes('\\u0000'))
    return { field: 'attributes', message: 'strings must not contain NUL (\\u0000)' };
  return { kind: kind as string, id: id as string, attributes: attributes as Record<string, unknown> };
}

/**
 * Splits a byte stream into UTF-8 lines without ever holding more than `maxLineBytes` of one line:
 * an overlong line yields `undefined` (its bytes are skipped up to the next newline), so a body
 * without newlines cannot make the PIP buffer it whole. Throws 413 past `maxBytes` in total.
 */
export async function* lines(
  body: AsyncIterable<Buffer | string>,
  maxBytes: number,
  maxLineBytes: number,
): AsyncGenerator<string | undefined> {
  const decoder = new TextDecoder('utf-8');
  let parts: Buffer[] = [];
  let partBytes = 0;
  let skipping = false;
  let total = 0;
  const take = (): string => {
    const text = decoder.decode(Buffer.concat(parts, partBytes));
    parts = [];
    partBytes = 0;
    return text.endsWith('\r') ? text.slice(0, -1) : text;
  };
  for await (const raw of body) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    total += chunk.byteLength;
    if (total > maxBytes) {
      throw new PortcullisError('payload_too_large', `the import is over ${maxBytes} bytes`, {
        details: [{ field: 'body', limit: maxBytes }],
      });
    }
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.byteLength : nl;
      if (!skipping) {
        const piece = chunk.subarray(start, end);
        if (partBytes + piece.byteLength > maxLineBytes) {
          skipping = true;
          parts = [];
          partBytes = 0;
        } else if (piece.byteLength > 0) {
          parts.push(piece);
          partBytes += piece.byteLength;
        }
      }
      if (nl === -1) break;
      if (skipping) {
        skipping = false;
        yield undefined;
      } else yield take();
      start = nl + 1;
    }
  }
  if (skipping) yield undefined;
  else if (partBytes > 0) yield take();
}
