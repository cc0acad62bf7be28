// OPA-Envoy's `protomap`: a decoded Envoy message → the JSON the plugin puts in `input.attributes`; and JSON ↔ google.protobuf.Struct.
import protobuf from 'protobufjs';
import type { Struct, StructValue } from './envoy-protos.ts';
import { isJsonObject, type JsonObject, type JsonValue, setOwn } from './json-value.ts';

/*
 * What OPA-Envoy (envoyauth/protomap.go, since plugin v1.1, early 2025; before it protojson,
 * with RFC 3339 timestamps and int64 strings) produces, and so what this reproduces from
 * proto-loader's decoded objects:
 * - keys are the fields' JSON names (lowerCamel: `contextExtensions`, `rawBody`, `socketAddress`);
 * - only populated fields appear (protoreflect's Range): proto3 scalars equal to their zero value,
 *   empty maps and lists and unset messages are left out; a set message appears even if empty;
 *   a oneof member appears when it is the set one, even with a zero value;
 * - int64/uint64 are JSON numbers (not protojson's strings), enums are their numbers (not names),
 *   bytes are standard base64;
 * - google.protobuf.Struct becomes a plain object (its AsMap); every other message, well-known
 *   or not, is walked field by field, so a Timestamp is `{seconds, nanos}` and an Any is
 *   `{typeUrl, value}`.
 */

const INT64_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const STRUCT = '.google.protobuf.Struct';

/** protoc's default json_name: drop each `_` and upper-case the character after it. */
export function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  if (typeof explicit === 'string') return explicit;
  let out = '';
  let upper = false;
  for (const ch of field.name) {
    if (ch === '_') upper = true;
    else {
      out += upper ? ch.toUpperCase() : ch;
      upper = false;
    }
  }
  return out;
}

/** A decoded message (as proto-loader hands it over) → the plugin's JSON form of it. */
export function protoToInputJson(type: protobuf.Type, message: unknown): JsonObject {
  if (!isJsonObject(message)) return {};
  if (type.fullName === STRUCT) return structToJson(message);
  const out: JsonObject = {};
  for (const field of type.fieldsArray) {
    const value = message[field.name];
    if (!isPopulated(field, message, value)) continue;
    const converted = convertField(field, value);
    if (converted !== undefined) setOwn(out, jsonName(field), converted);
  }
  return out;
}

function isPopulated(field: protobuf.Field, message: Record<string, unknown>, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (field.map) return isJsonObject(value) && Object.keys(value).length > 0;
  if (field.repeated) return Array.isArray(value) && value.length > 0;
  const oneof = field.partOf;
  if (oneof) {
    // proto-loader's `oneofs: true` names the set member; without it, presence is all we have.
    const chosen = message[oneof.name];
    return typeof chosen === 'string' ? chosen === field.name : true;
  }
  if (field.resolvedType instanceof protobuf.Type) return true;
  return !isZero(field, value);
}

function isZero(field: protobuf.Field, value: unknown): boolean {
  if (field.resolvedType instanceof protobuf.Enum) return enumNumber(field.resolvedType, value) === 0;
  if (typeof value === 'string') return INT64_TYPES.has(field.type) ? Number(value) === 0 : value === '';
  if (typeof value === 'number') return value === 0 && !Object.is(value, -0);
  if (typeof value === 'boolean') return !value;
  if (value instanceof Uint8Array) return value.length === 0;
  return false;
}

function convertField(field: protobuf.Field, value: unknown): JsonValue | undefined {
  if (field.map) {
    if (!isJsonObject(value)) return undefined;
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const converted = convertScalarOrMessage(field, v);
      if (converted !== undefined) setOwn(out, k, converted);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) return undefined;
    const out: JsonValue[] = [];
    for (const item of value) {
      const converted = convertScalarOrMessage(field, item);
      if (converted !== undefined) out.push(converted);
    }
    return out;
  }
  return convertScalarOrMessage(field, value);
}

/** One value of the field's element type (the map value type for maps). */
function convertScalarOrMessage(field: protobuf.Field, value: unknown): JsonValue | undefined {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type)
    return isJsonObject(value) ? protoToInputJson(resolved, value) : undefined;
  if (resolved instanceof protobuf.Enum) return enumNumber(resolved, value);
  if (field.type === 'bytes') {
    if (value instanceof Uint8Array)
      return Buffer.from(value.buffer, value.byteOffset, value.length).toString('base64');
    return typeof value === 'string' ? value : undefined;
  }
  if (INT64_TYPES.has(field.type)) return int64ToNumber(value);
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  return undefined;
}

function enumNumber(type: protobuf.Enum, value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return type.values[value] ?? 0;
  return 0;
}

/**
 * int64 arrives as a decimal string (`longs: String`). As a JSON number it is exact below 2^53,
 * which the only int64 of a CheckRequest (the body size) stays under.
 */
function int64ToNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** google.protobuf.Struct → plain JSON object (Go's structpb AsMap). */
export function structToJson(struct: unknown): JsonObject {
  const out: JsonObject = {};
  if (!isJsonObject(struct) || !isJsonObject(struct.fields)) return out;
  for (const [k, v] of Object.entries(struct.fields)) setOwn(out, k, structValueToJson(v));
  return out;
}

function structValueToJson(value: unknown): JsonValue {
  if (!isJsonObject(value)) return null;
  const kind = typeof value.kind === 'string' ? value.kind : presentKind(value);
  switch (kind) {
    case 'numberValue':
      return typeof value.numberValue === 'number' ? value.numberValue : null;
    case 'stringValue':
      return typeof value.stringValue === 'string' ? value.stringValue : null;
    case 'boolValue':
      return value.boolValue === true;
    case 'structValue':
      return structToJson(value.structValue);
    case 'listValue': {
      const list = value.listValue;
      return isJsonObject(list) && Array.isArray(list.values) ? list.values.map(structValueToJson) : [];
    }
    default:
      // nullValue, or no kind set: Go's AsInterface gives nil for both.
      return null;
  }
}

function presentKind(value: Record<string, unknown>): string | undefined {
  for (const k of ['numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue', 'nullValue']) {
    if (value[k] !== undefined && value[k] !== null) return k;
  }
  return undefined;
}

/** Nesting deeper than this is refused: no decision legitimately needs it, and a cycle would never end. */
const MAX_STRUCT_DEPTH = 64;

/**
 * Plain JSON object → google.protobuf.Struct. Throws TypeError for values JSON cannot carry
 * (undefined, functions, bigint, symbols, non-finite numbers) and for nesting past 64 levels.
 */
export function jsonToStruct(object: Record<string, unknown>, depth = 0): Struct {
  if (depth > MAX_STRUCT_DEPTH) throw new TypeError(`nested deeper than ${MAX_STRUCT_DEPTH} levels`);
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(object)) setOwn(fields, k, jsonToStructValue(v, k, depth));
  return { fields };
}

function jsonToStructValue(value: unknown, key: string, depth: number): StructValue {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof value) {
    case 'boolean':
      return { boolValue: value };
    case 'string':
      return { stringValue: value };
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${key}: ${value} is not a JSON number`);
      return { numberValue: value };
    case 'object':
      if (depth >= MAX_STRUCT_DEPTH) throw new TypeError(`nested deeper than ${MAX_STRUCT_DEPTH} levels`);
      if (Array.isArray(value))
        return { listValue: { values: value.map((v) => jsonToStructValue(v, key, depth + 1)) } };
      return { structValue: jsonToStruct(value as Record<string, unknown>, depth + 1) };
    default:
      throw new TypeError(`${key}: a ${typeof value} is not a JSON value`);
  }
}
