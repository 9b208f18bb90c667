/**
 * What this kernel's BPF takes of tracepkt's programs, measured once per
 * process, never guessed from a version number: whether global functions may
 * take pointers (5.12+; else the objects built for older kernels, where they
 * take numbers: bpf/subprog.h), and whether kfree_skb gives a drop reason
 * (5.17+, when the kernel's BTF has enum skb_drop_reason; else the program
 * that reads only the place).
 */
import { BpfObject } from '../bpf/object';
import { bpfObjectPath, type Native } from '../native';
import { readBootFact, writeBootFact } from './boot-facts';
import { kernelDropReasonsAsync } from './btf';

export interface BpfSupport {
  /** Global BPF functions may take pointer arguments. */
  pointerArgs: boolean;
  /** kfree_skb passes enum skb_drop_reason. */
  dropReasons: boolean;
}

/** What a kernel of today takes: the defaults where nothing was measured. */
export const CURRENT_KERNEL: BpfSupport = { pointerArgs: true, dropReasons: true };

/** Loads the probe program: false only when the kernel refused it (EINVAL, EACCES), an answer for this boot. */
async function pointerArgsAllowed(native: Native): Promise<boolean> {
  let obj: BpfObject | undefined;
  try {
    obj = new BpfObject(native, bpfObjectPath('probes'));
    obj.selectPrograms(['probe_pointer_args']);
    await obj.loadAsync();
    return true;
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    return !(errno === 22 || errno === 13);
  } finally {
    obj?.close();
  }
}

export async function measureBpfSupport(native: Native): Promise<BpfSupport> {
  const [pointerArgs, reasons] = await Promise.all([pointerArgsAllowed(native), kernelDropReasonsAsync()]);
  return { pointerArgs, dropReasons: reasons.size > 0 };
}

const SUPPORT_FACT = 'bpf-support';

/** What this boot's kernel was measured to take, if it was (src/kernel/boot-facts.ts); else measured now and kept. */
async function bootSupport(native: Native): Promise<BpfSupport> {
  const known = readBootFact<BpfSupport>(SUPPORT_FACT);
  if (known && typeof known.pointerArgs === 'boolean' && typeof known.dropReasons === 'boolean') return known;
  const support = await measureBpfSupport(native);
  writeBootFact(SUPPORT_FACT, support);
  return support;
}

let measured: Promise<BpfSupport> | undefined;

/** What the kernel takes, measured once per boot. */
export function bpfSupportOnce(native: Native): Promise<BpfSupport> {
  measured ??= bootSupport(native);
  return measured;
}

/** The file of object `name` built for this kernel: name.bpf.o, or name.compat.bpf.o where global functions take no pointers. */
export function objectFor(name: string, support: BpfSupport): string {
  return bpfObjectPath(support.pointerArgs ? name : `${name}.compat`);
}
