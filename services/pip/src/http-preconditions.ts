// HTTP conditional-request headers as the PIP reads them: If-Match lists and If-None-Match.

/** The strong ETags of an If-Match (or If-None-Match) header, and `*`; weak ones never match a write. */
export function parseIfMatch(header: string): string[] {
  return header
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0 && !t.startsWith('W/'));
}
