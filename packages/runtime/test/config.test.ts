import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, env, loadConfig, parseBytes, parseDurationMs } from '../src/config.ts';

const spec = {
  PORT: env.port({ default: 8080, doc: 'HTTP port' }),
  LIMIT: env.bytes({ default: 8 * 1024 * 1024, doc: 'Body limit' }),
  TIMEOUT: env.duration({ default: 30_000, doc: 'Timeout' }),
  DEBUG: env.bool({ default: false, doc: 'Debug' }),
  MODE: env.oneOf(['a', 'b'] as const, { default: 'a', doc: 'Mode' }),
  URL: env.string({ doc: 'Required URL' }),
};

describe('loadConfig', () => {
  it('applies defaults and parses values', () => {
    const cfg = loadConfig(spec, {
      URL: 'postgres://x',
      PORT: '9000',
      LIMIT: '64KiB',
      TIMEOUT: '5s',
      DEBUG: 'yes',
    });
    expect(cfg).toEqual({
      PORT: 9000,
      LIMIT: 65536,
      TIMEOUT: 5000,
      DEBUG: true,
      MODE: 'a',
      URL: 'postgres://x',
    });
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it.each([
    ['PORT', 'eighty', /PORT: expected an integer/],
    ['PORT', '70000', /PORT: must be <= 65535/],
    ['LIMIT', '8 parsecs', /LIMIT: expected a size/],
    ['TIMEOUT', 'soon', /TIMEOUT: expected a duration/],
    ['DEBUG', 'maybe', /DEBUG: expected true or false/],
    ['MODE', 'c', /MODE: expected one of a, b/],
  ])('rejects %s=%s naming the variable', (name, value, message) => {
    expect(() => loadConfig(spec, { URL: 'x', [name]: value })).toThrow(message);
    expect(() => loadConfig(spec, { URL: 'x', [name]: value })).toThrow(ConfigError);
  });

  it('requires variables without a default', () => {
    expect(() => loadConfig(spec, {})).toThrow('invalid configuration: URL: must be set');
  });

  it('documents every variable', () => {
    const rows = describeConfig(spec);
    expect(rows).toHaveLength(6);
    expect(rows[0]).toBe('| `PORT` | `8080` | HTTP port |');
    expect(rows[5]).toBe('| `URL` | (required) | Required URL |');
  });
});

describe('unit parsers', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1.5h', 5_400_000],
    ['1000', 1000],
  ])('duration %s = %d ms', (raw, ms) => expect(parseDurationMs(raw)).toBe(ms));

  it.each([
    ['8MiB', 8 * 1024 * 1024],
    ['2MB', 2_000_000],
    ['512', 512],
    ['1gib', 1024 ** 3],
  ])('size %s = %d bytes', (raw, n) => expect(parseBytes(raw)).toBe(n));
});
