// String builtins the WASM target leaves to the host: sprintf, prefix/suffix matching, counting, glob quoting.
import { BuiltinError, type BuiltinTable, str } from './builtin-types.ts';
import { sprintf } from './go-format.ts';

/** A string, or an array/set of strings, as strings.any_prefix_match takes them. */
function stringsOf(v: unknown, pos: number): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) || v instanceof Set) {
    const out: string[] = [];
    for (const e of v) {
      if (typeof e !== 'string')
        throw new BuiltinError(`operand ${pos} must be string, array of strings or set of strings`);
      out.push(e);
    }
    return out;
  }
  throw new BuiltinError(`operand ${pos} must be one of {string, array, set}`);
}

// gobwas/glob's meta characters (QuoteMeta escapes exactly these).
const GLOB_SPECIAL = new Set(['*', '?', '\\', '[', ']', '{', '}']);

export const stringBuiltins: BuiltinTable = {
  sprintf: {
    sets: true,
    fn: ([format, values]) => {
      const f = str(format, 1);
      if (!Array.isArray(values)) throw new BuiltinError('operand 2 must be array');
      return sprintf(f, values);
    },
  },
  'strings.any_prefix_match': {
    sets: true,
    fn: ([search, base]) => {
      const xs = stringsOf(search, 1);
      const ps = stringsOf(base, 2);
      return xs.some((x) => ps.some((p) => x.startsWith(p)));
    },
  },
  'strings.any_suffix_match': {
    sets: true,
    fn: ([search, base]) => {
      const xs = stringsOf(search, 1);
      const ps = stringsOf(base, 2);
      return xs.some((x) => ps.some((p) => x.endsWith(p)));
    },
  },
  'strings.count': {
    fn: ([search, sub]) => {
      const s = str(search, 1);
      const t = str(sub, 2);
      // Go's strings.Count: an empty substring counts once per rune plus one.
      if (t === '') return [...s].length + 1;
      let n = 0;
      for (let i = s.indexOf(t); i !== -1; i = s.indexOf(t, i + t.length)) n++;
      return n;
    },
  },
  indexof_n: {
    fn: ([haystack, needle]) => {
      const h = [...str(haystack, 1)];
      const n = [...str(needle, 2)];
      if (n.length === 0) throw new BuiltinError('empty search character');
      const out: number[] = [];
      outer: for (let i = 0; i + n.length <= h.length; i++) {
        for (let j = 0; j < n.length; j++) if (h[i + j] !== n[j]) continue outer;
        out.push(i);
      }
      return out;
    },
  },
  'glob.quote_meta': {
    fn: ([x]) => {
      let out = '';
      for (const c of str(x, 1)) out += GLOB_SPECIAL.has(c) ? `\\${c}` : c;
      return out;
    },
  },
};
