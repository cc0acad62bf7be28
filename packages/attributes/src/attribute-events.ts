// The attribute change events on `portcullis.attribute.events`: their shape, encoding and validation.
import { TOPICS } from '@portcullis/runtime';

export const ATTRIBUTE_EVENTS_TOPIC = TOPICS.attributeEvents;

/** One changed record: its new version, or `deleted` (then `version` is the last one it had). */
export interface AttributeChange {
  readonly kind: string;
  readonly id: string;
  readonly version: number;
  readonly deleted: boolean;
}

/**
 * `{"type": "attributes.changed", "changes": [...]}`. A single write carries one change; a bulk
 * import carries one event per committed batch. Consumers must treat events as hints: at least
 * once, possibly duplicated, and possibly missed while disconnected (the TTL bounds staleness).
 */
export interface AttributeEvent {
  readonly type: 'attributes.changed';
  readonly changes: readonly AttributeChange[];
}

/** The bus message key: per-record changes keep their order per key; batches share one key. */
export function attributeEventKey(changes: readonly AttributeChange[]): string {
  const first = changes[0];
  return changes.length === 1 && first !== undefined ? `${first.kind}/${first.id}` : 'attributes/batch';
}

export function encodeAttributeEvent(changes: readonly AttributeChange[]): string {
  const event: AttributeEvent = { type: 'attributes.changed', changes };
  return JSON.stringify(event);
}

/** Parses an event; undefined for anything else on the topic (unknown types are skipped, not fatal). */
export function decodeAttributeEvent(value: string): AttributeEvent | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { type, changes } = parsed as { type?: unknown; changes?: unknown };
  if (type !== 'attributes.changed' || !Array.isArray(changes)) return undefined;
  const out: AttributeChange[] = [];
  for (const c of changes) {
    if (typeof c !== 'object' || c === null) continue;
    const { kind, id, version, deleted } = c as Record<string, unknown>;
    if (typeof kind !== 'string' || typeof id !== 'string') continue;
    out.push({
      kind,
      id,
      version: typeof version === 'number' && Number.isFinite(version) ? version : 0,
      deleted: deleted === true,
    });
  }
  return { type: 'attributes.changed', changes: out };
}
