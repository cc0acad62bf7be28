import { describe, expect, it } from 'vitest';
import { scanJsonObject } from '../src/json-text.ts';

const scan = (text: string | Uint8Array) =>
  scanJsonObject(typeof text === 'string' ? Buffer.from(text) : text);

describe('scanJsonObject', () => {
  it('returns the top-level keys of a JSON object, escapes decoded, nested keys left out', () => {
    expect(
      scan(
        ' {"a": {"x": [1, -2.5e+3, 0.1E-2, true, false, null, {"y": "\\u00e9\\n"}]}, "b\\"c": [], "d": {}}\n',
      ),
    ).toEqual(['a', 'b"c', 'd']);
    expect(scan('{}')).toEqual([]);
    expect(scan('{"é": "日本"}')).toEqual(['é']);
  });

  it.each([
    ['empty text', '', /unexpected character at the end of the text/],
    ['a stray character', ' x{}', /unexpected character at byte 1/],
    ['a trailing comma', '{"a": 1,}', /expected a string key/],
    ['a missing comma', '{"a": 1 "b": 2}', /expected ','/],
    ['a missing colon', '{"a" 1}', /expected ':'/],
    ['a single-quoted key', "{'a': 1}", /expected a string key/],
    ['an unquoted key', '{a: 1}', /expected a string key/],
    ['an unclosed object', '{"a": {"b": 1}', /end of the text/],
    ['an unclosed array', '{"a": [1, 2}', /expected ','/],
    ['an unterminated string', '{"a": "x}', /unterminated string/],
    ['a raw newline in a string', '{"a": "x\ny"}', /control character/],
    ['a bad escape', '{"a": "\\x41"}', /bad escape/],
    ['a short \\u escape', '{"a": "\\u12"}', /bad \\u escape/],
    ['a leading zero', '{"a": 01}', /expected ','/],
    ['a bare minus', '{"a": -}', /bad number/],
    ['a trailing dot', '{"a": 1.}', /bad number/],
    ['an empty exponent', '{"a": 1e}', /bad number/],
    ['a leading plus', '{"a": +1}', /unexpected character/],
    ['NaN', '{"a": NaN}', /unexpected character/],
    ['a misspelt literal', '{"a": tru}', /unexpected character/],
    ['text after the object', '{"a": 1} {"b": 2}', /after the object/],
    ['a comment', '{"a": 1} // c', /after the object/],
  ])('refuses %s, as JSON.parse does', (_name, text, message) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(() => scan(text)).toThrow(message);
  });

  it('refuses JSON whose root is not an object', () => {
    expect(() => scan('[1]')).toThrow(/expected a JSON object at byte 0/);
    expect(() => scan(' "x"')).toThrow(/expected a JSON object at byte 1/);
  });

  it('refuses bytes that are not UTF-8', () => {
    expect(() => scan(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).toThrow(/UTF-8/);
  });

  it('goes deep without recursion', () => {
    const depth = 100_000;
    expect(scan(`{"a": ${'['.repeat(depth)}${']'.repeat(depth)}}`)).toEqual(['a']);
  });

  it('reads a view at an offset of a larger buffer', () => {
    const buf = Buffer.from('xx{"k": 1}yy');
    expect(scanJsonObject(buf.subarray(2, 10))).toEqual(['k']);
  });
});
