// Loopback classification shared by the endpoint check (plain http only to
// loopback), the listen-address check, the proxy bypass and the server's
// Host-header check against DNS rebinding.
import { isIP } from 'node:net';

/**
 * True for hosts only this machine can reach: 127.0.0.0/8, ::1 (and
 * v4-mapped 127.x), localhost and *.localhost. Takes a host name or address
 * as URL#hostname or a listen address gives it; IPv6 brackets are optional.
 */
export function isLoopbackHostname(name: string): boolean {
  let h = name.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

/**
 * Whether an HTTP Host header names a loopback host, with or without a port:
 * `localhost`, `127.0.0.1:9911`, `[::1]:9911`, `localhost.` (a trailing dot
 * is allowed). IPv6 addresses must be in brackets.
 */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  const value = host.trim();
  let name: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0) return false;
    const rest = value.slice(end + 1);
    if (rest && !/^:\d{1,5}$/.test(rest)) return false;
    name = value.slice(0, end + 1);
    if (isIP(name.slice(1, -1)) !== 6) return false;
  } else {
    const m = /^([^:]+)(?::\d{1,5})?$/.exec(value);
    if (!m) return false;
    name = m[1]!.replace(/\.$/, '');
  }
  return isLoopbackHostname(name);
}
