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

/** C0 controls, DEL and C1 controls; the Unicode controls that reorder or hide text (bidi marks, embeddings, overrides, isolates). */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_ONE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

const visible = (c: string): string => {
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
};

/** `text` with every control character made visible: safe to write to a terminal. */
export function shown(text: string): string {
  // Most text needs nothing: test once, replace only then.
  return UNSAFE_ONE.test(text) ? text.replace(UNSAFE, visible) : text;
}
