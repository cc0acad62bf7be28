// An in-memory AttributeSource for the cache's unit tests: a map of records, a log of calls, and a switch to fail.
import type { AttributeKey, AttributeSource, AttributeValue } from '../src/attribute-cache.ts';

export class MemorySource implements AttributeSource {
  readonly records = new Map<string, AttributeValue>();
  readonly calls: AttributeKey[][] = [];
  failWith: Error | undefined;
  /** When set, calls wait for it before answering (to interleave events with fetches in flight). */
  gate: Promise<void> | undefined;

  set(kind: string, id: string, attributes: Record<string, unknown>): AttributeValue {
    const version = (this.records.get(`${kind}/${id}`)?.version ?? 0) + 1;
    const value = { attributes, version };
    this.records.set(`${kind}/${id}`, value);
    return value;
  }

  async batchGet(keys: readonly AttributeKey[]): Promise<(AttributeValue | undefined)[]> {
    this.calls.push([...keys]);
    // Read before waiting: an answer that a later change overtakes is the case under test.
    const answer = keys.map((k) => this.records.get(`${k.kind}/${k.id}`));
    if (this.gate !== undefined) await this.gate;
    if (this.failWith !== undefined) throw this.failWith;
    return answer;
  }

  get keysFetched(): number {
    return this.calls.reduce((n, c) => n + c.length, 0);
  }
}
