// What a bundle revision is made from (modules, data, entrypoints), validated before anything touches the disk.
import { canonicalJson, isJsonObject, normalizeBundlePath, normalizeEntrypoints } from '@portcullis/bundle';
import { type ErrorDetail, PortcullisError } from '@portcullis/runtime';

export interface BundleSource {
  /** Rego sources by bundle-relative path (`envoy/authz/policy.rego`); `*_test.rego` are tests. */
  modules: Record<string, string>;
  /** The data document: a JSON object, laid out as the bundle's root data.json. */
  data: unknown;
  /** Rules or packages to compile to WASM, in any spelling normalizeEntrypoint accepts. */
  entrypoints: string[];
}

export interface SourceLimits {
  maxModules: number;
  maxModuleBytes: number;
  /** Modules plus serialised data. */
  maxTotalBytes: number;
  maxEntrypoints: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = {
  maxModules: 1000,
  maxModuleBytes: 1024 * 1024,
  maxTotalBytes: 16 * 1024 * 1024,
  maxEntrypoints: 64,
};

export interface ValidSource {
  modules: Record<string, string>;
  data: Record<string, unknown>;
  dataJson: string;
  entrypoints: string[];
}

// File names become files under the compile directory and opa's command line: keep them plain.
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function isTestModule(path: string): boolean {
  return path.endsWith('_test.rego');
}

/**
 * Checks a source and returns it normalised (paths without a leading slash, entrypoints in slash
 * form). Module paths: relative, no `..`, `.rego` only, segments of letters, digits, `_`, `-`, `.`
 * not starting with `.`. Throws `invalid_bundle` (paths, with every bad path in details),
 * `payload_too_large` (sizes) or `validation_failed` (data not an object, no or bad entrypoints).
 */
export function validateSource(
  source: BundleSource,
  limits: SourceLimits = DEFAULT_SOURCE_LIMITS,
): ValidSource {
  if (!isJsonObject(source.modules)) {
    throw new PortcullisError('validation_failed', 'modules must be an object of path → Rego source', {
      details: [{ field: 'modules', reason: 'must be an object' }],
    });
  }
  const entries = Object.entries(source.modules);
  if (entries.length === 0) {
    throw new PortcullisError('validation_failed', 'a bundle needs at least one Rego module', {
      details: [{ field: 'modules', reason: 'is empty' }],
    });
  }
  if (entries.length > limits.maxModules) {
    throw new PortcullisError('payload_too_large', `a bundle may hold at most ${limits.maxModules} modules`, {
      details: [{ field: 'modules', reason: `more than ${limits.maxModules} modules` }],
    });
  }
  const modules: Record<string, string> = {};
  const problems: ErrorDetail[] = [];
  let total = 0;
  for (const [rawPath, text] of entries) {
    let path: string;
    try {
      path = normalizeBundlePath(rawPath, { what: 'module' });
      if (rawPath.startsWith('/')) {
        throw new Error('absolute paths are not allowed; module paths are relative');
      }
      if (!path.endsWith('.rego')) throw new Error('module paths must end in .rego');
      if (!path.split('/').every((segment) => SEGMENT.test(segment))) {
        throw new Error(
          'path segments may hold letters, digits, "_", "-" and "." and must not start with "."',
        );
      }
      if (path.startsWith('data.json/')) throw new Error('the path collides with the bundle’s data.json');
      if (Object.hasOwn(modules, path)) throw new Error('the path is given twice');
    } catch (err) {
      const message =
        err instanceof PortcullisError
          ? String(err.details[0]?.['message'] ?? err.message)
          : (err as Error).message;
      problems.push({ file: rawPath, message });
      continue;
    }
    if (typeof text !== 'string') {
      problems.push({ file: rawPath, message: 'the module source must be a string' });
      continue;
    }
    const size = Buffer.byteLength(text, 'utf8');
    if (size > limits.maxModuleBytes) {
      throw new PortcullisError(
        'payload_too_large',
        `module ${rawPath} is ${size} bytes, over ${limits.maxModuleBytes}`,
        {
          details: [{ file: rawPath, message: `over ${limits.maxModuleBytes} bytes` }],
        },
      );
    }
    total += size;
    modules[path] = text;
  }
  if (problems.length > 0) {
    throw new PortcullisError(
      'invalid_bundle',
      problems.map((p) => `module ${JSON.stringify(p['file'])}: ${String(p['message'])}`).join('; '),
      { details: problems },
    );
  }

  const data = source.data ?? {};
  if (!isJsonObject(data)) {
    throw new PortcullisError('validation_failed', 'data must be a JSON object', {
      details: [{ field: 'data', reason: 'must be a JSON object' }],
    });
  }
  const dataJson = canonicalJson(data, 'data');
  total += Buffer.byteLength(dataJson, 'utf8');
  if (total > limits.maxTotalBytes) {
    throw new PortcullisError(
      'payload_too_large',
      `modules and data add up to more than ${limits.maxTotalBytes} bytes`,
      {
        details: [{ field: 'modules', reason: `modules and data over ${limits.maxTotalBytes} bytes` }],
      },
    );
  }

  if (!Array.isArray(source.entrypoints) || source.entrypoints.length === 0) {
    throw new PortcullisError('validation_failed', 'at least one entrypoint is required', {
      details: [{ field: 'entrypoints', reason: 'at least one entrypoint is required' }],
    });
  }
  if (source.entrypoints.length > limits.maxEntrypoints) {
    throw new PortcullisError('validation_failed', `at most ${limits.maxEntrypoints} entrypoints`, {
      details: [{ field: 'entrypoints', reason: `more than ${limits.maxEntrypoints}` }],
    });
  }
  if (!source.entrypoints.every((e): e is string => typeof e === 'string')) {
    throw new PortcullisError('validation_failed', 'entrypoints must be strings', {
      details: [{ field: 'entrypoints', reason: 'must be strings' }],
    });
  }
  const entrypoints = normalizeEntrypoints(source.entrypoints);
  return { modules, data, dataJson, entrypoints };
}
