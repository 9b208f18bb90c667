/** `tracepkt doctor`: what this kernel allows, and what it means for tracepkt. */
import { renderChecks, runChecks } from '../doctor';
import type { Output } from './output';

export async function doctorCommand(io: Output): Promise<number> {
  const checks = await runChecks();
  for (const line of renderChecks(checks)) io.out(line);
  return checks.some((c) => c.required && !c.ok) ? 1 : 0;
}
