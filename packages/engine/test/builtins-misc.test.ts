// Differential test of the remaining host builtins (encodings, hashes, sprintf, strings, regex, CIDR,
// semver, units, ranges) against `opa eval`.
import { beforeAll, describe, expect, it } from 'vitest';
import { SUPPORTED_HOST_BUILTINS } from '../src/index.ts';
import { type DiffOutcome, differential } from './differential.ts';

type Case = { name: string; expr: string };
const c = (expr: string): Case => ({ name: expr, expr });

const encoding: Case[] = [
  'hex.encode("hello")',
  'hex.encode("ünï")',
  'hex.decode("68656c6c6f")',
  'hex.decode("C3BC")',
  'hex.decode("6")',
  'hex.decode("zz")',
  'hex.decode("")',
  'base64url.encode_no_pad("hello?>")',
  'base64url.encode_no_pad("")',
  'urlquery.encode("a b&c=d/é~-_.!*()\'")',
  'urlquery.decode("a+b%26c%3Dd%2F%C3%A9")',
  'urlquery.decode("%zz")',
  'urlquery.decode("%4")',
  'urlquery.encode_object({"b": ["2", "1"], "a": "x y", "c": {"s"}})',
  'urlquery.encode_object({})',
  'urlquery.decode_object("a=1&b=2&a=3")',
  'urlquery.decode_object("a=1;b=2")',
  'urlquery.decode_object("")',
  'urlquery.decode_object("a&b=&=c")',
  'urlquery.decode_object("%zz=1")',
  'crypto.md5("portcullis")',
  'crypto.sha1("portcullis")',
  'crypto.sha256("portcullis")',
  'crypto.hmac.md5("message", "key")',
  'crypto.hmac.sha1("message", "key")',
  'crypto.hmac.sha256("message", "key")',
  'crypto.hmac.sha512("message", "key")',
  'crypto.hmac.equal("abc", "abc")',
  'crypto.hmac.equal("abc", "abd")',
].map(c);

const strings: Case[] = [
  'sprintf("%d", [5])',
  'sprintf("%d items", [1.5])',
  'sprintf("%v", [1.5])',
  'sprintf("%v|%v|%v", [1234567.5, 0.000012, 100000.5])',
  'sprintf("%s", [5])',
  'sprintf("%s-%s", ["a"])',
  'sprintf("%s", ["a", "b"])',
  'sprintf("%v", [[1, "a"]])',
  'sprintf("%v", [{"b": 1, "a": [true, null]}])',
  'sprintf("%v", [{"x", "a"}])',
  'sprintf("%v", [set()])',
  'sprintf("%5d|%-5d|%05d|", [42, 42, 42])',
  'sprintf("%x %X %o %b %#x", [255, 255, 8, 5, 255])',
  'sprintf("%q", ["hi\\n\\"there\\" \\u00e9"])',
  'sprintf("%.2f %f %.0f", [3.14159, 2.5, 2.5])',
  'sprintf("%.2f %.1f", [0.125, 0.25])',
  'sprintf("%e %E", [123456.789, 0.5])',
  'sprintf("%g %g %.3g", [0.0001234, 1e21, 1234.5678])',
  'sprintf("%t", [true])',
  'sprintf("%v %v", [true, null])',
  'sprintf("100%%", [])',
  'sprintf("%", [])',
  'sprintf("%z", [1])',
  'sprintf("%d", [12345678901234567890])',
  'sprintf("%.3s|%10s|%-10s|", ["abcdef", "ab", "cd"])',
  'sprintf("%+d|% d|%+.1f", [5, 5, 2.25])',
  'sprintf("%08.3f", [-3.14159])',
  'sprintf("%x", ["hi"])',
  'sprintf("%c%c", [80, 67])',
  'sprintf("%v %v", [1])',
  'sprintf("%6.2v|", [3.14159])',
  'sprintf("user %v may not %v %v", ["alice", "DELETE", "/api/v1/products/7"])',
  'strings.any_prefix_match("foobar", "foo")',
  'strings.any_prefix_match(["a/b", "c/d"], {"c/"})',
  'strings.any_prefix_match("x", [])',
  'strings.any_suffix_match("foobar", ["baz", "bar"])',
  'strings.any_suffix_match({"a.example.com"}, ".example.org")',
  'strings.count("cheese", "e")',
  'strings.count("five", "")',
  'strings.count("aaaa", "aa")',
  'indexof_n("sad tomatoes", "o")',
  'indexof_n("aaaa", "aa")',
  'indexof_n("héllo héllo", "l")',
  'indexof_n("x", "")',
  'glob.quote_meta("*.github.com")',
  'glob.quote_meta("{a,b}[c]?\\\\!-")',
].map(c);

const regex: Case[] = [
  'regex.replace("foo bar", "o+", "0")',
  'regex.replace("abc", "(b)", "[$1]")',
  'regex.replace("abc", "(b)", "[$1x]")',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Go replacement template, not a JS one
  'regex.replace("abc", "(b)", "[${1}x]")',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Go replacement template, not a JS one
  'regex.replace("abc", "(?P<mid>b)", "<${mid}>")',
  'regex.replace("abc", "", "-")',
  'regex.replace("baaac", "a*", "-")',
  'regex.replace("abc", "(", "x")',
  'regex.replace("ABC abc", "(?i)abc", "x")',
  'regex.replace("a.b.c", "\\\\.", "/")',
  'regex.replace("héllo", ".", "x")',
  'regex.replace("xy", "$", "!")',
  'regex.replace("abc", "b", "$$")',
  'regex.replace("2024-01-02", "(\\\\d+)-(\\\\d+)-(\\\\d+)", "$3/$2/$1")',
  'regex.find_n("[oa]+", "foo bar baz", -1)',
  'regex.find_n("[oa]+", "foo bar baz", 2)',
  'regex.find_n("a*", "baaac", -1)',
  'regex.find_n("\\\\d+", "a1b22c333", 0)',
  'regex.find_n("[[:digit:]]+", "a1b22", -1)',
  'regex.find_n("\\\\pL+", "héllo wörld 42", -1)',
  'regex.split("a", "banana")',
  'regex.split(",\\\\s*", "a, b,c")',
  'regex.split("x*", "axbxxc")',
  'regex.split("a", "")',
  'regex.split("", "abc")',
].map(c);

const net: Case[] = [
  'net.cidr_is_valid("10.0.0.0/8")',
  'net.cidr_is_valid("10.0.0.1/8")',
  'net.cidr_is_valid("10.0.0.0")',
  'net.cidr_is_valid("10.0.0.0/33")',
  'net.cidr_is_valid("010.0.0.0/8")',
  'net.cidr_is_valid("1.2.3.4/08")',
  'net.cidr_is_valid("::/0")',
  'net.cidr_is_valid("2001:db8::/32")',
  'net.cidr_is_valid("2001:db8::1/129")',
  'net.cidr_is_valid("::ffff:1.2.3.4/104")',
  'net.cidr_is_valid("1:2:3:4:5:6:7:8::/64")',
  'sort(net.cidr_contains_matches("10.0.0.0/8", ["10.1.2.3", "11.0.0.1"]))',
  'sort(net.cidr_contains_matches(["10.0.0.0/8", "192.168.0.0/16"], {"a": "192.168.1.1", "b": ["10.0.0.1", "extra"]}))',
  'sort(net.cidr_contains_matches({"10.0.0.0/8"}, {"10.0.0.1", "10.0.0.0/24", "10.0.0.0/7"}))',
  'sort(net.cidr_contains_matches("2001:db8::/32", ["2001:db8::1", "2001:db9::1"]))',
  'sort(net.cidr_contains_matches("10.0.0.0/8", "::ffff:10.1.1.1"))',
  'net.cidr_contains_matches("10.0.0.0/8", "not-an-ip")',
].map(c);

const numbers: Case[] = [
  'semver.is_valid("1.2.3")',
  'semver.is_valid("1.2.3-alpha.1+build.5")',
  'semver.is_valid("v1.2.3")',
  'semver.is_valid("1.2")',
  'semver.is_valid("01.2.3")',
  'semver.is_valid("1.2.3-")',
  'semver.is_valid("1.2.3-al_pha")',
  'semver.is_valid(1)',
  'semver.compare("1.2.3", "1.2.4")',
  'semver.compare("1.10.0", "1.9.0")',
  'semver.compare("1.0.0-alpha", "1.0.0")',
  'semver.compare("1.0.0-alpha.1", "1.0.0-alpha.beta")',
  'semver.compare("1.0.0-2", "1.0.0-10")',
  'semver.compare("1.0.0+a", "1.0.0+b")',
  'semver.compare("1.0.0-rc.1", "1.0.0-rc.1.1")',
  'semver.compare("1.0.0", "x")',
  'units.parse_bytes("1KB")',
  'units.parse_bytes("1KiB")',
  'units.parse_bytes("1.5 GB")',
  'units.parse_bytes("1.1kb")',
  'units.parse_bytes("0.3mb")',
  'units.parse_bytes("12")',
  'units.parse_bytes("MB")',
  'units.parse_bytes("5XB")',
  'units.parse_bytes("\\"10\\"mb")',
  'units.parse_bytes(".5k")',
  'units.parse_bytes("5.")',
  'units.parse_bytes("1.2.3k")',
  'units.parse_bytes("123456789012345678901234567890")',
  'units.parse_bytes("0.1EiB")',
  'units.parse_bytes("2.675g")',
  'numbers.range_step(0, 10, 3)',
  'numbers.range_step(10, 0, 3)',
  'numbers.range_step(0, 0, 1)',
  'numbers.range_step(1, 2, 0)',
  'numbers.range_step(1, 5, 1.5)',
  'numbers.range_step(-5, 5, 5)',
].map(c);

const groups: [string, Case[]][] = [
  ['encodings and hashes', encoding],
  ['sprintf and strings', strings],
  ['regex', regex],
  ['net', net],
  ['semver, units, ranges', numbers],
];

describe.each(groups)('%s match opa eval', (_group, cases) => {
  let outcomes: Map<string, DiffOutcome>;
  beforeAll(async () => {
    outcomes = await differential(cases);
  });
  it.each(cases)('$name', ({ name }) => {
    const { opa, wasm } = outcomes.get(name)!;
    expect(wasm).toEqual(opa);
  });
});

it('every supported host builtin is covered by a differential case', () => {
  const covered = [...groups.flatMap(([, cases]) => cases.map((x) => x.expr))].join(' ');
  const timeAndJwt = [...SUPPORTED_HOST_BUILTINS].filter(
    (b) => b.startsWith('time.') || b.startsWith('io.jwt.'),
  );
  const rest = [...SUPPORTED_HOST_BUILTINS].filter((b) => !timeAndJwt.includes(b));
  expect(rest.filter((b) => !covered.includes(`${b}(`))).toEqual([]);
});
