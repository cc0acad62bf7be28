// multipart/form-data bodies → `{name: [values]}` as OPA-Envoy builds them with Go's mime/multipart reader.
import { type JsonValue, parseJson, setOwn } from './json-value.ts';
import { MediaTypeError, parseMediaType } from './media-type.ts';
import { decodeUtf8 } from './utf8-decoding.ts';

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Reads the parts the way Go's multipart.Reader does: a preamble before the first boundary is
 * skipped; lines may end in CRLF or, if the first boundary line does, bare LF; a part's content
 * runs up to the newline before the next `--boundary` (followed by `--`, whitespace or a newline);
 * the body must end with the closing `--boundary--`, anything cut short is an error.
 * Only `form-data` parts with a name are kept (Go's FormName); a part whose Content-Type contains
 * `application/json` is parsed as JSON (unparsable → error), any other is its text. Parts with
 * `Content-Transfer-Encoding: quoted-printable` are kept raw (Go would decode them; browsers
 * never send it). Throws MultipartError.
 */
export function parseMultipartForm(body: Uint8Array, boundary: string): Record<string, JsonValue[]> {
  if (boundary === '') throw new MultipartError('multipart: boundary is empty');
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  const dashBoundary = Buffer.from(`--${boundary}`, 'utf8');
  const dashBoundaryDash = Buffer.from(`--${boundary}--`, 'utf8');
  let nl = Buffer.from('\r\n');
  let pos = 0;
  let partsRead = 0;
  const values = new Map<string, JsonValue[]>();

  const readLine = (): { line: Buffer; eof: boolean } => {
    const end = buf.indexOf(LF, pos);
    if (end === -1) {
      const line = buf.subarray(pos);
      pos = buf.length;
      return { line, eof: true };
    }
    const line = buf.subarray(pos, end + 1);
    pos = end + 1;
    return { line, eof: false };
  };
  const skipLwsp = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x09)) i++;
    return b.subarray(i);
  };
  const isFinalBoundary = (line: Buffer): boolean => {
    if (!startsWith(line, dashBoundaryDash)) return false;
    const rest = skipLwsp(line.subarray(dashBoundaryDash.length));
    return rest.length === 0 || rest.equals(nl);
  };
  const isDelimiterLine = (line: Buffer): boolean => {
    if (!startsWith(line, dashBoundary)) return false;
    const rest = skipLwsp(line.subarray(dashBoundary.length));
    // Bare-LF bodies violate the RFC but occur in practice; Go switches mode on the first boundary.
    if (partsRead === 0 && rest.length === 1 && rest[0] === LF) nl = Buffer.from('\n');
    return rest.equals(nl);
  };

  for (;;) {
    // NextPart: find the next delimiter line, or the closing one.
    let expectNewPart = false;
    for (;;) {
      const { line, eof } = readLine();
      if (eof && isFinalBoundary(line)) return toObject(values);
      if (eof) throw new MultipartError('multipart: NextPart: EOF');
      if (isDelimiterLine(line)) {
        partsRead++;
        break;
      }
      if (isFinalBoundary(line)) return toObject(values);
      if (expectNewPart) throw new MultipartError(`multipart: expecting a new Part; got line ${quote(line)}`);
      if (partsRead === 0) continue;
      if (line.equals(nl)) {
        expectNewPart = true;
        continue;
      }
      throw new MultipartError(`multipart: unexpected line in Next(): ${quote(line)}`);
    }

    const headers = readHeaders(readLine);
    const content = readContent(buf, pos, Buffer.concat([nl, dashBoundary]), dashBoundary);
    pos = content.end;

    const name = formName(headers.get('content-disposition') ?? '');
    if (name === '') continue;
    const bytes = buf.subarray(content.start, content.end);
    let value: JsonValue;
    if ((headers.get('content-type') ?? '').includes('application/json')) {
      try {
        value = parseJson(decodeUtf8(bytes));
      } catch (err) {
        throw new MultipartError(`part ${JSON.stringify(name)}: ${(err as Error).message}`);
      }
    } else {
      value = decodeUtf8(bytes);
    }
    const list = values.get(name);
    if (list) list.push(value);
    else values.set(name, [value]);
  }
}

function toObject(values: Map<string, JsonValue[]>): Record<string, JsonValue[]> {
  const out: Record<string, JsonValue[]> = {};
  for (const [k, v] of values) setOwn(out, k, v);
  return out;
}

function startsWith(b: Buffer, prefix: Buffer): boolean {
  return b.length >= prefix.length && b.subarray(0, prefix.length).equals(prefix);
}

function quote(line: Buffer): string {
  return JSON.stringify(decodeUtf8(line.subarray(0, 100)));
}

/** textproto.ReadMIMEHeader: `Key: value` lines up to a blank one; names lower-cased, first value wins. */
function readHeaders(readLine: () => { line: Buffer; eof: boolean }): Map<string, string> {
  const headers = new Map<string, string>();
  let last: string | undefined;
  for (let first = true; ; first = false) {
    const { line, eof } = readLine();
    let text = decodeUtf8(line);
    if (eof && text === '') throw new MultipartError('multipart: NextPart: EOF');
    text = text.replace(/\r?\n$/, '');
    if (text === '') return headers;
    if (text[0] === ' ' || text[0] === '\t') {
      if (first || last === undefined) throw new MultipartError('malformed MIME header initial line');
      // A folded continuation of the previous header.
      headers.set(last, `${headers.get(last) ?? ''} ${text.trim()}`);
      continue;
    }
    const colon = text.indexOf(':');
    const key = colon === -1 ? '' : text.slice(0, colon);
    if (key === '' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(key)) {
      throw new MultipartError(`malformed MIME header line: ${text.slice(0, 100)}`);
    }
    const name = key.toLowerCase();
    if (!headers.has(name)) headers.set(name, text.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
    last = name;
    if (eof) throw new MultipartError('multipart: NextPart: EOF');
  }
}

/**
 * The part's content: from `start` to the newline that precedes the next boundary. A boundary
 * only counts when followed by `--`, whitespace, a newline or the end of the body.
 */
function readContent(
  buf: Buffer,
  start: number,
  nlDashBoundary: Buffer,
  dashBoundary: Buffer,
): { start: number; end: number } {
  // An empty part may put the boundary line right after its headers.
  if (startsWith(buf.subarray(start), dashBoundary) && boundaryEnds(buf, start + dashBoundary.length)) {
    return { start, end: start };
  }
  for (let i = buf.indexOf(nlDashBoundary, start); i !== -1; i = buf.indexOf(nlDashBoundary, i + 1)) {
    if (boundaryEnds(buf, i + nlDashBoundary.length)) return { start, end: i };
  }
  throw new MultipartError('multipart: NextPart: unexpected EOF');
}

function boundaryEnds(buf: Buffer, at: number): boolean {
  if (at === buf.length) return true;
  const c = buf[at];
  if (c === 0x20 || c === 0x09 || c === CR || c === LF) return true;
  return c === 0x2d && buf[at + 1] === 0x2d;
}

/** Go's Part.FormName: the `name` of a `form-data` Content-Disposition, else "". */
function formName(disposition: string): string {
  try {
    const { type, params } = parseMediaType(disposition);
    return type === 'form-data' ? (params.get('name') ?? '') : '';
  } catch (err) {
    if (err instanceof MediaTypeError) return '';
    throw err;
  }
}
