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
 * while one INSERT is in flight the next ones queue and go out as one multi-row INSERT, so under load
 * the database sees a few statements per batch instead of one per certificate, and alone a record
 * waits for no timer.
 */
export class IssuanceLog {
  private queue: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly pool: Pool,
    private readonly maxBatch = 500,
  ) {}

  record(record: IssuanceRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** A refused request, with the reason code; failures to write are the caller's to log. */
  refuse(entry: Omit<AuditEntry, 'action'>): Promise<void> {
    return appendAudit(this.pool, { ...entry, action: 'certificate.refused' });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          await this.insert(batch.map((p) => p.record));
          for (const p of batch) p.resolve();
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async insert(records: readonly IssuanceRecord[]): Promise<void> {
    await this.pool.query(
      `INSERT INTO ca_issuances (serial, spiffe_id, not_before, not_after, caller, auth_method, key_type)
       SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])`,
      [
        records.map((r) => r.serial),
        records.map((r) => r.spiffeId),
        records.map((r) => r.notBefore.toISOString()),
        records.map((r) => r.notAfter.toISOString()),
        records.map((r) => r.caller),
        records.map((r) => r.authMethod),
        records.map((r) => r.keyType),
      ],
    );
  }
}
