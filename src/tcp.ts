/** TCP flags in tcpdump's letters: S, F, R, P, . (ACK), U; e.g. "S." for SYN-ACK. */
export function tcpFlags(bits: number): string {
  return TCP_FLAG_NAMES[bits & 0x3f];
}

const TCP_FLAG_NAMES = Array.from({ length: 64 }, (_, bits) =>
  ([[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, '.'], [0x20, 'U']] as const)
    .filter(([bit]) => bits & bit)
    .map(([, letter]) => letter)
    .join(''),
);
