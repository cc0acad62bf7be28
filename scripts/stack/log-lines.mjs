// Turns a service's pino JSON log lines into short terminal lines; the JSON itself goes to its log file.

const LEVELS = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// Fields every line carries, or that the line's own layout already shows.
const HIDDEN = new Set(['level', 'time', 'msg', 'service', 'name', 'pid', 'hostname', 'v']);
const MAX_VALUE = 160;

const ANSI = { dim: '2', red: '31', yellow: '33', cyan: '36', magenta: '35', green: '32', blue: '34' };
const PREFIX_COLOURS = [ANSI.cyan, ANSI.magenta, ANSI.green, ANSI.blue, ANSI.yellow];

export function colours(enabled) {
  const paint = (code) => (text) => (enabled ? `\u001b[${code}m${text}\u001b[0m` : text);
  return {
    dim: paint(ANSI.dim),
    red: paint(ANSI.red),
    yellow: paint(ANSI.yellow),
    bold: paint('1'),
    prefix: (index) => paint(PREFIX_COLOURS[index % PREFIX_COLOURS.length]),
  };
}

function value(v) {
  if (typeof v === 'number' && !Number.isInteger(v)) return v.toFixed(1);
  const text =
    typeof v === 'string' ? (/[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v) : JSON.stringify(v);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/**
 * `13:55:02 INFO  pap listening http=http://127.0.0.1:8080` for a pino line; a line that is not
 * pino JSON comes back as it is. An error's stack follows on indented lines, so a crash is readable.
 */
export function formatLogLine(line, c = colours(false)) {
  let entry;
  try {
    entry = line.startsWith('{') ? JSON.parse(line) : undefined;
  } catch {
    entry = undefined;
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.level !== 'number') return [line];
  const level = LEVELS[entry.level] ?? String(entry.level);
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : '';
  const paint = entry.level >= 50 ? c.red : entry.level >= 40 ? c.yellow : (text) => text;
  const fields = [];
  let stack;
  for (const [key, v] of Object.entries(entry)) {
    if (HIDDEN.has(key) || v === undefined) continue;
    if ((key === 'err' || key === 'error') && typeof v === 'object' && v !== null) {
      fields.push(`${key}=${value(`${v.type ?? 'Error'}: ${v.message ?? ''}`)}`);
      if (typeof v.stack === 'string' && entry.level >= 50) stack = v.stack;
      continue;
    }
    // A request id's first 8 characters are enough to find the line in the log file.
    fields.push(`${key}=${key === 'reqId' && typeof v === 'string' ? v.slice(0, 8) : value(v)}`);
  }
  const head = `${c.dim(time)} ${paint(level.padEnd(5))} ${entry.msg ?? ''}${fields.length ? ` ${c.dim(fields.join(' '))}` : ''}`;
  const out = [head];
  if (stack)
    out.push(
      ...stack
        .split('\n')
        .slice(1, 12)
        .map((l) => `    ${c.dim(l.trim())}`),
    );
  return out;
}
