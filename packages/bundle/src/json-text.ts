// Checking JSON text as UTF-8 bytes without building it: a decision point passes a bundle's data on as text.
import { isUtf8 } from 'node:buffer';

const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

enum State {
  Value,
  Key,
  After,
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && (isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

const LITERALS: Record<number, readonly number[]> = {
  116: [0x74, 0x72, 0x75, 0x65], // true
  102: [0x66, 0x61, 0x6c, 0x73, 0x65], // false
  110: [0x6e, 0x75, 0x6c, 0x6c], // null
};

/**
 * Checks that `bytes` are one JSON object as RFC 8259 has it (the grammar JSON.parse accepts; UTF-8,
 * no byte order mark) and returns its top-level keys, in order. Allocates nothing in proportion to
 * the text beyond those keys. Throws an Error whose message says what is wrong and at which byte.
 */
export function scanJsonObject(bytes: Uint8Array): string[] {
  if (!isUtf8(bytes)) throw new Error('not valid UTF-8');
  const n = bytes.length;
  const keys: string[] = [];
  // The open containers, innermost last: OPEN_OBJECT or OPEN_ARRAY.
  const open: number[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(i >= n ? `${what} at the end of the text` : `${what} at byte ${i}`);
  };
  const skipSpace = (): void => {
    for (;;) {
      const c = bytes[i];
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };
  const string = (): void => {
    i++; // the opening quote
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = bytes[i]!;
      if (c === QUOTE) {
        i++;
        return;
      }
      if (c < 0x20) fail('unescaped control character in a string');
      if (c === BACKSLASH) {
        const e = bytes[i + 1];
        if (e === 0x75) {
          if (!(isHex(bytes[i + 2]) && isHex(bytes[i + 3]) && isHex(bytes[i + 4]) && isHex(bytes[i + 5]))) {
            fail('bad \\u escape');
          }
          i += 6;
        } else if (
          e === QUOTE ||
          e === BACKSLASH ||
          e === 0x2f ||
          e === 0x62 ||
          e === 0x66 ||
          e === 0x6e ||
          e === 0x72 ||
          e === 0x74
        ) {
          i += 2;
        } else {
          fail('bad escape');
        }
      } else {
        i++;
      }
    }
  };
  const number = (): void => {
    if (bytes[i] === MINUS) i++;
    if (bytes[i] === ZERO) i++;
    else if (isDigit(bytes[i])) while (isDigit(bytes[i])) i++;
    else fail('bad number');
    if (bytes[i] === DOT) {
      i++;
      if (!isDigit(bytes[i])) fail('bad number');
      while (isDigit(bytes[i])) i++;
    }
    if (bytes[i] === 0x65 || bytes[i] === 0x45) {
      i++;
      if (bytes[i] === PLUS || bytes[i] === MINUS) i++;
      if (!isDigit(bytes[i])) fail('bad number');
      while (isDigit(bytes[i])) i++;
    }
  };

  skipSpace();
  const first = bytes[i];
  if (first !== OPEN_OBJECT) {
    const other =
      first === OPEN_ARRAY ||
      first === QUOTE ||
      first === MINUS ||
      isDigit(first) ||
      LITERALS[first!] !== undefined;
    fail(other ? 'expected a JSON object' : 'unexpected character');
  }
  let state = State.Value;
  for (;;) {
    skipSpace();
    const c = bytes[i];
    if (state === State.Value) {
      if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        open.push(c);
        i++;
        skipSpace();
        if (bytes[i] === (c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) {
          open.pop();
          i++;
          state = State.After;
        } else {
          state = c === OPEN_OBJECT ? State.Key : State.Value;
        }
      } else if (c === QUOTE) {
        string();
        state = State.After;
      } else if (c === MINUS || isDigit(c)) {
        number();
        state = State.After;
      } else {
        const literal = c === undefined ? undefined : LITERALS[c];
        if (literal === undefined) fail('unexpected character');
        for (const b of literal!) {
          if (bytes[i] !== b) fail('unexpected character');
          i++;
        }
        state = State.After;
      }
    } else if (state === State.Key) {
      if (c !== QUOTE) fail('expected a string key');
      const start = i;
      string();
      if (open.length === 1) {
        keys.push(JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + start, i - start).toString()));
      }
      skipSpace();
      if (bytes[i] !== COLON) fail("expected ':'");
      i++;
      state = State.Value;
    } else {
      const top = open.at(-1);
      if (top === undefined) {
        if (i < n) fail('unexpected text after the object');
        return keys;
      }
      if (c === COMMA) {
        i++;
        state = top === OPEN_OBJECT ? State.Key : State.Value;
      } else if (c === (top === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        i++;
        open.pop();
      } else {
        fail(top === OPEN_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }
}
