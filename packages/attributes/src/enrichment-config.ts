// Parses attribute lookups from configuration text (`user:claim=sub`), shared by the services that enrich decision inputs.
import { ConfigError, type Setting } from '@portcullis/runtime';
import type { AttributeLookup, EnrichmentConfig, IdSelector } from './enrichment.ts';

/**
 * An attribute lookup: `<kind>:<selector>[,<selector>…]`, the first selector yielding an id wins.
 * Selectors: `claim=<name>` (dotted for nested claims), `principal`, `header=<name>`,
 * `path=<template>[:<param>]` (`{name}` captures a segment, `*` matches one, a last `**` any rest;
 * `:<param>` may be left out when the template has one capture).
 * Examples: `user:claim=sub`, `product:path=/api/v1/products/{id}/**`, `tenant:header=x-tenant`.
 */
export function parseAttributeLookup(raw: string): AttributeLookup {
  const colon = raw.indexOf(':');
  const kind = raw.slice(0, colon).trim();
  if (colon === -1 || !/^[A-Za-z0-9][\w.-]*$/.test(kind)) {
    throw new Error(`expected <kind>:<selector> such as user:claim=sub, got ${JSON.stringify(raw)}`);
  }
  const selectors = raw
    .slice(colon + 1)
    .split(',')
    .map((s) => s.trim());
  if (selectors.some((s) => s === '')) throw new Error(`an empty selector in ${JSON.stringify(raw)}`);
  const ids = selectors.map(parseIdSelector);
  return { kind, id: ids.length === 1 ? ids[0]! : ids };
}

function parseIdSelector(raw: string): IdSelector {
  if (raw === 'principal') return { principal: true };
  const eq = raw.indexOf('=');
  const name = eq === -1 ? raw : raw.slice(0, eq);
  const value = eq === -1 ? '' : raw.slice(eq + 1).trim();
  if (eq === -1 || value === '' || !['claim', 'header', 'path'].includes(name)) {
    throw new Error(
      `expected a selector claim=<name>, header=<name>, path=<template>[:<param>] or principal, got ${JSON.stringify(raw)}`,
    );
  }
  if (name === 'claim') return { claim: value };
  if (name === 'header') return { header: value.toLowerCase() };
  if (!value.startsWith('/')) throw new Error(`path template ${JSON.stringify(value)} must start with /`);
  const captures = [...value.matchAll(/\{([^/{}]+)\}/g)].map((m) => m[1]!);
  // A `:` after the last `/` names the capture; a path segment may hold a `:` of its own otherwise.
  const colon = value.lastIndexOf(':');
  if (colon > value.lastIndexOf('/')) {
    const template = value.slice(0, colon);
    const param = value.slice(colon + 1);
    if (template.split('/').includes(`{${param}}`)) return { path: template, param };
    if (captures.includes(param) || param === '') {
      throw new Error(`path template ${JSON.stringify(template)}: {${param}} must be a whole segment`);
    }
  }
  if (captures.length !== 1 || !value.split('/').includes(`{${captures[0]}}`)) {
    throw new Error(
      `path template ${JSON.stringify(value)} needs exactly one whole-segment {capture}, or :<param> naming one`,
    );
  }
  return { path: value, param: captures[0]! };
}

/** An optional setting holding an attribute lookup (unset: no lookup). */
export function attributeLookupSetting(opts: { doc: string }): Setting<AttributeLookup | undefined> {
  return { parse: parseAttributeLookup, default: undefined, required: false, doc: opts.doc };
}

/** The enrichment settings a service declares under its own prefix (`<PREFIX>_PIP_ADDR`, …). */
export interface EnrichmentSettings {
  pipAddr: string | undefined;
  namespace: string;
  subject: AttributeLookup | undefined;
  resource: AttributeLookup | undefined;
}

/**
 * The Enricher's configuration, or undefined when enrichment is off (no `<prefix>_PIP_ADDR`).
 * A subject or resource lookup without a PIP is a configuration error naming the PIP address:
 * the attributes live in the PIP, so the lookup could never be answered.
 */
export function enrichmentConfig(
  prefix: string,
  settings: EnrichmentSettings,
  onInvalidToken: NonNullable<EnrichmentConfig['onInvalidToken']>,
): EnrichmentConfig | undefined {
  if (settings.pipAddr === undefined || settings.pipAddr === '') {
    const lookup = settings.subject
      ? `${prefix}_ENRICH_SUBJECT`
      : settings.resource
        ? `${prefix}_ENRICH_RESOURCE`
        : undefined;
    if (lookup)
      throw new ConfigError(`${prefix}_PIP_ADDR`, `must be set for ${lookup} (the PIP holds the attributes)`);
    return undefined;
  }
  return {
    namespace: settings.namespace,
    onInvalidToken,
    ...(settings.subject ? { subject: settings.subject } : {}),
    ...(settings.resource ? { resource: settings.resource } : {}),
  };
}
