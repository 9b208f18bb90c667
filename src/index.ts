/** The library: tracepkt's CLI is a thin layer over these. */
export { createTracer, Tracer, type TracerOptions } from './tracer';
export { runProbe, type ProbeOptions, type ProbeResult } from './probe/run';
export { resolveTarget, type Target } from './probe/target';
export { summarize, type JourneySummary, type PathStep } from './journey';
export { NetnsResolver } from './names/netns';
export { runChecks, type Check } from './doctor';
export { TracepktError, BpfError } from './errors';
export type { TraceEvent, HopEvent, Direction } from './events';
