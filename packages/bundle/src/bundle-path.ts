// Paths inside a bundle: the single normal form used for tar entries, module keys and data locations.
import { PortcullisError } from '@portcullis/runtime';

const MAX_PATH_LENGTH = 1024;
const MAX_PATH_DEPTH = 64;

/**
 * Normalises a path inside a bundle to its root-relative form without a leading slash.
 *
 * OPA writes every entry as `/data.json`, `/envoy/authz/policy.rego`: one leading `/` means "the
 * bundle root", not the file system root, so it is accepted (and so is a leading `./`, which
 * `tar -C dir .` writes). What is rejected is anything that could mean a different place on some
 * file system: `..` or `.` segments, a second leading slash (`//etc/passwd`), a drive letter
 * (`C:/…`), backslashes, empty segments (`a//b`) and NUL bytes.
 * Returns `''` for the root directory itself (`/`, `./`). Throws `invalid_bundle` naming the path.
 */
export function normalizeBundlePath(
  raw: string,
  options: { directory?: boolean; what?: string } = {},
): string {
  const what = options.what ?? 'entry';
  const reject = (reason: string): never => {
    throw new PortcullisError('invalid_bundle', `${what} ${JSON.stringify(raw)}: ${reason}`, {
      details: [{ file: raw, message: reason }],
    });
  };
  if (raw.length === 0) reject('the path is empty');
  if (raw.length > MAX_PATH_LENGTH) reject(`the path is longer than ${MAX_PATH_LENGTH} characters`);
  if (raw.includes('\0')) reject('the path contains a NUL byte');
  if (raw.includes('\\')) reject('the path contains a backslash');
  let path = raw;
  if (path.startsWith('./')) path = path.slice(2);
  else if (path.startsWith('/')) path = path.slice(1);
  if (path.startsWith('/')) reject('absolute paths are not allowed');
  if (/^[A-Za-z]:/.test(path)) reject('absolute paths (drive letters) are not allowed');
  if (path.endsWith('/')) {
    if (!options.directory) reject('a file path cannot end with "/"');
    path = path.slice(0, -1);
  }
  if (path === '' || path === '.') return '';
  const segments = path.split('/');
  if (segments.length > MAX_PATH_DEPTH) reject(`the path is deeper than ${MAX_PATH_DEPTH} levels`);
  for (const segment of segments) {
    if (segment === '..') reject('".." escapes the bundle root');
    if (segment === '.') reject('"." segments are not allowed');
    if (segment === '') reject('empty path segments are not allowed');
  }
  return path;
}

/** The directory part of a normalised path as data path segments: `a/b/data.json` → `['a', 'b']`. */
export function dataPathOf(path: string): string[] {
  const segments = path.split('/');
  segments.pop();
  return segments;
}
