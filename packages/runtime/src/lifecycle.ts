// One lifecycle for every long-running part; /readyz is the sum of their states.

export type ComponentState = 'NOT_READY' | 'OK' | 'WARN' | 'ERROR';

export interface ComponentStatus {
  state: ComponentState;
  message?: string;
}

/**
 * A long-running part of a service (bus consumer, outbox relay, bundle loader, JWKS refresher…).
 * `start` resolves once the part is running (not necessarily ready); `stop` must be idempotent
 * and resolve when the part holds no more resources.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): ComponentStatus;
}

/** Which component states keep a service from being ready; WARN still serves. */
const NOT_READY_STATES: ReadonlySet<ComponentState> = new Set(['NOT_READY', 'ERROR']);

export class Health {
  private readonly checks = new Map<string, () => ComponentStatus>();

  register(name: string, status: () => ComponentStatus): void {
    this.checks.set(name, status);
  }

  add(component: Component): void {
    this.register(component.name, () => component.status());
  }

  report(): { ready: boolean; components: Record<string, ComponentStatus> } {
    const components: Record<string, ComponentStatus> = {};
    let ready = true;
    for (const [name, check] of this.checks) {
      let s: ComponentStatus;
      try {
        s = check();
      } catch (err) {
        s = { state: 'ERROR', message: err instanceof Error ? err.message : String(err) };
      }
      components[name] = s;
      if (NOT_READY_STATES.has(s.state)) ready = false;
    }
    return { ready, components };
  }
}
