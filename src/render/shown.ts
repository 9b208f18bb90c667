/**
 * Text that comes from the traced system, as tracepkt prints it for people.
 *
 * Interface names, rule comments, container and process names, other
 * programs' messages are chosen by whoever runs a container or writes a
 * rule: an escape sequence in them could clear the screen, retitle the
 * window or hide lines of the journey. Printed, their control characters
 * are made visible instead (`\x1b`, as tcpdump and `ls -b` do), and so are
 * the characters that reorder text (bidirectional overrides). Each visible
 * form is plain ASCII, one column per character, so columns stay aligned.
 * JSON keeps the exact text (JSON escapes control characters itself).
 */

/**
 * Controls (C0, DEL, C1), format characters (bidi marks, embeddings,
 * overrides and isolates, zero-width characters, soft hyphen, tag
 * characters), line and paragraph separators, and lone surrogates: what
 * moves the cursor, reorders text or prints as nothing.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const UNSAFE_ONE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

const visible = (c: string): string => {
  const code = c.codePointAt(0)!;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
};

/** `text` with every control character made visible: safe to write to a terminal. */
export function shown(text: string): string {
  // Most text is printable ASCII, which needs nothing: seen by a loop (a table line under a flood shows
  // eight cells: the Unicode test on each cost a tenth of the line); the rest tested, replaced only then.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return UNSAFE_ONE.test(text) ? text.replace(UNSAFE, visible) : text;
  }
  return text;
}
