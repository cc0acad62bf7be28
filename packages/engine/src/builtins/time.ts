// OPA's time.* builtins: one clock reading per evaluation, Go layouts, zones and calendar arithmetic.
import {
  BuiltinError,
  type BuiltinTable,
  type EvalContext,
  int,
  intValue,
  nowNs,
  num,
  str,
} from './builtin-types.ts';
import {
  civil,
  formatTime,
  fromCivil,
  type Instant,
  instantFromNs,
  loadZone,
  nsFromInstant,
  parseDuration,
  parseTime,
  UTC,
  WEEKDAYS,
  type Zone,
} from './go-time.ts';

// The layout names OPA maps to Go's constants (time.parse_ns and time.format).
const NAMED_LAYOUTS: Record<string, string> = {
  ANSIC: 'Mon Jan _2 15:04:05 2006',
  UnixDate: 'Mon Jan _2 15:04:05 MST 2006',
  RubyDate: 'Mon Jan 02 15:04:05 -0700 2006',
  RFC822: '02 Jan 06 15:04 MST',
  RFC822Z: '02 Jan 06 15:04 -0700',
  RFC850: 'Monday, 02-Jan-06 15:04:05 MST',
  RFC1123: 'Mon, 02 Jan 2006 15:04:05 MST',
  RFC1123Z: 'Mon, 02 Jan 2006 15:04:05 -0700',
  RFC3339: '2006-01-02T15:04:05Z07:00',
  RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
};

/** A float operand must be an exact integer number of nanoseconds (OPA: "timestamp too big"). */
function nsOperand(v: unknown): bigint {
  const n = num(v, 1);
  if (typeof n === 'bigint') return n;
  if (!Number.isInteger(n)) throw new BuiltinError('timestamp too big');
  const b = BigInt(n);
  if (b < -(2n ** 63n) || b >= 2n ** 63n) throw new BuiltinError('timestamp too big');
  return b;
}

interface ZonedTime {
  t: Instant;
  zone: Zone;
  layout: string;
}

/** OPA's tzTime: `ns`, `[ns]`, `[ns, tz]` or `[ns, tz, layout]`. */
function tzTime(v: unknown): ZonedTime {
  if (Array.isArray(v)) {
    if (v.length === 0) throw new BuiltinError('operand 1 must be one of {number, array}');
    num(v[0], 1);
    const zone = v.length > 1 ? loadZone(str(v[1], 1)) : UTC;
    const layout = v.length > 2 ? str(v[2], 1) : '';
    return { t: instantFromNs(nsOperand(v[0])), zone, layout };
  }
  if (typeof v !== 'number' && typeof v !== 'bigint') {
    throw new BuiltinError('operand 1 must be one of {number, array}');
  }
  return { t: instantFromNs(nsOperand(v)), zone: UTC, layout: '' };
}

function diff(a: ZonedTime, b: ZonedTime): number[] {
  // Go: t2 is moved into t1's zone; then the calendar fields are subtracted and borrowed.
  let [t1, t2] = [a.t, b.t];
  const zone = a.zone;
  if (t1.sec > t2.sec || (t1.sec === t2.sec && t1.nsec > t2.nsec)) [t1, t2] = [t2, t1];
  const c1 = civil(t1, zone);
  const c2 = civil(t2, zone);
  let year = c2.year - c1.year;
  let month = c2.month - c1.month;
  let day = c2.day - c1.day;
  let hour = c2.hour - c1.hour;
  let min = c2.minute - c1.minute;
  let sec = c2.second - c1.second;
  if (sec < 0) {
    sec += 60;
    min--;
  }
  if (min < 0) {
    min += 60;
    hour--;
  }
  if (hour < 0) {
    hour += 24;
    day--;
  }
  if (day < 0) {
    // Days in c1's month: Go's time.Date(y1, M1, 32) overflows into the next month.
    const overflow = civil(fromCivil(c1.year, c1.month, 32, 0, 0, 0, 0, UTC), UTC);
    day += 32 - overflow.day;
    month--;
  }
  if (month < 0) {
    month += 12;
    year--;
  }
  return [year, month, day, hour, min, sec];
}

export const timeBuiltins: BuiltinTable = {
  'time.now_ns': { fn: (_args, ctx: EvalContext) => nowNs(ctx) },
  'time.parse_rfc3339_ns': {
    pure: true,
    fn: ([value]) => intValue(parseTime(NAMED_LAYOUTS['RFC3339']!, str(value, 1))),
  },
  'time.parse_ns': {
    pure: true,
    fn: ([layout, value]) => {
      const l = str(layout, 1);
      const v = str(value, 2);
      return intValue(parseTime(NAMED_LAYOUTS[l] ?? l, v));
    },
  },
  'time.parse_duration_ns': { pure: true, fn: ([value]) => intValue(parseDuration(str(value, 1))) },
  'time.date': {
    fn: ([x]) => {
      const { t, zone } = tzTime(x);
      const c = civil(t, zone);
      return [c.year, c.month, c.day];
    },
  },
  'time.clock': {
    fn: ([x]) => {
      const { t, zone } = tzTime(x);
      const c = civil(t, zone);
      return [c.hour, c.minute, c.second];
    },
  },
  'time.weekday': {
    fn: ([x]) => {
      const { t, zone } = tzTime(x);
      return WEEKDAYS[civil(t, zone).weekday];
    },
  },
  'time.add_date': {
    fn: ([x, years, months, days]) => {
      const { t, zone } = tzTime(x);
      const y = Number(int(years, 2));
      const m = Number(int(months, 3));
      const d = Number(int(days, 4));
      const c = civil(t, zone);
      const r = fromCivil(c.year + y, c.month + m, c.day + d, c.hour, c.minute, c.second, c.nsec, zone);
      return intValue(nsFromInstant(r));
    },
  },
  'time.diff': { fn: ([a, b]) => diff(tzTime(a), tzTime(b)) },
  'time.format': {
    fn: ([x]) => {
      const { t, zone, layout } = tzTime(x);
      const l = layout === '' ? NAMED_LAYOUTS['RFC3339Nano']! : (NAMED_LAYOUTS[layout] ?? layout);
      return formatTime(civil(t, zone), l);
    },
  },
};
