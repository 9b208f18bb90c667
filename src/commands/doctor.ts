/** `tracepkt doctor`: what this kernel allows, and what it means for tracepkt. */
import { shown } from '../render/shown';
import { renderChecks, runChecks } from '../doctor';
import type { Output } from './output';

export async function doctorCommand(io: Output): Promise<number> {
  const checks = await runChecks();
  // Details quote the kernel and other programs (errors, versions): shown, never obeyed.
  for (const line of renderChecks(checks)) io.out(shown(line));
  return checks.some((c) => c.required && !c.ok) ? 1 : 0;
}
