/**
 * Colour for people at a terminal: none when output is piped or redirected,
 * none when NO_COLOR is set (no-color.org) or the terminal is dumb.
 */
const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, bold: 1, dim: 2 } as const;
export type Style = keyof typeof CODES;

export type Paint = (text: string, style: Style | undefined) => string;

export const plain: Paint = (text) => text;

export const ansi: Paint = (text, style) => (style && text ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text);

export function colourWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}
