import { isIP } from 'node:net';
import { show } from '../problems.js';

/** Parses `host:port` / `[v6]:port`; host is returned without brackets. */
export interface ListenAddress {
  /** IPv4 address, host name, or IPv6 address WITHOUT brackets (`::1`), as net.Server#listen wants it. */
  host: string;
  /** 0..65535; 0 = the OS picks a free port (tests). */
  port: number;
}

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
    if (isIP(host) !== 4 && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
      return { error: `${show(text)}: ${show(host)} is not an IP address or host name` };
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
