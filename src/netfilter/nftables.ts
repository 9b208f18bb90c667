/**
 * nf_tables over netlink (include/uapi/linux/netfilter/nf_tables.h): the
 * messages tracepkt sends (a table, chains and rules of its own; a chain
 * dump) and the ones it reads (chains, trace events).
 */
import { attr, attrI32, attrString, attrU32, attrU64, i32be, message, nested, NLM_F, parseAttrs, str, u32be, type NlMessage } from './netlink';

export const NETLINK_NETFILTER = 12;
export const NFNLGRP_NFTRACE = 9;
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;

export const NFT_MSG = { NEWTABLE: 0, DELTABLE: 2, NEWCHAIN: 3, GETCHAIN: 4, NEWRULE: 6, TRACE: 17 } as const;
export const NFPROTO = { INET: 1, IPV4: 2, IPV6: 10 } as const;
export const NFT_TABLE_F_OWNER = 2;

const TABLE = { NAME: 1, FLAGS: 2 };
const CHAIN = { TABLE: 1, NAME: 3, HOOK: 4, POLICY: 5, TYPE: 7, FLAGS: 10 };
const HOOK = { HOOKNUM: 1, PRIORITY: 2 };
const RULE = { TABLE: 1, CHAIN: 2, EXPRESSIONS: 4 };
const LIST_ELEM = 1;
const EXPR = { NAME: 1, DATA: 2 };
const DATA_VALUE = 1;
const VERDICT = { CODE: 1, CHAIN: 2 };
const TRACE = { TABLE: 1, CHAIN: 2, RULE_HANDLE: 3, TYPE: 4, VERDICT: 5, ID: 6, NETWORK_HEADER: 8, TRANSPORT_HEADER: 9, IIF: 10, OIF: 12, NFPROTO: 15, POLICY: 16 };

/** The type field of an nf_tables message. */
export const msgType = (nftMsg: number) => (NFNL_SUBSYS_NFTABLES << 8) | nftMsg;

/** struct nfgenmsg: family, version, resource id (big endian). */
function nfgen(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b[0] = family;
  b.writeUInt16BE(resId, 2);
  return b;
}

/** An nf_tables request: nfgenmsg followed by attributes. */
export interface Request {
  msg: number;
  family: number;
  flags: number;
  attrs: Buffer[];
}

/** Wraps requests in a transaction: all of them apply, or none. */
export function batch(firstSeq: number, requests: Request[]): Buffer {
  let seq = firstSeq;
  const parts = [message({ type: NFNL_MSG_BATCH_BEGIN, flags: NLM_F.REQUEST, seq: seq++, payload: nfgen(0, NFNL_SUBSYS_NFTABLES) })];
  for (const r of requests) {
    parts.push(
      message({
        type: msgType(r.msg),
        flags: NLM_F.REQUEST | NLM_F.ACK | r.flags,
        seq: seq++,
        payload: Buffer.concat([nfgen(r.family), ...r.attrs]),
      }),
    );
  }
  parts.push(message({ type: NFNL_MSG_BATCH_END, flags: NLM_F.REQUEST, seq: seq++, payload: nfgen(0, NFNL_SUBSYS_NFTABLES) }));
  return Buffer.concat(parts);
}

export function newTable(family: number, name: string, flags: number): Request {
  return { msg: NFT_MSG.NEWTABLE, family, flags: NLM_F.CREATE | NLM_F.EXCL, attrs: [str(TABLE.NAME, name), u32be(TABLE.FLAGS, flags)] };
}

export function delTable(family: number, name: string): Request {
  return { msg: NFT_MSG.DELTABLE, family, flags: 0, attrs: [str(TABLE.NAME, name)] };
}

export function newBaseChain(family: number, table: string, name: string, hooknum: number, priority: number): Request {
  return {
    msg: NFT_MSG.NEWCHAIN,
    family,
    flags: NLM_F.CREATE | NLM_F.EXCL,
    attrs: [
      str(CHAIN.TABLE, table),
      str(CHAIN.NAME, name),
      nested(CHAIN.HOOK, [u32be(HOOK.HOOKNUM, hooknum), i32be(HOOK.PRIORITY, priority)]),
      u32be(CHAIN.POLICY, 1), // NF_ACCEPT: our chains never judge
      str(CHAIN.TYPE, 'filter'),
    ],
  };
}

export function newRule(family: number, table: string, chain: string, expressions: Buffer[]): Request {
  return {
    msg: NFT_MSG.NEWRULE,
    family,
    flags: NLM_F.CREATE | NLM_F.APPEND,
    attrs: [str(RULE.TABLE, table), str(RULE.CHAIN, chain), nested(RULE.EXPRESSIONS, expressions.map((e) => nested(LIST_ELEM, [e])))],
  };
}

/** Requests every chain of every table of every family. */
export function getChainsDump(seq: number): Buffer {
  return message({ type: msgType(NFT_MSG.GETCHAIN), flags: NLM_F.REQUEST | NLM_F.DUMP, seq, payload: nfgen(0) });
}

// ---- expressions ----

const REG_1 = 1;
const META_KEY = { L4PROTO: 16, NFTRACE: 12 };
const PAYLOAD_TRANSPORT_HEADER = 2;
const CMP_EQ = 0;

function expr(name: string, data: Buffer[]): Buffer {
  return Buffer.concat([str(EXPR.NAME, name), nested(EXPR.DATA, data)]);
}

const setNftrace = () => [
  expr('immediate', [u32be(1 /* DREG */, REG_1), nested(2 /* DATA */, [attr(DATA_VALUE, Buffer.from([1]))])]),
  expr('meta', [u32be(2 /* KEY */, META_KEY.NFTRACE), u32be(3 /* SREG */, REG_1)]),
];

/** The rule `meta l4proto PROTO th sport|dport PORT meta nftrace set 1`. */
export function tracePortExpressions(l4proto: number, port: number, which: 'sport' | 'dport'): Buffer[] {
  const value = Buffer.alloc(2);
  value.writeUInt16BE(port);
  return [
    expr('meta', [u32be(2, META_KEY.L4PROTO), u32be(1, REG_1)]),
    expr('cmp', [u32be(1, REG_1), u32be(2, CMP_EQ), nested(3, [attr(DATA_VALUE, Buffer.from([l4proto]))])]),
    expr('payload', [u32be(1, REG_1), u32be(2, PAYLOAD_TRANSPORT_HEADER), u32be(3, which === 'sport' ? 0 : 2), u32be(4, 2)]),
    expr('cmp', [u32be(1, REG_1), u32be(2, CMP_EQ), nested(3, [attr(DATA_VALUE, value)])]),
    ...setNftrace(),
  ];
}

/** The rule `meta l4proto PROTO @th,OFFSET*8,64 MARKER meta nftrace set 1`. */
export function traceMarkerExpressions(l4proto: number, markerOffset: number, marker: Buffer): Buffer[] {
  return [
    expr('meta', [u32be(2 /* KEY */, META_KEY.L4PROTO), u32be(1 /* DREG */, REG_1)]),
    expr('cmp', [u32be(1 /* SREG */, REG_1), u32be(2 /* OP */, CMP_EQ), nested(3 /* DATA */, [attr(DATA_VALUE, Buffer.from([l4proto]))])]),
    expr('payload', [u32be(1 /* DREG */, REG_1), u32be(2 /* BASE */, PAYLOAD_TRANSPORT_HEADER), u32be(3 /* OFFSET */, markerOffset), u32be(4 /* LEN */, marker.length)]),
    expr('cmp', [u32be(1, REG_1), u32be(2, CMP_EQ), nested(3, [attr(DATA_VALUE, marker)])]),
    ...setNftrace(),
  ];
}

// ---- decoding ----

export interface ChainInfo {
  family: number;
  table: string;
  name: string;
  /** Base chains only: the hook and priority they are attached at. */
  hooknum?: number;
  priority?: number;
}

export function decodeChain(m: NlMessage): ChainInfo {
  const a = parseAttrs(m.payload, 4);
  const chain: ChainInfo = { family: m.payload[0] ?? 0, table: attrString(a.get(CHAIN.TABLE)) ?? '', name: attrString(a.get(CHAIN.NAME)) ?? '' };
  const hook = a.get(CHAIN.HOOK);
  if (hook) {
    const h = parseAttrs(hook);
    chain.hooknum = attrU32(h.get(HOOK.HOOKNUM)) ?? undefined;
    chain.priority = attrI32(h.get(HOOK.PRIORITY)) ?? undefined;
  }
  return chain;
}

export const TRACE_TYPE = { POLICY: 1, RETURN: 2, RULE: 3 } as const;

/** One NFT_MSG_TRACE: a chain or rule that saw a traced packet, and what it decided. */
export interface TraceMessage {
  /** The table's family (nfgenmsg). */
  family: number;
  table: string;
  chain: string;
  type: number;
  /** Rule handle for TRACE_TYPE.RULE. */
  handle: number | null;
  /** Verdict code: NF_DROP 0, NF_ACCEPT 1, ..., NFT_CONTINUE -1, NFT_JUMP -3, ... */
  verdict: number | null;
  /** Target chain of a jump or goto. */
  jumpTo: string | null;
  /** The policy applied, for TRACE_TYPE.POLICY. */
  policy: number | null;
  /** Same for every message about one packet. */
  id: number;
  nfproto: number | null;
  networkHeader: Buffer | null;
  transportHeader: Buffer | null;
  iif: number | null;
  oif: number | null;
}

export function decodeTrace(m: NlMessage): TraceMessage {
  const a = parseAttrs(m.payload, 4);
  const verdict = a.get(TRACE.VERDICT);
  const v = verdict ? parseAttrs(verdict) : undefined;
  const u32 = attrU32;
  return {
    family: m.payload[0] ?? 0,
    table: attrString(a.get(TRACE.TABLE)) ?? '',
    chain: attrString(a.get(TRACE.CHAIN)) ?? '',
    type: u32(a.get(TRACE.TYPE)) ?? 0,
    handle: attrU64(a.get(TRACE.RULE_HANDLE)),
    verdict: attrI32(v?.get(VERDICT.CODE)),
    jumpTo: attrString(v?.get(VERDICT.CHAIN)) ?? null,
    policy: u32(a.get(TRACE.POLICY)),
    id: u32(a.get(TRACE.ID)) ?? 0,
    nfproto: u32(a.get(TRACE.NFPROTO)),
    networkHeader: a.get(TRACE.NETWORK_HEADER) ?? null,
    transportHeader: a.get(TRACE.TRANSPORT_HEADER) ?? null,
    iif: u32(a.get(TRACE.IIF)),
    oif: u32(a.get(TRACE.OIF)),
  };
}
