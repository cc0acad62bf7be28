// The error-code registry: shape, documentation in the README, and use in the sources.
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PKI_ERROR_CODES, PkiError } from '../src/pki-error.ts';

const packageDir = path.join(import.meta.dirname, '..');
const codes = Object.keys(PKI_ERROR_CODES);

describe('PkiError codes', () => {
  it('are snake_case, described, and carry their kind', () => {
    for (const code of codes) expect(code).toMatch(/^[a-z]+(_[a-z]+)+$/);
    const error = new PkiError('csr_weak_key', 'weak', { cause: new Error('inner') });
    expect(error).toMatchObject({
      name: 'PkiError',
      code: 'csr_weak_key',
      kind: 'invalid_argument',
      message: 'weak',
    });
    expect(error.cause).toBeInstanceOf(Error);
  });

  it.each(codes)('%s is documented in the README and thrown somewhere', async (code) => {
    const readme = await fs.readFile(path.join(packageDir, 'README.md'), 'utf8');
    // A row of the README's error table (the formatter pads the columns).
    expect(readme).toMatch(new RegExp(`^\\|\\s*\`${code}\`\\s*\\|`, 'm'));
    const sources = await Promise.all(
      (await fs.readdir(path.join(packageDir, 'src')))
        .filter((name) => name.endsWith('.ts') && name !== 'pki-error.ts')
        .map((name) => fs.readFile(path.join(packageDir, 'src', name), 'utf8')),
    );
    expect(sources.some((source) => source.includes(`'${code}'`))).toBe(true);
  });
});
