/**
 * How far a node's clock is from ours. Events carry CLOCK_MONOTONIC times
 * (bpf_ktime_get_ns), which count from each host's boot: two hosts' times
 * say nothing of each other until their offset is known. Estimated as NTP
 * does over one connection: we send our time t0, the node answers with its
 * own time, which it read somewhere between t0 and our receipt t1; assuming
 * the middle, the error is at most half the round trip. Of a few exchanges,
 * the one with the shortest round trip bounds it best.
 */

export interface ClockSample {
  /** Our clock when we asked, and when the answer came (ns). */
  sentNs: number;
  receivedNs: number;
  /** The node's clock in its answer (ns). */
  nodeNs: number;
}

export interface ClockOffset {
  /** The node's clock minus ours (ns): a node time minus this is ours. */
  offsetNs: number;
  /** The offset is right to within this (ns): half the best round trip. */
  uncertaintyNs: number;
}

export function estimateOffset(samples: readonly ClockSample[]): ClockOffset {
  if (samples.length === 0) throw new Error('no clock samples');
  let best = samples[0];
  for (const s of samples) if (s.receivedNs - s.sentNs < best.receivedNs - best.sentNs) best = s;
  const rtt = best.receivedNs - best.sentNs;
  return { offsetNs: best.nodeNs - (best.sentNs + rtt / 2), uncertaintyNs: Math.ceil(rtt / 2) };
}

/**
 * "+1.234 ms ± 0.050 ms", "-86400.000123 s ± 0.050 ms": an offset as people read it (two hosts'
 * monotonic clocks are apart by the difference of their uptimes, often days).
 */
export function describeOffset(o: ClockOffset): string {
  const ms = (ns: number) => `${(ns / 1e6).toFixed(3)} ms`;
  const size = Math.abs(o.offsetNs);
  const magnitude = size >= 1e9 ? `${(size / 1e9).toFixed(6)} s` : ms(size);
  return `${o.offsetNs < 0 ? '-' : '+'}${magnitude} ± ${ms(o.uncertaintyNs)}`;
}

/**
 * How far two clocks may drift apart, at most, as a fraction of the time elapsed: crystal
 * oscillators are specified to ±50 ppm or better, each; NTP-disciplined clocks stay far closer.
 */
export const DRIFT_RATE = 100e-6;

/** The offset's bound at `nowNs`, widened by the drift since it was measured at `measuredAtNs`. */
export function boundAt(o: ClockOffset, measuredAtNs: number, nowNs: number): number {
  return Math.ceil(o.uncertaintyNs + Math.max(0, nowNs - measuredAtNs) * DRIFT_RATE);
}
