// Go's time layouts (`2006-01-02T15:04:05Z07:00`), civil-date arithmetic, durations and zones, as OPA's
// time.* builtins inherit them from Go's time package; written to produce byte-identical results.
import { BuiltinError } from './builtin-types.ts';

const LONG_DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const SHORT_DAYS = LONG_DAYS.map((d) => d.slice(0, 3));
const LONG_MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const SHORT_MONTHS = LONG_MONTHS.map((m) => m.slice(0, 3));
export const WEEKDAYS: readonly string[] = LONG_DAYS;

// ---------------------------------------------------------------------------------------------------------
// Civil calendar (proleptic Gregorian), days counted from 1970-01-01.

export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export function civilFromDays(z0: number): [year: number, month: number, day: number] {
  const z = z0 + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

export function isLeap(y: number): boolean {
  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
}

export function daysIn(month: number, year: number): number {
  if (month === 2) return isLeap(year) ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
}

/** Go's time.Date normalization: months, days, hours… may overflow into the next larger unit. */
export function normalizedDays(year: number, month: number, day: number): number {
  const m0 = month - 1;
  const y = year + Math.floor(m0 / 12);
  const m = ((m0 % 12) + 12) % 12;
  return daysFromCivil(y, m + 1, 1) + day - 1;
}

// ---------------------------------------------------------------------------------------------------------
// Instants: unix seconds (safe integers within the int64-nanosecond range) plus nanoseconds.

export const MIN_NS = -(2n ** 63n);
export const MAX_NS = 2n ** 63n - 1n;

export interface Instant {
  sec: number;
  nsec: number;
}

export function instantFromNs(ns: bigint): Instant {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

/** UnixNano of an instant; outside int64 is OPA's "time outside of valid range". */
export function nsFromInstant(t: Instant): bigint {
  const ns = BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
  if (ns < MIN_NS || ns > MAX_NS) throw new BuiltinError('time outside of valid range');
  return ns;
}

// ---------------------------------------------------------------------------------------------------------
// Zones: UTC, Local, or IANA names through Intl (which carries the same tz database Go embeds).

export interface Zone {
  name: string;
  /** Offset east of UTC in seconds, and the zone abbreviation, at a unix second. */
  at(sec: number): { offset: number; abbr: string };
}

export const UTC: Zone = { name: 'UTC', at: () => ({ offset: 0, abbr: 'UTC' }) };

const zones = new Map<string, Zone>();

export function loadZone(name: string): Zone {
  if (name === '' || name === 'UTC') return UTC;
  const cached = zones.get(name);
  if (cached !== undefined) return cached;
  const tz = name === 'Local' ? new Intl.DateTimeFormat().resolvedOptions().timeZone : name;
  let fmt: Intl.DateTimeFormat;
  try {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      timeZoneName: 'short',
    });
  } catch {
    throw new BuiltinError(`unknown time zone ${name}`);
  }
  // Go's zone lookup is case-sensitive; Intl is not.
  const resolved = fmt.resolvedOptions().timeZone;
  if (name !== 'Local' && resolved !== name && resolved.toLowerCase() === name.toLowerCase()) {
    throw new BuiltinError(`unknown time zone ${name}`);
  }
  const zone: Zone = {
    name,
    at(sec: number) {
      const parts = fmt.formatToParts(new Date(sec * 1000));
      let y = 0;
      let mo = 0;
      let d = 0;
      let h = 0;
      let mi = 0;
      let s = 0;
      let bc = false;
      let abbr = '';
      for (const p of parts) {
        if (p.type === 'year') y = Number(p.value);
        else if (p.type === 'month') mo = Number(p.value);
        else if (p.type === 'day') d = Number(p.value);
        else if (p.type === 'hour') h = Number(p.value);
        else if (p.type === 'minute') mi = Number(p.value);
        else if (p.type === 'second') s = Number(p.value);
        else if (p.type === 'era') bc = p.value === 'BC';
        else if (p.type === 'timeZoneName') abbr = p.value;
      }
      if (bc) y = 1 - y;
      const wall = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
      return { offset: wall - sec, abbr };
    },
  };
  if (zones.size < 256) zones.set(name, zone);
  return zone;
}

/** The broken-down wall clock of an instant in a zone. */
export interface Civil {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  nsec: number;
  weekday: number;
  yday: number;
  offset: number;
  abbr: string;
}

export function civil(t: Instant, zone: Zone): Civil {
  const { offset, abbr } = zone.at(t.sec);
  const local = t.sec + offset;
  const days = Math.floor(local / 86400);
  const secOfDay = local - days * 86400;
  const [year, month, day] = civilFromDays(days);
  return {
    year,
    month,
    day,
    hour: Math.floor(secOfDay / 3600),
    minute: Math.floor((secOfDay % 3600) / 60),
    second: secOfDay % 60,
    nsec: t.nsec,
    weekday: (((days + 4) % 7) + 7) % 7,
    yday: days - daysFromCivil(year, 1, 1) + 1,
    offset,
    abbr,
  };
}

/** Go's time.Date(year, month, day, hour, min, sec, nsec, zone) with overflow normalization. */
export function fromCivil(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  nsec: number,
  zone: Zone,
): Instant {
  const local = normalizedDays(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  // Go: look up the offset at the wall time taken as UTC, then re-check once at the adjusted instant.
  let offset = zone.at(local).offset;
  const again = zone.at(local - offset).offset;
  if (again !== offset) {
    // Across a transition Go picks the offset in effect at the resulting instant when it is consistent.
    if (zone.at(local - again).offset === again) offset = again;
  }
  return { sec: local - offset, nsec };
}

// ---------------------------------------------------------------------------------------------------------
// Layouts.

type Std =
  | 'Month'
  | 'LongMonth'
  | 'NumMonth'
  | 'ZeroMonth'
  | 'WeekDay'
  | 'LongWeekDay'
  | 'Day'
  | 'UnderDay'
  | 'ZeroDay'
  | 'UnderYearDay'
  | 'ZeroYearDay'
  | 'Hour'
  | 'Hour12'
  | 'ZeroHour12'
  | 'Minute'
  | 'ZeroMinute'
  | 'Second'
  | 'ZeroSecond'
  | 'LongYear'
  | 'Year'
  | 'PM'
  | 'pm'
  | 'TZ'
  | 'ISO8601TZ'
  | 'ISO8601SecondsTZ'
  | 'ISO8601ShortTZ'
  | 'ISO8601ColonTZ'
  | 'ISO8601ColonSecondsTZ'
  | 'NumTZ'
  | 'NumSecondsTz'
  | 'NumShortTZ'
  | 'NumColonTZ'
  | 'NumColonSecondsTZ'
  | 'FracSecond0'
  | 'FracSecond9';

interface Chunk {
  prefix: string;
  std: Std | undefined;
  /** Digits of a fractional-second token, and its separator. */
  digits: number;
  sep: string;
  suffix: string;
}

const STD0X: Std[] = ['ZeroMonth', 'ZeroDay', 'ZeroHour12', 'ZeroMinute', 'ZeroSecond', 'Year'];
const TZ_FORMS: [string, Std][] = [
  ['-070000', 'NumSecondsTz'],
  ['-07:00:00', 'NumColonSecondsTZ'],
  ['-0700', 'NumTZ'],
  ['-07:00', 'NumColonTZ'],
  ['-07', 'NumShortTZ'],
];
const ISO_FORMS: [string, Std][] = [
  ['Z070000', 'ISO8601SecondsTZ'],
  ['Z07:00:00', 'ISO8601ColonSecondsTZ'],
  ['Z0700', 'ISO8601TZ'],
  ['Z07:00', 'ISO8601ColonTZ'],
  ['Z07', 'ISO8601ShortTZ'],
];

const isDigitAt = (s: string, i: number): boolean =>
  i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57;

/** Go's nextStdChunk: the literal prefix, the first layout token, and the rest. */
function nextStdChunk(layout: string): Chunk {
  const chunk = (i: number, std: Std, len: number, digits = 0, sep = ''): Chunk => ({
    prefix: layout.slice(0, i),
    std,
    digits,
    sep,
    suffix: layout.slice(i + len),
  });
  for (let i = 0; i < layout.length; i++) {
    const c = layout[i];
    const at = (s: string): boolean => layout.startsWith(s, i);
    switch (c) {
      case 'J':
        if (at('Jan')) return at('January') ? chunk(i, 'LongMonth', 7) : chunk(i, 'Month', 3);
        break;
      case 'M':
        if (at('Mon')) return at('Monday') ? chunk(i, 'LongWeekDay', 6) : chunk(i, 'WeekDay', 3);
        if (at('MST')) return chunk(i, 'TZ', 3);
        break;
      case '0': {
        const n = layout.charCodeAt(i + 1);
        if (n >= 49 && n <= 54) return chunk(i, STD0X[n - 49]!, 2);
        if (layout[i + 1] === '0' && layout[i + 2] === '2') return chunk(i, 'ZeroYearDay', 3);
        break;
      }
      case '1':
        if (layout[i + 1] === '5') return chunk(i, 'Hour', 2);
        return chunk(i, 'NumMonth', 1);
      case '2':
        if (at('2006')) return chunk(i, 'LongYear', 4);
        return chunk(i, 'Day', 1);
      case '_':
        if (layout[i + 1] === '2') {
          // _2006 is a literal _ followed by the long year.
          if (layout.startsWith('2006', i + 1)) return chunk(i + 1, 'LongYear', 4);
          return chunk(i, 'UnderDay', 2);
        }
        if (layout[i + 1] === '_' && layout[i + 2] === '2') return chunk(i, 'UnderYearDay', 3);
        break;
      case '3':
        return chunk(i, 'Hour12', 1);
      case '4':
        return chunk(i, 'Minute', 1);
      case '5':
        return chunk(i, 'Second', 1);
      case 'P':
        if (layout[i + 1] === 'M') return chunk(i, 'PM', 2);
        break;
      case 'p':
        if (layout[i + 1] === 'm') return chunk(i, 'pm', 2);
        break;
      case '-':
        for (const [form, std] of TZ_FORMS) if (at(form)) return chunk(i, std, form.length);
        break;
      case 'Z':
        for (const [form, std] of ISO_FORMS) if (at(form)) return chunk(i, std, form.length);
        break;
      case '.':
      case ',': {
        const ch = layout[i + 1];
        if (ch === '0' || ch === '9') {
          let j = i + 1;
          while (j < layout.length && layout[j] === ch) j++;
          // Only a run of one repeated digit not followed by another digit is a fractional second.
          if (!isDigitAt(layout, j)) {
            return chunk(i, ch === '0' ? 'FracSecond0' : 'FracSecond9', j - i, j - (i + 1), c);
          }
        }
        break;
      }
    }
  }
  return { prefix: layout, std: undefined, digits: 0, sep: '', suffix: '' };
}

const pad = (n: number, width: number): string => {
  if (n < 0) return `-${pad(-n, width)}`;
  return String(n).padStart(width, '0');
};

/** Go's Time.Format. */
export function formatTime(c: Civil, layout: string): string {
  let out = '';
  let rest = layout;
  while (rest !== '') {
    const { prefix, std, digits, sep, suffix } = nextStdChunk(rest);
    out += prefix;
    if (std === undefined) break;
    rest = suffix;
    switch (std) {
      case 'Year': {
        let y = c.year;
        if (y < 0) y = -y;
        out += pad(y % 100, 2);
        break;
      }
      case 'LongYear':
        out += pad(c.year, 4);
        break;
      case 'Month':
        out += SHORT_MONTHS[c.month - 1];
        break;
      case 'LongMonth':
        out += LONG_MONTHS[c.month - 1];
        break;
      case 'NumMonth':
        out += String(c.month);
        break;
      case 'ZeroMonth':
        out += pad(c.month, 2);
        break;
      case 'WeekDay':
        out += SHORT_DAYS[c.weekday];
        break;
      case 'LongWeekDay':
        out += LONG_DAYS[c.weekday];
        break;
      case 'Day':
        out += String(c.day);
        break;
      case 'UnderDay':
        out += (c.day < 10 ? ' ' : '') + String(c.day);
        break;
      case 'ZeroDay':
        out += pad(c.day, 2);
        break;
      case 'UnderYearDay':
        out += String(c.yday).padStart(3, ' ');
        break;
      case 'ZeroYearDay':
        out += pad(c.yday, 3);
        break;
      case 'Hour':
        out += pad(c.hour, 2);
        break;
      case 'Hour12':
        out += String(c.hour % 12 === 0 ? 12 : c.hour % 12);
        break;
      case 'ZeroHour12':
        out += pad(c.hour % 12 === 0 ? 12 : c.hour % 12, 2);
        break;
      case 'Minute':
        out += String(c.minute);
        break;
      case 'ZeroMinute':
        out += pad(c.minute, 2);
        break;
      case 'Second':
        out += String(c.second);
        break;
      case 'ZeroSecond':
        out += pad(c.second, 2);
        break;
      case 'PM':
        out += c.hour >= 12 ? 'PM' : 'AM';
        break;
      case 'pm':
        out += c.hour >= 12 ? 'pm' : 'am';
        break;
      case 'TZ':
        if (c.abbr !== '') out += c.abbr;
        else {
          const zone = Math.trunc(c.offset / 60);
          const a = Math.abs(zone);
          out += (zone < 0 ? '-' : '+') + pad(Math.trunc(a / 60), 2) + pad(a % 60, 2);
        }
        break;
      case 'FracSecond0':
      case 'FracSecond9': {
        let frac = String(c.nsec).padStart(9, '0').slice(0, Math.min(digits, 9));
        if (std === 'FracSecond9') frac = frac.replace(/0+$/, '');
        if (frac !== '') out += sep + frac;
        break;
      }
      default:
        out += formatZone(std, c.offset);
    }
  }
  return out;
}

function formatZone(std: Std, offset: number): string {
  const iso = std.startsWith('ISO8601');
  if (offset === 0 && iso) return 'Z';
  let zone = Math.trunc(offset / 60);
  let abs = offset;
  let out = '';
  if (zone < 0) {
    out += '-';
    zone = -zone;
    abs = -abs;
  } else out += '+';
  out += pad(Math.trunc(zone / 60), 2);
  const colon = std.includes('Colon');
  if (colon) out += ':';
  if (std !== 'NumShortTZ' && std !== 'ISO8601ShortTZ') out += pad(zone % 60, 2);
  if (std.includes('Seconds')) {
    if (colon) out += ':';
    out += pad(abs % 60, 2);
  }
  return out;
}

class ParseFailure extends BuiltinError {}

function bad(layout: string, value: string, why = ''): never {
  throw new ParseFailure(
    `parsing time ${JSON.stringify(value)} as ${JSON.stringify(layout)}: cannot parse${why}`,
  );
}

function getnum(s: string, fixed: boolean): [number, string] | undefined {
  if (!isDigitAt(s, 0)) return undefined;
  if (!isDigitAt(s, 1)) {
    if (fixed) return undefined;
    return [s.charCodeAt(0) - 48, s.slice(1)];
  }
  return [(s.charCodeAt(0) - 48) * 10 + (s.charCodeAt(1) - 48), s.slice(2)];
}

function getnum3(s: string, fixed: boolean): [number, string] | undefined {
  let n = 0;
  let i = 0;
  for (; i < 3 && isDigitAt(s, i); i++) n = n * 10 + (s.charCodeAt(i) - 48);
  if (i === 0 || (fixed && i !== 3)) return undefined;
  return [n, s.slice(i)];
}

/** Go's atoi for the time package: optional sign, then decimal digits only. */
function atoi(s: string): number | undefined {
  let i = 0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    i = 1;
  }
  if (i >= s.length) return undefined;
  let n = 0;
  for (; i < s.length; i++) {
    if (!isDigitAt(s, i)) return undefined;
    n = n * 10 + (s.charCodeAt(i) - 48);
  }
  return neg ? -n : n;
}

function lookup(names: string[], value: string): [number, string] | undefined {
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (value.length >= name.length && value.slice(0, name.length).toLowerCase() === name.toLowerCase()) {
      return [i, value.slice(name.length)];
    }
  }
  return undefined;
}

function parseNanoseconds(value: string, nbytes: number): number | 'range' | undefined {
  if (value[0] !== '.' && value[0] !== ',') return undefined;
  const n = Math.min(nbytes, 10);
  const ns = atoi(value.slice(1, n));
  if (ns === undefined) return undefined;
  if (ns < 0) return 'range';
  return ns * 10 ** (10 - n);
}

/** Go's skip: a run of spaces in the layout matches a run of spaces in the value. */
function skip(value: string, prefix: string): string | undefined {
  let v = value;
  let p = prefix;
  while (p.length > 0) {
    if (p[0] === ' ') {
      if (v.length > 0 && v[0] !== ' ') return undefined;
      p = p.replace(/^ +/, '');
      v = v.replace(/^ +/, '');
      continue;
    }
    if (v.length === 0 || v[0] !== p[0]) return undefined;
    p = p.slice(1);
    v = v.slice(1);
  }
  return v;
}

function parseTimeZone(value: string): number {
  if (value.length < 3) return 0;
  if (value.startsWith('ChST') || value.startsWith('MeST')) return 4;
  if (value.startsWith('GMT')) return parseGMT(value);
  if (value[0] === '+' || value[0] === '-') return parseSignedOffset(value);
  let nUpper = 0;
  for (; nUpper < 6 && nUpper < value.length; nUpper++) {
    const c = value.charCodeAt(nUpper);
    if (c < 65 || c > 90) break;
  }
  switch (nUpper) {
    case 5:
      return value[4] === 'T' ? 5 : 0;
    case 4:
      return value[3] === 'T' || value.startsWith('WITA') ? 4 : 0;
    case 3:
      return 3;
    default:
      return 0;
  }
}

function parseGMT(value: string): number {
  const rest = value.slice(3);
  if (rest.length === 0) return 3;
  return 3 + parseSignedOffset(rest);
}

function parseSignedOffset(value: string): number {
  const sign = value[0];
  if (sign !== '-' && sign !== '+') return 0;
  let i = 1;
  let x = 0;
  while (i < value.length && isDigitAt(value, i)) {
    x = x * 10 + (value.charCodeAt(i) - 48);
    i++;
  }
  if (i === 1 || x > 24) return 0;
  return i;
}

/** Go's time.Parse(layout, value) in UTC, as UnixNano. */
export function parseTime(layout: string, value: string): bigint {
  const alayout = layout;
  const avalue = value;
  let rest = layout;
  let v = value;
  let year = 0;
  let month = -1;
  let day = -1;
  let yday = -1;
  let hour = 0;
  let min = 0;
  let sec = 0;
  let nsec = 0;
  let pmSet = false;
  let amSet = false;
  let utc = false;
  let zoneOffset: number | undefined;

  for (;;) {
    const { prefix, std, digits, suffix } = nextStdChunk(rest);
    const stdstr = rest.slice(prefix.length, rest.length - suffix.length);
    const after = skip(v, prefix);
    if (after === undefined) bad(alayout, avalue);
    v = after;
    if (std === undefined) {
      if (v.length !== 0) bad(alayout, avalue, `: extra text: ${JSON.stringify(v)}`);
      break;
    }
    rest = suffix;
    let range = '';
    const fail = (): never => bad(alayout, avalue, ` ${JSON.stringify(v)} as ${JSON.stringify(stdstr)}`);
    switch (std) {
      case 'Year': {
        if (v.length < 2) fail();
        const y = atoi(v.slice(0, 2));
        if (y === undefined) fail();
        year = y! >= 69 ? y! + 1900 : y! + 2000;
        v = v.slice(2);
        break;
      }
      case 'LongYear': {
        if (v.length < 4 || !isDigitAt(v, 0)) fail();
        const y = atoi(v.slice(0, 4));
        if (y === undefined) fail();
        year = y!;
        v = v.slice(4);
        break;
      }
      case 'Month':
      case 'LongMonth': {
        const r = lookup(std === 'Month' ? SHORT_MONTHS : LONG_MONTHS, v) ?? fail();
        month = r[0] + 1;
        v = r[1];
        break;
      }
      case 'NumMonth':
      case 'ZeroMonth': {
        const r = getnum(v, std === 'ZeroMonth') ?? fail();
        [month, v] = r;
        if (month <= 0 || month > 12) range = 'month';
        break;
      }
      case 'WeekDay':
      case 'LongWeekDay': {
        const r = lookup(std === 'WeekDay' ? SHORT_DAYS : LONG_DAYS, v) ?? fail();
        v = r[1];
        break;
      }
      case 'Day':
      case 'UnderDay':
      case 'ZeroDay': {
        if (std === 'UnderDay' && v[0] === ' ') v = v.slice(1);
        const r = getnum(v, std === 'ZeroDay') ?? fail();
        [day, v] = r;
        break;
      }
      case 'UnderYearDay':
      case 'ZeroYearDay': {
        for (let i = 0; i < 2; i++) if (std === 'UnderYearDay' && v[0] === ' ') v = v.slice(1);
        const r = getnum3(v, std === 'ZeroYearDay') ?? fail();
        [yday, v] = r;
        if (yday < 1 || yday > 366) range = 'day-of-year';
        break;
      }
      case 'Hour': {
        const r = getnum(v, false) ?? fail();
        [hour, v] = r;
        if (hour >= 24) range = 'hour';
        break;
      }
      case 'Hour12':
      case 'ZeroHour12': {
        const r = getnum(v, std === 'ZeroHour12') ?? fail();
        [hour, v] = r;
        if (hour > 12) range = 'hour';
        break;
      }
      case 'Minute':
      case 'ZeroMinute': {
        const r = getnum(v, std === 'ZeroMinute') ?? fail();
        [min, v] = r;
        if (min >= 60) range = 'minute';
        break;
      }
      case 'Second':
      case 'ZeroSecond': {
        const r = getnum(v, std === 'ZeroSecond') ?? fail();
        [sec, v] = r;
        if (sec >= 60) {
          range = 'second';
          break;
        }
        // A fractional second in the value that the layout does not spell out is still accepted.
        if (v.length >= 2 && (v[0] === '.' || v[0] === ',') && isDigitAt(v, 1)) {
          const next = nextStdChunk(rest).std;
          if (next === 'FracSecond0' || next === 'FracSecond9') break;
          let n = 2;
          while (n < v.length && isDigitAt(v, n)) n++;
          const ns = parseNanoseconds(v, n);
          if (ns === undefined) fail();
          if (ns === 'range') range = 'fractional second';
          else nsec = ns!;
          v = v.slice(n);
        }
        break;
      }
      case 'PM':
      case 'pm': {
        if (v.length < 2) fail();
        const p = v.slice(0, 2);
        v = v.slice(2);
        if (p === (std === 'PM' ? 'PM' : 'pm')) pmSet = true;
        else if (p === (std === 'PM' ? 'AM' : 'am')) amSet = true;
        else fail();
        break;
      }
      case 'TZ': {
        if (v.startsWith('UTC')) {
          utc = true;
          v = v.slice(3);
          break;
        }
        const n = parseTimeZone(v);
        if (n === 0) fail();
        v = v.slice(n);
        break;
      }
      case 'FracSecond0': {
        const ndigit = 1 + digits;
        if (v.length < ndigit) fail();
        const ns = parseNanoseconds(v, ndigit);
        if (ns === undefined) fail();
        if (ns === 'range') range = 'fractional second';
        else nsec = ns!;
        v = v.slice(ndigit);
        break;
      }
      case 'FracSecond9': {
        if (v.length < 2 || (v[0] !== '.' && v[0] !== ',') || !isDigitAt(v, 1)) break;
        let i = 0;
        while (i + 1 < v.length && isDigitAt(v, i + 1)) i++;
        const ns = parseNanoseconds(v, 1 + i);
        if (ns === undefined) fail();
        if (ns === 'range') range = 'fractional second';
        else nsec = ns!;
        v = v.slice(1 + i);
        break;
      }
      default: {
        if (std.startsWith('ISO8601') && v[0] === 'Z') {
          v = v.slice(1);
          utc = true;
          break;
        }
        let sign: string;
        let hh: string;
        let mm = '00';
        let ss = '00';
        if (std === 'ISO8601ColonTZ' || std === 'NumColonTZ') {
          if (v.length < 6 || v[3] !== ':') fail();
          [sign, hh, mm] = [v[0]!, v.slice(1, 3), v.slice(4, 6)];
          v = v.slice(6);
        } else if (std === 'NumShortTZ' || std === 'ISO8601ShortTZ') {
          if (v.length < 3) fail();
          [sign, hh] = [v[0]!, v.slice(1, 3)];
          v = v.slice(3);
        } else if (std === 'ISO8601ColonSecondsTZ' || std === 'NumColonSecondsTZ') {
          if (v.length < 9 || v[3] !== ':' || v[6] !== ':') fail();
          [sign, hh, mm, ss] = [v[0]!, v.slice(1, 3), v.slice(4, 6), v.slice(7, 9)];
          v = v.slice(9);
        } else if (std === 'ISO8601SecondsTZ' || std === 'NumSecondsTz') {
          if (v.length < 7) fail();
          [sign, hh, mm, ss] = [v[0]!, v.slice(1, 3), v.slice(3, 5), v.slice(5, 7)];
          v = v.slice(7);
        } else {
          if (v.length < 5) fail();
          [sign, hh, mm] = [v[0]!, v.slice(1, 3), v.slice(3, 5)];
          v = v.slice(5);
        }
        const h = getnum(hh, true);
        const m = getnum(mm, true);
        const s = getnum(ss, true);
        if (h === undefined || m === undefined || s === undefined) fail();
        if (h![0] > 24) range = 'time zone offset hour';
        if (m![0] > 60) range = 'time zone offset minute';
        if (s![0] > 60) range = 'time zone offset second';
        let off = (h![0] * 60 + m![0]) * 60 + s![0];
        if (sign === '-') off = -off;
        else if (sign !== '+') fail();
        zoneOffset = off;
      }
    }
    if (range !== '') bad(alayout, avalue, `: ${range} out of range`);
  }

  if (pmSet && hour < 12) hour += 12;
  else if (amSet && hour === 12) hour = 0;

  if (yday >= 0) {
    let d = 0;
    let m = 0;
    let yd = yday;
    if (isLeap(year)) {
      if (yd === 31 + 29) {
        m = 2;
        d = 29;
      } else if (yd > 31 + 29) yd--;
    }
    if (yd < 1 || yd > 365) bad(alayout, avalue, ': day-of-year out of range');
    if (m === 0) {
      const before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
      m = Math.floor(yd / 31) + 1;
      if (before[m]! < yd) m++;
      d = yd - before[m - 1]!;
    }
    if (month >= 0 && month !== m) bad(alayout, avalue, ': day-of-year does not match month');
    month = m;
    if (day >= 0 && day !== d) bad(alayout, avalue, ': day-of-year does not match day');
    day = d;
  } else {
    if (month < 0) month = 1;
    if (day < 0) day = 1;
  }
  if (day < 1 || day > daysIn(month, year)) bad(alayout, avalue, ': day out of range');

  // A zone abbreviation never moves the instant: Go either finds it in the local zone (UTC here, offset 0)
  // or fabricates a zone for display only (even GMT+h), keeping the wall clock read as UTC.
  const offset = !utc && zoneOffset !== undefined ? zoneOffset : 0;
  const local = daysFromCivil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
  return nsFromInstant({ sec: local - offset, nsec });
}

// ---------------------------------------------------------------------------------------------------------
// Durations.

const UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  µs: 1000n, // U+00B5 micro sign
  μs: 1000n, // U+03BC Greek small letter mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  // OPA extends Go's units with days, weeks and (365-day) years.
  d: 86_400_000_000_000n,
  w: 604_800_000_000_000n,
  y: 31_536_000_000_000_000n,
};

const MAX_DURATION = 1n << 63n;

/** Go's time.ParseDuration (with OPA's extra units d, w, y), in nanoseconds. */
export function parseDuration(orig: string): bigint {
  const invalid = (): never => {
    throw new BuiltinError(`time: invalid duration ${JSON.stringify(orig)}`);
  };
  let s = orig;
  let d = 0n;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') invalid();
  while (s !== '') {
    if (!(s[0] === '.' || isDigitAt(s, 0))) invalid();
    let i = 0;
    let v = 0n;
    while (isDigitAt(s, i)) {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > MAX_DURATION) invalid();
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (isDigitAt(s, j)) {
        if (!overflow) {
          const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
          if (f > (MAX_DURATION - 1n) / 10n || y > MAX_DURATION) overflow = true;
          else {
            f = y;
            scale *= 10;
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) invalid();
    let u = 0;
    while (u < s.length && s[u] !== '.' && !isDigitAt(s, u)) u++;
    if (u === 0) throw new BuiltinError(`time: missing unit in duration ${JSON.stringify(orig)}`);
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = UNITS[unitName];
    if (unit === undefined) {
      throw new BuiltinError(
        `time: unknown unit ${JSON.stringify(unitName)} in duration ${JSON.stringify(orig)}`,
      );
    }
    if (v > MAX_DURATION / unit) invalid();
    v *= unit;
    if (f > 0n) {
      // Go does this step in float64, truncating; so do we.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX_DURATION) invalid();
    }
    d += v;
    if (d > MAX_DURATION) invalid();
  }
  if (neg) return -d;
  if (d > MAX_DURATION - 1n) invalid();
  return d;
}
