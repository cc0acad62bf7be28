// Differential test of the time.* host builtins against `opa eval`, plus time.now_ns's one-reading rule.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRevision } from '../src/index.ts';
import { parseValue } from '../src/rego-json.ts';
import { type DiffOutcome, differential, lit } from './differential.ts';
import { compileRevision } from './fixtures.ts';

type Case = { name: string; expr: string; want?: 'undefined' | 'defined' };

const T = '1496430000123456789'; // 2017-06-02T19:00:00.123456789Z
const NEG = '-1234567890987654321'; // 1930-11-18
const ZONES = [
  'UTC',
  '',
  'America/New_York',
  'Asia/Kolkata',
  'Australia/Lord_Howe',
  'Europe/Berlin',
  'Pacific/Chatham',
];

const rfc3339: Case[] = [
  ['2017-06-02T19:00:00.123456789Z', 'defined'],
  ['2017-06-02T19:00:00Z', 'defined'],
  ['2017-06-02T19:00:00+05:30', 'defined'],
  ['2017-06-02T19:00:00-07:00', 'defined'],
  ['2017-06-02T19:00:00.5-00:00', 'defined'],
  ['2017-06-02T19:00:00,5Z', undefined],
  ['2017-06-02T1:00:00Z', undefined],
  ['2017-06-02T19:00:00.1234567891234Z', undefined],
  ['1970-01-01T00:00:00Z', 'defined'],
  ['1969-12-31T23:59:59.999999999Z', 'defined'],
  ['2016-02-29T00:00:00Z', 'defined'],
  ['2017-02-29T00:00:00Z', 'undefined'],
  ['2017-06-31T00:00:00Z', 'undefined'],
  ['2017-13-01T00:00:00Z', 'undefined'],
  ['2017-06-02T24:00:00Z', 'undefined'],
  ['2017-06-02T19:60:00Z', 'undefined'],
  ['2017-06-02T19:00:60Z', 'undefined'],
  ['2017-06-02T19:00:00+24:00', undefined],
  ['2017-06-02T19:00:00+25:00', 'undefined'],
  ['2017-06-02t19:00:00Z', 'undefined'],
  ['2017-06-02T19:00:00', 'undefined'],
  ['2017-06-02', 'undefined'],
  ['', 'undefined'],
  ['2017-06-02T19:00:00Zjunk', 'undefined'],
  ['1677-09-21T00:12:43.145224192Z', 'defined'],
  ['1677-09-21T00:12:43.145224191Z', 'undefined'],
  ['2262-04-11T23:47:16.854775807Z', 'defined'],
  ['2262-04-11T23:47:16.854775808Z', 'undefined'],
  ['0001-01-01T00:00:00Z', 'undefined'],
].map(([v, want]) => ({
  name: `parse_rfc3339_ns ${JSON.stringify(v)}`,
  expr: `time.parse_rfc3339_ns(${lit(v!)})`,
  want: want as Case['want'],
}));

const parseNs: Case[] = [
  ['2006-01-02', '2017-06-02'],
  ['2006-01-02', '2017-6-02'],
  ['2006-1-2', '2017-6-2'],
  ['RFC3339', '2017-06-02T19:00:00+01:00'],
  ['RFC3339Nano', '2017-06-02T19:00:00.000000001Z'],
  ['RFC1123', 'Fri, 02 Jun 2017 19:00:00 UTC'],
  ['RFC1123', 'Fri, 02 Jun 2017 19:00:00 PST'],
  ['RFC1123', 'Fri, 02 Jun 2017 19:00:00 GMT+3'],
  ['RFC1123Z', 'Fri, 02 Jun 2017 19:00:00 -0700'],
  ['RFC822', '02 Jun 17 19:00 UTC'],
  ['RFC822Z', '02 Jun 17 19:00 +0100'],
  ['RFC850', 'Friday, 02-Jun-17 19:00:00 UTC'],
  ['ANSIC', 'Fri Jun  2 19:00:00 2017'],
  ['UnixDate', 'Fri Jun  2 19:00:00 UTC 2017'],
  ['RubyDate', 'Fri Jun 02 19:00:00 -0700 2017'],
  ['Mon Jan _2 15:04:05 2006', 'Fri Jun 2 19:00:00 2017'],
  ['January 2, 2006 3:04pm', 'june 2, 2017 7:05pm'],
  ['Jan 2, 2006 at 3:04PM (MST)', 'Jun 2, 2017 at 12:04AM (UTC)'],
  ['Jan 2, 2006 at 3:04PM (MST)', 'Jun 2, 2017 at 12:04PM (UTC)'],
  ['3:04PM', '7:05PM'],
  ['15:04:05.000', '19:00:00.123'],
  ['15:04:05.000', '19:00:00.12'],
  ['15:04:05.999', '19:00:00.12'],
  ['15:04:05,000', '19:00:00,123'],
  ['2006-01-02 15:04:05 -07', '2017-06-02 19:00:00 +05'],
  ['2006-01-02 15:04:05 -070000', '2017-06-02 19:00:00 +053015'],
  ['2006-01-02 15:04:05 Z07:00:00', '2017-06-02 19:00:00 -05:30:15'],
  ['2006-002', '2016-060'],
  ['2006-002', '2016-366'],
  ['2006-002', '2017-366'],
  ['2006-__2', '2017- 32'],
  ['02/01/06', '31/12/99'],
  ['02/01/06', '31/12/68'],
  ['_2006', '_2017'],
  ['2006-01-02', 'not a date'],
  ['2006-01-02', '2017-06-02 trailing'],
  ['Monday 2006', 'Funday 2017'],
  ['2006  01', '2017 01'],
  ['2006 01', '2017    01'],
].map(([layout, value]) => ({
  name: `parse_ns ${JSON.stringify(layout)} ${JSON.stringify(value)}`,
  expr: `time.parse_ns(${lit(layout!)}, ${lit(value!)})`,
}));

const durations: Case[] = [
  '1h30m',
  '1.5h',
  '-2m3.5s',
  '+5s',
  '300ms',
  '1µs',
  '1μs',
  '1us',
  '42ns',
  '0',
  '-0',
  '',
  '1',
  '1d',
  '1w',
  '1y',
  '1.5d',
  '1D',
  '.5s',
  '1.s',
  '.s',
  '1h1h',
  '0.000000001s',
  '1.0000000001s',
  '9223372036854775807ns',
  '9223372036854775808ns',
  '-9223372036854775808ns',
  '2562047h47m16.854775807s',
  '2562048h',
  '1e3s',
  ' 1s',
].map((v) => ({ name: `parse_duration_ns ${JSON.stringify(v)}`, expr: `time.parse_duration_ns(${lit(v)})` }));

const instants = [T, NEG, '0', '-1', '951782400000000000', '1709164800999999999'];
const zoned: Case[] = instants.flatMap((ns) =>
  ZONES.flatMap((tz): Case[] => [
    { name: `date [${ns}, ${tz}]`, expr: `time.date([${ns}, ${lit(tz)}])`, want: 'defined' },
    { name: `clock [${ns}, ${tz}]`, expr: `time.clock([${ns}, ${lit(tz)}])`, want: 'defined' },
    { name: `weekday [${ns}, ${tz}]`, expr: `time.weekday([${ns}, ${lit(tz)}])`, want: 'defined' },
    { name: `format [${ns}, ${tz}]`, expr: `time.format([${ns}, ${lit(tz)}])`, want: 'defined' },
  ]),
);

const misc: Case[] = [
  { name: 'date ns', expr: `time.date(${T})` },
  { name: 'clock ns', expr: `time.clock(${T})` },
  { name: 'weekday ns', expr: `time.weekday(${T})` },
  { name: 'date unknown zone', expr: `time.date([${T}, "Mars/Olympus_Mons"])`, want: 'undefined' },
  { name: 'date lower-case zone', expr: `time.date([${T}, "america/new_york"])`, want: 'undefined' },
  { name: 'date float ns', expr: 'time.date(1.5)', want: 'undefined' },
  { name: 'format float ns', expr: 'time.format(1000000000.5)', want: 'undefined' },
  { name: 'format default', expr: `time.format(${T})` },
  { name: 'format whole second', expr: 'time.format(1496430000000000000)' },
  { name: 'format RFC822Z NY', expr: `time.format([${T}, "America/New_York", "RFC822Z"])` },
  { name: 'format RFC1123 UTC', expr: `time.format([${T}, "UTC", "RFC1123"])` },
  { name: 'format ANSIC', expr: `time.format([${T}, "UTC", "ANSIC"])` },
  { name: 'format date only', expr: `time.format([${T}, "Asia/Kolkata", "2006-01-02"])` },
  { name: 'format kitchen', expr: `time.format([${T}, "America/New_York", "3:04PM"])` },
  { name: 'format 12h padded', expr: `time.format([${T}, "UTC", "03:04:05 pm"])` },
  { name: 'format midnight 12h', expr: 'time.format([0, "UTC", "3:04 PM 03"])' },
  { name: 'format long names', expr: `time.format([${T}, "UTC", "Monday, January 2 2006"])` },
  { name: 'format yday', expr: `time.format([${T}, "UTC", "002 __2 _2 2"])` },
  { name: 'format two-digit year', expr: `time.format([${NEG}, "UTC", "06 2006"])` },
  { name: 'format fractions 0', expr: `time.format([${T}, "UTC", "05.000 05.000000 05,0"])` },
  { name: 'format fractions 9', expr: `time.format([1496430000120000000, "UTC", "05.999 05.999999999 .9"])` },
  { name: 'format fraction 9 zero', expr: 'time.format([1496430000000000000, "UTC", "05.999|"])' },
  {
    name: 'format numeric zones',
    expr: `time.format([${T}, "Asia/Kolkata", "-07 -0700 -07:00 -070000 -07:00:00"])`,
  },
  { name: 'format iso zones utc', expr: `time.format([${T}, "UTC", "Z07 Z0700 Z07:00 Z070000 Z07:00:00"])` },
  { name: 'format iso zones west', expr: `time.format([${T}, "America/New_York", "Z07 Z0700 Z07:00"])` },
  { name: 'format MST utc', expr: `time.format([${T}, "UTC", "MST"])` },
  { name: 'format literal text', expr: `time.format([${T}, "UTC", "at 15h on day 2 of month 1"])` },
  { name: 'format negative instant', expr: `time.format(${NEG})` },
  { name: 'add_date plus one month', expr: `time.add_date(${T}, 0, 1, 0)` },
  { name: 'add_date Jan 31 plus a month', expr: 'time.add_date(1485820800000000000, 0, 1, 0)' },
  { name: 'add_date leap day plus a year', expr: 'time.add_date(1456704000000000000, 1, 0, 0)' },
  { name: 'add_date negative', expr: `time.add_date(${T}, -1, -13, -40)` },
  { name: 'add_date big days', expr: `time.add_date(${T}, 0, 0, 3650)` },
  { name: 'add_date out of range', expr: `time.add_date(${T}, 300, 0, 0)`, want: 'undefined' },
  { name: 'add_date float years', expr: `time.add_date(${T}, 1.5, 0, 0)`, want: 'undefined' },
  { name: 'diff same', expr: `time.diff(${T}, ${T})` },
  { name: 'diff ordered', expr: `time.diff(${T}, 0)` },
  { name: 'diff reversed', expr: `time.diff(0, ${T})` },
  { name: 'diff borrow days', expr: 'time.diff(1485820800000000000, 1488326400000000000)' },
  { name: 'diff borrow all', expr: 'time.diff(1483228799000000000, 1483228800000000000)' },
  { name: 'diff zones', expr: `time.diff([${T}, "Asia/Kolkata"], [0, "America/New_York"])` },
  { name: 'diff negative', expr: `time.diff(${NEG}, ${T})` },
];

const all = [...rfc3339, ...parseNs, ...durations, ...zoned, ...misc];

describe('time.* builtins match opa eval', () => {
  let outcomes: Map<string, DiffOutcome>;
  beforeAll(async () => {
    outcomes = await differential(all);
  });

  it.each(all)('$name', ({ name, want }) => {
    const { opa, wasm } = outcomes.get(name)!;
    expect(wasm).toEqual(opa);
    if (want === 'undefined') expect(opa).toBeUndefined();
    if (want === 'defined') expect(opa).toBeDefined();
  });
});

describe('time.now_ns', () => {
  const rego = `package clock
readings := [time.now_ns() | some _ in numbers.range(1, 50)]
first := time.now_ns()
again := time.now_ns()
snapshot := {"first": first, "again": again, "readings": readings}
`;
  type Snapshot = { first: bigint; again: bigint; readings: bigint[] };

  it('gives one value per evaluation, read from the wall clock, and a new value next time', async () => {
    const policy = await loadRevision(await compileRevision('clock', rego, ['clock/snapshot']));
    const snapshot = (): Snapshot =>
      parseValue(policy.evaluateJson('clock/snapshot').resultJson!) as Snapshot;
    const before = BigInt(Date.now()) * 1_000_000n;
    const a = snapshot();
    const after = BigInt(Date.now() + 1) * 1_000_000n;
    expect(a.readings).toHaveLength(50);
    expect(new Set(a.readings)).toEqual(new Set([a.first]));
    expect(a.again).toBe(a.first);
    expect(a.first).toBeGreaterThanOrEqual(before);
    expect(a.first).toBeLessThanOrEqual(after);
    // A later evaluation reads the clock again: wait for the clock to move instead of sleeping.
    let b = snapshot();
    while (b.first === a.first) b = snapshot();
    expect(b.first).toBeGreaterThan(a.first);
  });
});
