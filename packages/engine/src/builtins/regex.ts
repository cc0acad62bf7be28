// regex.replace, regex.find_n and regex.split with Go's RE2 syntax translated to JS and Go's match rules.
import { BuiltinError, type BuiltinTable, int, str } from './builtin-types.ts';

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const cache = new Map<string, RegExp>();

/**
 * Compiles an RE2 pattern as a global, unicode JS RegExp. Covers what policies use: `(?P<name>)`, leading
 * flag groups, `\A`, `\z`, `\pL`, `\Q…\E` and POSIX classes; RE2 features JS lacks (mid-pattern flag
 * groups, `(?U)`) are errors, which make the call undefined rather than silently different.
 */
export function compileRe2(pattern: string): RegExp {
  const cached = cache.get(pattern);
  if (cached !== undefined) return cached;
  let src = pattern;
  let flags = 'gu';
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead !== null) {
    if (lead[1]!.includes('U')) throw new BuiltinError('(?U) is not supported');
    flags += [...new Set(lead[1]!)].join('');
    src = src.slice(lead[0].length);
  }
  let out = '';
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new BuiltinError('trailing backslash at end of expression');
      if (n === 'A') out += '^';
      else if (n === 'z') out += '(?![\\s\\S])';
      else if (n === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const lit = src.slice(i + 2, end < 0 ? undefined : end);
        out += lit.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end < 0 ? src.length : end + 1;
        continue;
      } else if ((n === 'p' || n === 'P') && src[i + 2] !== '{') {
        out += `\\${n}{${src[i + 2] ?? ''}}`;
        i += 2;
        continue;
      } else if (/[!"#%&',:;<=>@_`~-]/.test(n)) out += n === '-' ? '\\-' : n;
      else out += c + n;
      i++;
    } else if (c === '[' && src[i + 1] === '[' && src[i + 2] === ':') {
      const end = src.indexOf(':]', i + 3);
      const name = src.slice(i + 3, end);
      const cls = POSIX[name];
      if (end < 0 || cls === undefined) throw new BuiltinError(`invalid character class range: ${name}`);
      out += `[${cls}`;
      i = end + 1;
    } else if (c === '[' && src[i + 1] === ':') {
      const end = src.indexOf(':]', i + 2);
      const cls = end < 0 ? undefined : POSIX[src.slice(i + 2, end)];
      if (cls === undefined) out += c;
      else {
        out += cls;
        i = end + 1;
      }
    } else if (c === '(' && src.startsWith('(?P<', i)) {
      out += '(?<';
      i += 3;
    } else if (c === '(' && src[i + 1] === '?' && /^\(\?[imsU-]+[:)]/.test(src.slice(i))) {
      throw new BuiltinError('flag groups are only supported at the start of a pattern');
    } else out += c;
  }
  let re: RegExp;
  try {
    re = new RegExp(out, flags);
  } catch (err) {
    throw new BuiltinError(`error parsing regexp: ${(err as Error).message}`);
  }
  if (cache.size >= 256) cache.clear();
  cache.set(pattern, re);
  return re;
}

/** Go's allMatches: successive leftmost matches, skipping an empty match right after a previous match. */
export function goMatches(re: RegExp, s: string, limit = -1): RegExpExecArray[] {
  const out: RegExpExecArray[] = [];
  let prevEnd = -1;
  re.lastIndex = 0;
  while (limit < 0 || out.length < limit) {
    const m = re.exec(s);
    if (m === null) break;
    const end = m.index + m[0].length;
    if (m[0].length === 0) {
      // Advance by one code point so the next search starts past this empty match.
      const cp = s.codePointAt(m.index);
      re.lastIndex = m.index + (cp !== undefined && cp > 0xffff ? 2 : 1);
      if (m.index !== prevEnd) out.push(m);
      prevEnd = end;
      if (m.index >= s.length) break;
      continue;
    }
    out.push(m);
    prevEnd = end;
  }
  return out;
}

/** Go's Regexp.Expand for ReplaceAllString: `$1`, `${1}`, `$name`, `${name}`, `$$`. */
function expand(template: string, m: RegExpExecArray): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    if (template[i + 1] === '$') {
      out += '$';
      i++;
      continue;
    }
    let name: string;
    let end: number;
    if (template[i + 1] === '{') {
      const close = template.indexOf('}', i + 2);
      name = close < 0 ? '' : template.slice(i + 2, close);
      if (close < 0 || !/^\w+$/.test(name)) {
        out += '$';
        continue;
      }
      end = close + 1;
    } else {
      const w = /^\w+/.exec(template.slice(i + 1));
      if (w === null) {
        out += '$';
        continue;
      }
      name = w[0];
      end = i + 1 + name.length;
    }
    if (/^\d+$/.test(name)) out += m[Number(name)] ?? '';
    else out += m.groups?.[name] ?? '';
    i = end - 1;
  }
  return out;
}

export const regexBuiltins: BuiltinTable = {
  'regex.replace': {
    fn: ([s, pattern, value]) => {
      const base = str(s, 1);
      const re = compileRe2(str(pattern, 2));
      const template = str(value, 3);
      let out = '';
      let last = 0;
      for (const m of goMatches(re, base)) {
        out += base.slice(last, m.index) + expand(template, m);
        last = m.index + m[0].length;
      }
      return out + base.slice(last);
    },
  },
  'regex.find_n': {
    fn: ([pattern, value, n]) => {
      const re = compileRe2(str(pattern, 1));
      const limit = Number(int(n, 3));
      return goMatches(re, str(value, 2), limit < 0 ? -1 : limit).map((m) => m[0]);
    },
  },
  'regex.split': {
    fn: ([pattern, value]) => {
      const re = compileRe2(str(pattern, 1));
      const s = str(value, 2);
      if (re.source !== '(?:)' && s === '') return [''];
      const parts: string[] = [];
      let beg = 0;
      let end = 0;
      for (const m of goMatches(re, s)) {
        end = m.index;
        if (m.index + m[0].length !== 0) parts.push(s.slice(beg, end));
        beg = m.index + m[0].length;
      }
      if (end !== s.length) parts.push(s.slice(beg));
      return parts;
    },
  },
};
