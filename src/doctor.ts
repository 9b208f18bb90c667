/**
 * Measures what the running kernel allows, by trying it: each check loads
 * (and where it matters attaches) a tiny program and reports the errno.
 * Never decided by kernel version.
 */
import * as fs from 'node:fs';
import { BPF_NETFILTER, BPF_PROG_TYPE_NETFILTER } from './bpf/layout';
import { BpfObject } from './bpf/object';
import { NetnsResolver } from './names/netns';
import { createTracer, type Tracer } from './tracer';
import { BpfError, errnoName } from './errors';
import { measureBpfSupport } from './kernel/bpf-support';
import { bpfObjectPath, loadNative, type Native } from './native';
import { canTrace } from './privileges';

export interface Check {
  feature: string;
  ok: boolean;
  /** What was found: the errno or the file. */
  detail: string;
  /** What it means for tracepkt's features. */
  meaning: string;
  /** Without it tracepkt cannot trace at all. */
  required: boolean;
}

const NFPROTO_IPV4 = 2;
const NF_INET_LOCAL_IN = 1;

function describe(err: unknown): string {
  if (err instanceof BpfError) return `${err.op} failed: ${errnoName(err.errno)}`;
  return err instanceof Error ? err.message : String(err);
}

/** Builds a tracer, asks `check` what it lacks (null: nothing), always closes it. */
async function tryTracer(make: () => Promise<Tracer>, check: (t: Tracer) => string | null = () => null): Promise<string | null> {
  let tracer: Tracer | undefined;
  try {
    tracer = await make();
    return check(tracer);
  } catch (err) {
    return describe(err);
  } finally {
    tracer?.close();
  }
}

/** Opens a fresh copy of an object, lets `use` load/attach it, always closes it. */
function tryObject(native: Native, name: string, use: (obj: BpfObject) => void): string | null {
  let obj: BpfObject | undefined;
  try {
    obj = new BpfObject(native, bpfObjectPath(name));
    use(obj);
    return null;
  } catch (err) {
    return describe(err);
  } finally {
    obj?.close();
  }
}

/**
 * Loads and attaches a probe program. `refused` says what it means when the
 * verifier refuses the program (EINVAL at load): the feature is missing, and
 * that is the cause to name, not the errno.
 */
function probeProgram(native: Native, prog: string, setup?: (obj: BpfObject) => void, attach?: (obj: BpfObject) => void, refused?: string) {
  let loaded = false;
  const failure = tryObject(native, 'probes', (obj) => {
    obj.selectPrograms([prog]);
    setup?.(obj);
    obj.load();
    loaded = true;
    if (attach) attach(obj);
    else obj.attach(prog);
  });
  return failure !== null && !loaded && refused && failure.endsWith(errnoName(22)) ? refused : failure;
}

/**
 * fexit on a BPF program, as tracepkt aims it at the XDP and tc programs on
 * a probe's path: a do-nothing XDP program of its own loaded (never
 * attached to an interface), then an fexit program traced onto it.
 */
function probeFexitOnProgram(native: Native): string | null {
  return tryObject(native, 'probes', (target) => {
    target.selectPrograms(['probe_xdp_target']);
    target.load();
    const failure = tryObject(native, 'probes', (tracing) => {
      tracing.selectPrograms(['probe_fexit_program']);
      tracing.setAttachTarget('probe_fexit_program', target.programId('probe_xdp_target'), 'probe_xdp_target');
      tracing.load();
      tracing.attach('probe_fexit_program');
    });
    if (failure) throw new Error(failure);
  });
}

export async function runChecks(native: Native = loadNative()): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (feature: string, required: boolean, failure: string | null, okDetail: string, meaning: string, missing: string) =>
    checks.push({ feature, required, ok: failure === null, detail: failure ?? okDetail, meaning: failure === null ? meaning : missing });

  const privileged = canTrace();
  add('privileges', true, privileged ? null : 'no CAP_SYS_ADMIN and CAP_NET_ADMIN', 'CAP_SYS_ADMIN and CAP_NET_ADMIN',
    'can load eBPF programs, enter namespaces and join netfilter', 'run tracepkt as root');

  const btf = '/sys/kernel/btf/vmlinux';
  add('kernel BTF', true, fs.existsSync(btf) ? null : `${btf} missing`, btf,
    'CO-RE: one prebuilt object adapts to this kernel', 'the kernel needs CONFIG_DEBUG_INFO_BTF=y; tracepkt cannot run');

  if (!privileged) return checks;

  // The linear reader: what the packet-bytes check below measures is not needed to attach.
  const filter = { marker: Buffer.alloc(8), markerOffset: 0, family: 0 as const, reader: { kind: 'linear' as const } };
  add('tp_btf tracepoints + ring buffer', true,
    await tryTracer(() => createTracer({ filter, native })),
    'net_dev_queue and netif_receive_skb attached',
    'interface hops in every namespace, both directions', 'no hop tracing: tracepkt cannot run');

  // Our own namespace only: enough to know whether the kernel lets us.
  const own = (await new NetnsResolver().listAsync()).slice(0, 1);
  let owned: boolean | undefined;
  add('nftables tracing', false,
    await tryTracer(() => createTracer({ filter, native, netfilter: true, namespaces: own }), (t) => {
      const ns = t.netfilter?.namespaces[0];
      if (!ns?.socket) return ns?.notes.join('; ') || 'not set up';
      owned = ns.ownedTable;
      return null;
    }),
    'a table of ours, trace group joined',
    'nftables (and iptables-nft) rules that decided are named', 'rules are not named; verdicts come from BPF netfilter links only');
  if (owned !== undefined) {
    add('nftables table owner flag', false, owned ? null : 'the kernel refused it (before 5.12)', 'our table is the kernel\'s to remove when we exit',
      'a killed run leaves no table behind', 'our table is removed on exit, and by `tracepkt cleanup` after a SIGKILL');
  }

  const tracefs = '/sys/kernel/tracing/events';
  add('tracefs', false, fs.existsSync(tracefs) ? null : 'not mounted at /sys/kernel/tracing', tracefs,
    'classic tracepoints usable', 'not needed: tracepkt attaches tp_btf tracepoints, which need no tracefs');

  add('fentry/fexit (BPF trampolines)', false, probeProgram(native, 'probe_fentry'), 'attached to ip_rcv',
    'kernel-function hooks available for extra detail', 'kernel-function hooks unavailable: tracepkt uses tracepoints only');

  add('fexit on BPF programs', false, probeFexitOnProgram(native), 'traced the return of an XDP program',
    'what the XDP and tc programs on a probe\'s path return for it is traced: the one that dropped it is named',
    'the XDP and tc programs on the path are listed only: a drop there names the programs that could have made it');

  add('kprobes', false, probeProgram(native, 'probe_kprobe'), 'attached to ip_rcv',
    'kprobe fallbacks available', 'no kprobes (CONFIG_KPROBES unset?): tracepkt uses tracepoints only');

  const support = await measureBpfSupport(native);
  add('global functions with pointer arguments', false, support.pointerArgs ? null : 'the verifier refuses them (before 5.12)', 'verified once per program',
    'tracepkt loads its objects built for today\'s kernels', 'tracepkt loads its objects built for older kernels: the same programs, arguments passed through a per-CPU map');
  add('drop reasons', false, support.dropReasons ? null : 'kfree_skb gives none (before 5.17: no enum skb_drop_reason in the kernel\'s BTF)', 'kfree_skb gives enum skb_drop_reason',
    'drops named by reason and place', 'drops named by place only (the kernel function that freed the packet)');

  add('packet bytes past the linear part', false,
    probeProgram(native, 'probe_dynptr', undefined, undefined, 'the verifier refuses bpf_dynptr_from_skb in tp_btf programs (6.10+)'),
    'bpf_dynptr_from_skb in tp_btf programs',
    'large probes, jumbo and GRO frames recognised wherever their marker lies',
    'tracepkt reads such bytes through the direct map where kallsyms names page_offset_base and vmemmap_base (x86-64, CONFIG_KALLSYMS_ALL), else not: then probes larger than ~16 KB may go unseen');

  add('netfilter BPF links', false,
    probeProgram(native, 'probe_netfilter',
      (obj) => obj.setProgramType('probe_netfilter', BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER),
      (obj) => obj.attachNetfilter('probe_netfilter', NFPROTO_IPV4, NF_INET_LOCAL_IN, 0),
      'this kernel has no BPF netfilter programs (6.4+)'),
    'attached at IPv4 LOCAL_IN',
    'per-table verdicts, iptables-legacy included, without kprobes (kernel 6.4+)', 'iptables-legacy tables are not seen; nftables verdicts come from tracing alone');

  return checks;
}

export function renderChecks(checks: readonly Check[]): string[] {
  const width = Math.max(...checks.map((c) => c.feature.length));
  // One line each, for the caller to show: a detail quotes the kernel and other programs.
  const lines = checks.flatMap((c) => [
    `${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'no  '} ${c.feature.padEnd(width)}  ${c.detail}`,
    `     ${''.padEnd(width)}  -> ${c.meaning}`,
  ]);
  const fatal = checks.filter((c) => c.required && !c.ok);
  lines.push('', fatal.length === 0 ? 'tracepkt can trace on this kernel.' : `tracepkt cannot trace here: ${fatal.map((c) => c.feature).join(', ')}.`);
  return lines;
}
