// Test support: checks an Envoy configuration (as JSON) against Envoy's own protos — unknown and deprecated fields, types, enums, oneofs, the PGV rules Envoy enforces at load — without an Envoy binary.
import protobuf from 'protobufjs';

export interface ConfigProblem {
  path: string;
  message: string;
}

const WRAPPERS: Record<string, 'number' | 'integer' | 'boolean' | 'string'> = {
  'google.protobuf.DoubleValue': 'number',
  'google.protobuf.FloatValue': 'number',
  'google.protobuf.Int64Value': 'integer',
  'google.protobuf.UInt64Value': 'integer',
  'google.protobuf.Int32Value': 'integer',
  'google.protobuf.UInt32Value': 'integer',
  'google.protobuf.BoolValue': 'boolean',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'string',
};

const INTEGER_TYPES = new Set([
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
]);

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInteger(v: unknown): boolean {
  return (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^-?\d+$/.test(v));
}

function durationSeconds(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(-?\d+(?:\.\d{1,9})?)s$/.exec(v);
  return m ? Number(m[1]) : undefined;
}

/**
 * Checks `value` as the proto3 JSON (or YAML) form of `type`, the way Envoy's loader reads it
 * (either field spelling, `@type` resolving an Any), adding every problem found.
 */
export function checkMessage(
  root: protobuf.Root,
  type: protobuf.Type,
  value: unknown,
  where: string,
  problems: ConfigProblem[],
): void {
  const problem = (p: string, message: string): void => {
    problems.push({ path: p, message });
  };
  const full = type.fullName.replace(/^\./, '');

  // Well-known types with their own JSON forms.
  if (full === 'google.protobuf.Duration') {
    if (durationSeconds(value) === undefined)
      problem(where, `not a duration like "0.25s": ${JSON.stringify(value)}`);
    return;
  }
  if (full === 'google.protobuf.Timestamp') {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value)))
      problem(where, 'not an RFC 3339 timestamp');
    return;
  }
  if (full === 'google.protobuf.Struct') {
    if (!isObject(value)) problem(where, 'a Struct must be an object');
    return;
  }
  if (full === 'google.protobuf.Value') return;
  if (full === 'google.protobuf.ListValue') {
    if (!Array.isArray(value)) problem(where, 'a ListValue must be an array');
    return;
  }
  const wrapper = WRAPPERS[full];
  if (wrapper) {
    const ok =
      wrapper === 'integer'
        ? isInteger(value)
        : wrapper === 'number'
          ? typeof value === 'number'
          : typeof value === wrapper;
    if (!ok) problem(where, `${full} must be a ${wrapper}, got ${JSON.stringify(value)}`);
    return;
  }
  if (!isObject(value)) {
    problem(where, `${full} must be an object, got ${JSON.stringify(value)}`);
    return;
  }
  if (full === 'google.protobuf.Any') {
    const url = value['@type'];
    if (typeof url !== 'string' || !url.startsWith('type.googleapis.com/')) {
      problem(where, 'an Any needs "@type": "type.googleapis.com/<message>"');
      return;
    }
    const inner = root.lookup(url.slice('type.googleapis.com/'.length));
    if (!(inner instanceof protobuf.Type)) {
      problem(where, `unknown type ${url} (not an Envoy message, or its proto is not loaded)`);
      return;
    }
    const { '@type': _type, ...rest } = value;
    checkMessage(root, inner, rest, `${where}<${inner.name}>`, problems);
    return;
  }

  const byName = new Map<string, protobuf.Field>();
  for (const field of type.fieldsArray) {
    byName.set(field.name, field);
    byName.set(camel(field.name), field);
  }
  const seen = new Set<protobuf.Field>();
  for (const [key, v] of Object.entries(value)) {
    const at = `${where}.${key}`;
    const field = byName.get(key);
    if (!field) {
      problem(at, `unknown field of ${full}`);
      continue;
    }
    if (seen.has(field)) problem(at, `set twice (as ${field.name} and ${camel(field.name)})`);
    seen.add(field);
    if (field.options?.['deprecated'] === true) problem(at, 'deprecated field');
    checkField(root, field, v, at, problems);
  }

  for (const oneof of type.oneofsArray) {
    const set = oneof.fieldsArray.filter((f) => seen.has(f));
    if (set.length > 1)
      problem(where, `oneof ${oneof.name}: only one of ${set.map((f) => f.name).join(', ')}`);
    if (set.length === 0 && oneof.options?.['(validate.required)'] === true) {
      problem(
        where,
        `oneof ${oneof.name} is required: one of ${oneof.fieldsArray.map((f) => f.name).join(', ')}`,
      );
    }
  }
  for (const field of type.fieldsArray) {
    // A oneof member's rules apply only when the oneof holds it.
    if (field.partOf) continue;
    const o = field.options ?? {};
    const required =
      o['(validate.rules).message.required'] === true || o['(validate.rules).duration.required'] === true;
    if (required && !seen.has(field)) problem(`${where}.${field.name}`, `required by ${full}`);
  }
}

function checkField(
  root: protobuf.Root,
  field: protobuf.Field,
  value: unknown,
  where: string,
  problems: ConfigProblem[],
): void {
  const problem = (p: string, message: string): void => {
    problems.push({ path: p, message });
  };
  if (field instanceof protobuf.MapField) {
    if (!isObject(value)) {
      problem(where, 'a map must be an object');
      return;
    }
    for (const [k, v] of Object.entries(value)) checkValue(root, field, v, `${where}.${k}`, problems);
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) {
      problem(where, 'a repeated field must be an array');
      return;
    }
    const min = field.options?.['(validate.rules).repeated.min_items'];
    if (typeof min === 'number' && value.length < min) problem(where, `needs at least ${min} item(s)`);
    value.forEach((v, i) => {
      checkValue(root, field, v, `${where}[${i}]`, problems);
    });
    return;
  }
  checkValue(root, field, value, where, problems);
}

function checkValue(
  root: protobuf.Root,
  field: protobuf.Field,
  value: unknown,
  where: string,
  problems: ConfigProblem[],
): void {
  const problem = (message: string): void => {
    problems.push({ path: where, message });
  };
  const o = field.options ?? {};
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    checkMessage(root, resolved, value, where, problems);
    return;
  }
  if (resolved instanceof protobuf.Enum) {
    const known =
      typeof value === 'string'
        ? value in resolved.values
        : Object.values(resolved.values).includes(value as number);
    if (!known) problem(`not a value of ${resolved.name}: ${JSON.stringify(value)}`);
    return;
  }
  if (field.type === 'string') {
    if (typeof value !== 'string') {
      problem(`must be a string, got ${JSON.stringify(value)}`);
      return;
    }
    const minLen = o['(validate.rules).string.min_len'];
    if (typeof minLen === 'number' && value.length < minLen)
      problem(`must be at least ${minLen} character(s)`);
    return;
  }
  if (field.type === 'bool') {
    if (typeof value !== 'boolean') problem(`must be true or false, got ${JSON.stringify(value)}`);
    return;
  }
  if (field.type === 'bytes') {
    if (typeof value !== 'string') problem('bytes must be a base64 string');
    return;
  }
  if (INTEGER_TYPES.has(field.type)) {
    if (!isInteger(value)) {
      problem(`must be an integer, got ${JSON.stringify(value)}`);
      return;
    }
    const n = Number(value);
    if (field.type.startsWith('uint') && n < 0) problem('must not be negative');
    const gt = o[`(validate.rules).${field.type}.gt`];
    if (typeof gt === 'number' && !(n > gt)) problem(`must be > ${gt}`);
    return;
  }
  if (field.type === 'double' || field.type === 'float') {
    if (typeof value !== 'number') problem(`must be a number, got ${JSON.stringify(value)}`);
    return;
  }
  problem(`unchecked type ${field.type}`);
}
