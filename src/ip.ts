/** IP protocols as the events carry them (IANA numbers), and what is asked of them everywhere. */

/** ICMP (1) or ICMPv6 (58): echoes carry an identifier and a sequence, errors quote a packet. */
export const isIcmp = (proto: number): boolean => proto === 1 || proto === 58;

/** TCP (6) or UDP (17): the protocols with ports. */
export const hasPorts = (proto: number): boolean => proto === 6 || proto === 17;
