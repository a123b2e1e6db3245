import { isIP } from 'node:net';
import { show } from '../problems.js';

/** Parses `host:port` / `[v6]:port`; host is returned without brackets. */
export interface ListenAddress {
  /** IPv4 address or IPv6 address WITHOUT brackets (`::1`), as net.Server#listen wants it. Never a host name. */
  host: string;
  /** 0..65535; 0 = the OS picks a free port (tests). */
  port: number;
}

/** Parses a listen address: an IP literal and a port (host names are refused: the loopback check is of the address bound). */
export function parseListenAddress(text: string): { address?: ListenAddress; error?: string } {
  const s = text.trim();
  const example = 'expected "host:port", e.g. 127.0.0.1:9911 or [::1]:9911';
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const plain = /^([^:[\]\s]+):(\d+)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) return { error: `${show(text)}: ${host} is not an IPv6 address` };
  } else if (plain) {
    host = plain[1]!;
    portText = plain[2]!;
    // Only IP literals: what a name resolves to can change (a private /etc/hosts can make
    // `app.localhost` 0.0.0.0), and the loopback check must be of the address bound.
    if (isIP(host) !== 4) {
      return { error: `${show(text)}: ${show(host)} is not an IP address; give an IP address (127.0.0.1:PORT, [::1]:PORT), not a host name` };
    }
  } else if ((s.match(/:/g) ?? []).length > 1 && !s.startsWith('[')) {
    return { error: `${show(text)}: put IPv6 addresses in brackets, e.g. [::1]:9911` };
  } else {
    return { error: `${example}, got ${show(text)}` };
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port > 65535) return { error: `${show(text)}: port must be 1..65535 (0 picks a free port)` };
  return { address: { host, port } };
}
