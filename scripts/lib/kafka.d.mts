// Types for kafka.mjs.
export interface StartKafkaOptions {
  /** Formatted on first use, kept on later starts. */
  dataDir: string;
  /** Client port; 0 or absent: a free port, chosen once for the life of the handle. */
  port?: number;
  /** Controller port; 0 or absent: a free port. */
  controllerPort?: number;
  /** JVM heap ceiling in MiB. Default 512. */
  heapMb?: number;
  /** Default 90 000. */
  readyTimeoutMs?: number;
  /** Extra or overriding server.properties entries. */
  properties?: Record<string, string | number | boolean>;
}

export interface KafkaServer {
  /** `['127.0.0.1:<port>']`, stable across stop/start. */
  readonly brokers: string[];
  readonly port: number;
  readonly controllerPort: number;
  readonly dataDir: string;
  /** Kafka's own log. */
  readonly logFile: string;
  readonly running: boolean;
  /** Starts the broker again after stop() or kill(), same address and data; no-op while running. */
  start(): Promise<void>;
  /** Clean shutdown (SIGTERM, SIGKILL after 30 s); keeps the data. Idempotent. */
  stop(): Promise<void>;
  /** A crash: SIGKILL. Keeps the data. */
  kill(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
}

export function startKafka(options: StartKafkaOptions): Promise<KafkaServer>;
