// Makes one decision, whatever door it came through: routes the path, evaluates, logs, counts.
import { randomUUID } from 'node:crypto';
import { EngineError, type JsonDecision } from '@portcullis/engine';
import type { DecisionLogger } from '@portcullis/runtime';
import type { DecisionOutcome, PdpMetrics } from './pdp-metrics.ts';
import { type DocumentPlan, descend, type RuleRef, type ServedDocuments } from './served-documents.ts';
import type { Evaluator } from './serving/evaluator.ts';

export interface DecisionRequest {
  /** The path as segments; `[]` is the root document. */
  segments: string[];
  /** The input, parsed; `undefined` when the request has none. */
  input?: unknown;
  /** The same input as JSON text when the caller already has it (saves a stringify); `input` is still required. */
  inputJson?: string;
  /** A caller-chosen id; one is generated when absent. */
  decisionId?: string;
}

export interface DecisionResponse {
  decisionId: string;
  /** The result as JSON text; `undefined` when the document is undefined. */
  resultJson: string | undefined;
  /** The bundle that answered; empty when none did (an undefined path) or several did (a tree). */
  bundle: string;
  revision: number;
  digest: string;
  /** Evaluation time summed over the entrypoints evaluated, in nanoseconds. */
  evalNs: number;
  /** A tree view assembled from entrypoints and data only (see DocumentPlan). */
  partial: boolean;
  /** How the path was answered; the metrics' `path` label. */
  served: string;
}

/**
 * JSON text in a decision log entry, parsed only when the logger serialises the entry (off the
 * decision path): JSON.stringify calls toJSON.
 */
class LazyJson {
  constructor(private readonly text: string) {}
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

export interface DeciderOptions {
  documents: ServedDocuments;
  evaluator: Evaluator;
  metrics: PdpMetrics;
  decisionLog?: DecisionLogger;
  /**
   * Adds attributes to an object input before evaluation (see input-enrichment.ts). Run here, in
   * the one place every door (Data API, its fast path, gRPC) decides through, so none skips it.
   */
  enrich?: (input: object) => Promise<object>;
}

/** Sets `value` at `path` inside `root`, creating objects on the way (a tree view's assembly). */
function place(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = root;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
      return;
    }
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) {
      node = next as Record<string, unknown>;
    } else {
      const child: Record<string, unknown> = {};
      Object.defineProperty(node, key, {
        value: child,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      node = child;
    }
  }
}

/** Deep-merges JSON objects (data from several bundles under one path); later scalars win. */
function merge(target: Record<string, unknown>, source: unknown): void {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return;
  for (const [key, value] of Object.entries(source)) {
    const existing = Object.hasOwn(target, key) ? target[key] : undefined;
    if (
      typeof existing === 'object' &&
      existing !== null &&
      !Array.isArray(existing) &&
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value)
    ) {
      merge(existing as Record<string, unknown>, value);
    } else {
      place(target, [key], structuredClone(value));
    }
  }
}

function outcomeOf(resultJson: string | undefined): DecisionOutcome {
  if (resultJson === undefined) return 'undefined';
  if (resultJson === 'true') return 'true';
  if (resultJson === 'false') return 'false';
  return 'defined';
}

/**
 * Transport-free decision making; the Data API and the gRPC service are thin adapters over it.
 * Throws EngineError (`invalid_input`, `eval_failed`, `builtin_error`, …) for a decision that
 * cannot be made; every decision, failed or not, is counted, and every made one logged.
 */
export class Decider {
  private readonly documents: ServedDocuments;
  private readonly evaluator: Evaluator;
  private readonly metrics: PdpMetrics;
  private readonly decisionLog: DecisionLogger | undefined;
  private readonly enrich: ((input: object) => Promise<object>) | undefined;
  /** Labelled children by path (and outcome): hashing label sets on every decision costs more than counting. */
  private readonly timers = new Map<string, (seconds: number) => void>();
  private readonly counters = new Map<string, () => void>();

  constructor(opts: DeciderOptions) {
    this.documents = opts.documents;
    this.evaluator = opts.evaluator;
    this.metrics = opts.metrics;
    this.decisionLog = opts.decisionLog;
    this.enrich = opts.enrich;
  }

  async decide(request: DecisionRequest): Promise<DecisionResponse> {
    let req = request;
    const started = performance.now();
    const plan = this.documents.plan(req.segments);
    const served = plan.kind === 'rule' ? plan.rule.entrypoint : plan.kind === 'tree' ? 'tree' : plan.kind;
    let res: DecisionResponse;
    try {
      const input = req.input;
      if (this.enrich !== undefined && typeof input === 'object' && input !== null && !Array.isArray(input)) {
        // The enriched input is what the policy sees and what the decision log records; the
        // caller's JSON text no longer describes it.
        const { inputJson: _stale, ...rest } = req;
        req = { ...rest, input: await this.enrich(input) };
      }
      res = await this.answer(plan, req, served);
    } catch (err) {
      this.count(served, 'error');
      throw err;
    }
    this.count(served, outcomeOf(res.resultJson));
    this.timer(served)((performance.now() - started) / 1000);
    this.decisionLog?.log({
      decision_id: res.decisionId,
      timestamp: new Date().toISOString(),
      path: req.segments.join('/'),
      // The parsed input, never its text: redaction works on the object.
      input: req.input,
      result: res.resultJson === undefined ? undefined : new LazyJson(res.resultJson),
      bundle: res.bundle,
      revision: res.revision,
      digest: res.digest,
      eval_ns: res.evalNs,
    });
    return res;
  }

  private count(path: string, outcome: DecisionOutcome): void {
    const key = `${path}\u0000${outcome}`;
    let inc = this.counters.get(key);
    if (!inc) {
      const child = this.metrics.decisions.labels({ path, outcome });
      inc = () => child.inc();
      this.counters.set(key, inc);
    }
    inc();
  }

  private timer(path: string): (seconds: number) => void {
    let t = this.timers.get(path);
    if (!t) {
      const child = this.metrics.decisionDuration.labels({ path });
      t = (seconds) => child.observe(seconds);
      this.timers.set(path, t);
    }
    return t;
  }

  private async answer(plan: DocumentPlan, req: DecisionRequest, served: string): Promise<DecisionResponse> {
    const decisionId = req.decisionId || randomUUID();
    switch (plan.kind) {
      case 'rule': {
        const d = await this.evaluate(plan.rule, req);
        let resultJson = d.resultJson;
        if (plan.rest.length > 0 && resultJson !== undefined) {
          const inner = descend(JSON.parse(resultJson), plan.rest);
          resultJson = inner === undefined ? undefined : JSON.stringify(inner);
        }
        return {
          decisionId,
          resultJson,
          bundle: d.bundle,
          revision: d.revision,
          digest: d.digest,
          evalNs: d.evalNs,
          partial: false,
          served,
        };
      }
      case 'data': {
        const { bundle } = plan;
        return {
          decisionId,
          resultJson: JSON.stringify(plan.value),
          bundle: bundle.bundle,
          revision: bundle.revision,
          digest: bundle.digest,
          evalNs: 0,
          partial: false,
          served,
        };
      }
      case 'tree': {
        const root: Record<string, unknown> = {};
        for (const data of plan.data) merge(root, data);
        let evalNs = 0;
        const bundles = new Set<string>();
        for (const rule of plan.rules) {
          const d = await this.evaluate(rule, req);
          evalNs += d.evalNs;
          bundles.add(d.bundle);
          if (d.resultJson !== undefined) place(root, rule.at, JSON.parse(d.resultJson));
        }
        const only =
          bundles.size === 1 ? this.documents.bundles().find((b) => bundles.has(b.bundle)) : undefined;
        return {
          decisionId,
          resultJson: JSON.stringify(root),
          bundle: only?.bundle ?? '',
          revision: only?.revision ?? 0,
          digest: only?.digest ?? '',
          evalNs,
          partial: plan.rules.length > 0,
          served,
        };
      }
      case 'none':
        return {
          decisionId,
          resultJson: undefined,
          bundle: '',
          revision: 0,
          digest: '',
          evalNs: 0,
          partial: false,
          served,
        };
    }
  }

  private evaluate(rule: RuleRef, req: DecisionRequest): JsonDecision | Promise<JsonDecision> {
    if (req.inputJson === undefined && req.input !== undefined) {
      try {
        req.inputJson = JSON.stringify(req.input);
      } catch (cause) {
        throw new EngineError(
          'invalid_input',
          `input is not JSON-serializable: ${(cause as Error).message}`,
          { cause },
        );
      }
    }
    return this.evaluator.evaluate(rule.entrypoint, req.inputJson);
  }
}
