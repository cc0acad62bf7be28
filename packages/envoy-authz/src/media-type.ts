// Go's mime.ParseMediaType, which OPA-Envoy uses for a multipart boundary and a part's Content-Disposition: strict enough that its errors decide a 400.

export interface MediaType {
  /** Lower-cased `type/subtype` (or a bare disposition like `form-data`). */
  type: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Map<string, string>;
}

export class MediaTypeError extends Error {
  /** The media type when only the parameters were malformed (Go returns it with the error). */
  readonly mediaType: string | undefined;

  constructor(message: string, mediaType?: string) {
    super(message);
    this.name = 'MediaTypeError';
    this.mediaType = mediaType;
  }
}

const TSPECIALS = '()<>@,;:\\"/[]?=';

function isTokenChar(ch: string): boolean {
  const c = ch.charCodeAt(0);
  return c > 0x20 && c < 0x7f && !TSPECIALS.includes(ch);
}

function consumeToken(v: string): [token: string, rest: string] {
  let i = 0;
  while (i < v.length && isTokenChar(v[i]!)) i++;
  return [v.slice(0, i), v.slice(i)];
}

/** A token, or a quoted string where `\` escapes only tspecials (Go's consumeValue). */
function consumeValue(v: string): [value: string, rest: string] {
  if (v === '') return ['', v];
  if (v[0] !== '"') return consumeToken(v);
  let out = '';
  for (let i = 1; i < v.length; i++) {
    const ch = v[i]!;
    if (ch === '"') return [out, v.slice(i + 1)];
    if (ch === '\\' && i + 1 < v.length && TSPECIALS.includes(v[i + 1]!)) {
      out += v[i + 1];
      i++;
    } else if (ch === '\r' || ch === '\n') {
      return ['', v];
    } else {
      out += ch;
    }
  }
  return ['', v];
}

const trimLeftSpace = (s: string): string => s.replace(/^\s+/u, '');

function consumeParam(v: string): [key: string, value: string, rest: string] {
  let rest = trimLeftSpace(v);
  if (!rest.startsWith(';')) return ['', '', v];
  rest = trimLeftSpace(rest.slice(1));
  let key: string;
  [key, rest] = consumeToken(rest);
  key = key.toLowerCase();
  if (key === '') return ['', '', v];
  rest = trimLeftSpace(rest);
  if (!rest.startsWith('=')) return ['', '', v];
  rest = trimLeftSpace(rest.slice(1));
  const [value, rest2] = consumeValue(rest);
  if (value === '' && rest2 === rest) return ['', '', v];
  return [key, value, rest2];
}

function checkMediaType(s: string): void {
  const [typ, rest] = consumeToken(s);
  if (typ === '') throw new MediaTypeError('mime: no media type');
  if (rest === '') return;
  if (!rest.startsWith('/')) throw new MediaTypeError('mime: expected slash after first token');
  const [subtype, rest2] = consumeToken(rest.slice(1));
  if (subtype === '') throw new MediaTypeError('mime: expected token after slash');
  if (rest2 !== '') throw new MediaTypeError('mime: unexpected content after media subtype');
}

/**
 * Throws MediaTypeError as Go does: a malformed type, a malformed parameter, or one parameter
 * given twice with different values. RFC 2231 continuations (`name*0=`) are kept under their
 * literal names rather than reassembled: no Envoy-facing client is known to send them.
 */
export function parseMediaType(value: string): MediaType {
  const semi = value.indexOf(';');
  const base = semi === -1 ? value : value.slice(0, semi);
  const type = base.toLowerCase().trim();
  checkMediaType(type);
  const params = new Map<string, string>();
  let v = value.slice(base.length);
  while (v.length > 0) {
    v = trimLeftSpace(v);
    if (v === '') break;
    const [key, val, rest] = consumeParam(v);
    if (key === '') {
      if (rest.trim() === ';') break; // a trailing semicolon is not an error
      throw new MediaTypeError('mime: invalid media parameter', type);
    }
    const existing = params.get(key);
    if (existing !== undefined && existing !== val)
      throw new MediaTypeError('mime: duplicate parameter name');
    params.set(key, val);
    v = rest;
  }
  return { type, params };
}
