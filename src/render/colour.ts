/**
 * Colour for people at a terminal: none when output is piped or redirected,
 * none when NO_COLOR is set (no-color.org) or the terminal is dumb.
 */
import { shown } from './shown';

const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, bold: 1, dim: 2 } as const;
export type Style = keyof typeof CODES;

export type Paint = (text: string, style: Style | undefined) => string;

/** Text painted is text shown: whatever the traced system named in it has its control characters made visible (shown.ts). */
export const plain: Paint = (text) => shown(text);

export const ansi: Paint = (text, style) => (style && text ? `\x1b[${CODES[style]}m${shown(text)}\x1b[0m` : shown(text));

export function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}
