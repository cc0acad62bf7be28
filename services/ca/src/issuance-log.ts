// Issuance records (written before a certificate is returned, with group commit) and audited refusals.
import type { Pool } from '@portcullis/runtime';
import { type AuditEntry, appendAudit } from './authority-store.ts';

export interface IssuanceRecord {
  /** Upper-case hex. */
  readonly serial: string;
  readonly spiffeId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** `token:<ns>/<sa>` or `mtls:<spiffe id>`. */
  readonly caller: string;
  readonly authMethod: 'token' | 'mtls';
  readonly keyType: string;
}

interface Pending {
  readonly record: IssuanceRecord;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Contract: `record` resolves only once the row is committed, and rejects if it was not; the caller
 * must not hand out the certificate before. Concurrent records are written together (group commit):
 * a record that arrives while the INSERTs in flight are at their limit waits, and the waiting ones go
 * out as one multi-row INSERT. Two INSERTs may be in flight, so a record arriving just after one
 * started does not wait for that commit's disk flush before its own begins; alone, a record waits
 * for no timer.
 */
export class IssuanceLog {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: Pool,
    private readonly maxBatch = 500,
    private readonly maxInFlight = 2,
  ) {}

  record(record: IssuanceRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      this.flush();
    });
  }

  /** A refused request, with the reason code; failures to write are the caller's to log. */
  refuse(entry: Omit<AuditEntry, 'action'>): Promise<void> {
    return appendAudit(this.pool, { ...entry, action: 'certificate.refused' });
  }

  private flush(): void {
    if (this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.inFlight++;
    this.insert(batch.map((p) => p.record))
      .then(
        () => {
          for (const p of batch) p.resolve();
        },
        (error: unknown) => {
          for (const p of batch) p.reject(error);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.flush();
      });
  }

  private async insert(records: readonly IssuanceRecord[]): Promise<void> {
    await this.pool.query({
      // Named, so each connection parses and plans it once: under load this statement runs hundreds of times a second.
      name: 'ca_issuances_insert',
      text: `INSERT INTO ca_issuances (serial, spiffe_id, not_before, not_after, caller, auth_method, key_type)
       SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])`,
      values: [
        records.map((r) => r.serial),
        records.map((r) => r.spiffeId),
        records.map((r) => r.notBefore.toISOString()),
        records.map((r) => r.notAfter.toISOString()),
        records.map((r) => r.caller),
        records.map((r) => r.authMethod),
        records.map((r) => r.keyType),
      ],
    });
  }
}
