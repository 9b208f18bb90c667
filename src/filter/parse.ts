/**
 * The filter language, a tcpdump-like subset:
 *
 *   expr    := or
 *   or      := and ("or" and)*
 *   and     := unary ("and" unary)*
 *   unary   := "not" unary | "(" expr ")" | primitive
 *   primitive := [src|dst] host ADDR | [src|dst] net CIDR | [src|dst] port N
 *              | icmp | icmp6 | tcp | udp | ip | ip6
 *
 * "&&", "||" and "!" are accepted for and, or, not. Errors name the token and
 * its column, in one line, before anything is attached.
 */
import * as net from 'node:net';
import { TracepktError } from '../errors';

export type Direction = 'src' | 'dst' | 'either';

export type FilterNode =
  | { kind: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { kind: 'not'; operand: FilterNode }
  | { kind: 'proto'; proto: 'icmp' | 'icmp6' | 'tcp' | 'udp' }
  | { kind: 'family'; family: 4 | 6 }
  | { kind: 'net'; dir: Direction; family: 4 | 6; address: string; prefix: number }
  | { kind: 'port'; dir: Direction; port: number };

interface Token {
  text: string;
  /** 1-based column in the expression. */
  pos: number;
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(\(|\)|&&|\|\||!|[^\s()!]+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(expr)) !== null && m[1] !== undefined) {
    tokens.push({ text: m[1], pos: m.index + m[0].indexOf(m[1]) + 1 });
  }
  return tokens;
}

export class FilterSyntaxError extends TracepktError {
  constructor(
    expr: string,
    message: string,
    /** 1-based column of the bad token. */
    readonly column: number,
  ) {
    super(`bad filter at column ${column}: ${message} (in "${expr}")`);
  }
}

export function parseFilter(expr: string): FilterNode {
  const tokens = tokenize(expr);
  let i = 0;
  const end = expr.length + 1;
  const peek = () => tokens[i]?.text;
  const fail = (message: string, at = tokens[i]?.pos ?? end): never => {
    throw new FilterSyntaxError(expr, message, at);
  };
  const word = (t: string | undefined) => (t === '&&' ? 'and' : t === '||' ? 'or' : t === '!' ? 'not' : t);

  function or(): FilterNode {
    let left = and();
    while (word(peek()) === 'or') {
      i++;
      left = { kind: 'or', left, right: and() };
    }
    return left;
  }

  function and(): FilterNode {
    let left = unary();
    while (word(peek()) === 'and') {
      i++;
      left = { kind: 'and', left, right: unary() };
    }
    return left;
  }

  function unary(): FilterNode {
    const t = tokens[i];
    if (!t) return fail('expression ends too early');
    if (word(t.text) === 'not') {
      i++;
      return { kind: 'not', operand: unary() };
    }
    if (t.text === '(') {
      i++;
      const inner = or();
      if (peek() !== ')') fail(`expected ")" to close the "(" at column ${t.pos}`);
      i++;
      return inner;
    }
    return primitive();
  }

  function primitive(): FilterNode {
    const t = tokens[i];
    let dir: Direction = 'either';
    if (t.text === 'src' || t.text === 'dst') {
      dir = t.text;
      i++;
    }
    const kw = tokens[i];
    if (!kw) return fail(`expected host, net or port after "${t.text}"`);
    i++;
    switch (kw.text) {
      case 'icmp':
      case 'icmp6':
      case 'tcp':
      case 'udp':
        if (dir !== 'either') fail(`"${dir}" does not go with "${kw.text}"`, kw.pos);
        return { kind: 'proto', proto: kw.text };
      case 'ip':
      case 'ip6':
        if (dir !== 'either') fail(`"${dir}" does not go with "${kw.text}"`, kw.pos);
        return { kind: 'family', family: kw.text === 'ip' ? 4 : 6 };
      case 'host':
        return address(dir, false);
      case 'net':
        return address(dir, true);
      case 'port':
        return port(dir);
      default:
        return fail(dir === 'either' ? `unknown word "${kw.text}"` : `expected host, net or port after "${dir}", not "${kw.text}"`, kw.pos);
    }
  }

  function address(dir: Direction, cidr: boolean): FilterNode {
    const t = tokens[i];
    if (!t || ['(', ')'].includes(t.text)) return fail(`expected ${cidr ? 'a network such as 10.0.0.0/8' : 'an IP address'}`);
    i++;
    const [addr, len, extra] = t.text.split('/');
    const family = net.isIP(addr);
    if (!family || extra !== undefined || (!cidr && len !== undefined)) fail(`"${t.text}" is not ${cidr ? 'a network' : 'an IP address'}`, t.pos);
    const max = family === 4 ? 32 : 128;
    const prefix = len === undefined ? max : Number(len);
    if ((len !== undefined && !/^\d+$/.test(len)) || prefix > max) fail(`"${t.text}": the prefix length must be 0 to ${max}`, t.pos);
    return { kind: 'net', dir, family: family as 4 | 6, address: addr, prefix };
  }

  function port(dir: Direction): FilterNode {
    const t = tokens[i];
    if (!t || !/^\d+$/.test(t.text) || Number(t.text) > 65535) return fail(`expected a port number (0-65535)${t ? `, not "${t.text}"` : ''}`);
    i++;
    return { kind: 'port', dir, port: Number(t.text) };
  }

  if (tokens.length === 0) fail('empty filter', 1);
  const tree = or();
  if (i < tokens.length) fail(`unexpected "${tokens[i].text}"`);
  return tree;
}
