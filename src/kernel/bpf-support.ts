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
import { dropReasonsAnswered, kernelDropReasonsAsync } from './btf';

export interface BpfSupport {
  /** Global BPF functions may take pointer arguments. */
  pointerArgs: boolean;
  /** kfree_skb passes enum skb_drop_reason. */
  dropReasons: boolean;
}

/** What a kernel of today takes: the defaults where nothing was measured. */
export const CURRENT_KERNEL: BpfSupport = { pointerArgs: true, dropReasons: true };

/**
 * Loads the probe program: true when it loads, false when the verifier refused
 * it (EINVAL, EACCES): answers for this boot. Any other failure (EPERM under a
 * low locked-memory limit before 5.11, ENOMEM) is no answer: null.
 */
async function pointerArgsAllowed(native: Native): Promise<boolean | null> {
  let obj: BpfObject | undefined;
  try {
    obj = new BpfObject(native, bpfObjectPath('probes'));
    obj.selectPrograms(['probe_pointer_args']);
    await obj.loadAsync();
    return true;
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    return errno === 22 || errno === 13 ? false : null;
  } finally {
    obj?.close();
  }
}

/** What the kernel takes; `answered` when every part is the kernel's answer, worth keeping for the boot. */
export async function measureBpfSupport(native: Native): Promise<BpfSupport & { answered: boolean }> {
  const [pointerArgs, reasons] = await Promise.all([pointerArgsAllowed(native), kernelDropReasonsAsync()]);
  // Without an answer, today's kernel is assumed (the objects that need the most); its load then says what is wrong.
  return { pointerArgs: pointerArgs ?? true, dropReasons: reasons.size > 0, answered: pointerArgs !== null && dropReasonsAnswered() };
}

const SUPPORT_FACT = 'bpf-support';

/** What this boot's kernel was measured to take, if it was (src/kernel/boot-facts.ts); else measured now and kept. */
async function bootSupport(native: Native): Promise<BpfSupport> {
  const known = readBootFact<BpfSupport>(SUPPORT_FACT);
  if (known && typeof known.pointerArgs === 'boolean' && typeof known.dropReasons === 'boolean') return known;
  const { answered, ...support } = await measureBpfSupport(native);
  if (answered) writeBootFact(SUPPORT_FACT, support);
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
