// Who is calling? For a connection made to a loopback address, the kernel
// knows the local user that owns the client's socket: /proc/net/tcp and
// /proc/net/tcp6 list every TCP socket of this network namespace with its
// owner uid. The client's socket is the one whose local end is the
// connection's remote end and whose remote end is our listening address.
//
// Callers are then authorized by a policy built from `callers: { users,
// groups }` (names or numeric ids, resolved against /etc/passwd and
// /etc/group). The default policy allows only the daemon's own user.
import { readFile } from 'node:fs/promises';
import { isIP, type Socket } from 'node:net';
import { endianness } from 'node:os';
import { isLoopbackHostname } from '../net/loopback.js';
import { describeUid, type Accounts, type CallerPolicy } from './caller-policy.js';
import { isThenable, perConnection, type Check, type CheckContext, type Refusal } from './checks.js';

/** The two ends of an accepted connection, as the server sees them. */
export interface ConnectionEnds {
  /** Our end: the address the client connected to. */
  localAddress: string;
  localPort: number;
  /** The client's end. */
  remoteAddress: string;
  remotePort: number;
}

/** One row of /proc/net/tcp{,6}. */
export interface ProcSocket {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Kernel TCP state (1 = ESTABLISHED, 6 = TIME_WAIT, 10 = LISTEN). */
  state: number;
  uid: number;
}

const TCP_TIME_WAIT = 6;
const TCP_LISTEN = 10;

/** A comparable key for an IP address: IPv4 and v4-mapped IPv6 as `4:a.b.c.d`, other IPv6 as 8 expanded groups. */
export function addressKey(address: string): string | undefined {
  let a = address.toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const kind = isIP(a);
  if (kind === 4) return `4:${a}`;
  if (kind !== 6) return undefined;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number);
    a = a.slice(0, -dotted[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, rest] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':').filter((g) => g !== '') : [];
  const r = rest === undefined ? [] : rest.split(':').filter((g) => g !== '');
  const explicit = h.length + r.length;
  const zeros = rest === undefined ? [] : new Array<string>(8 - explicit).fill('0');
  const groups = [...h, ...zeros, ...r].map((g) => parseInt(g, 16));
  if (groups.length !== 8) return undefined;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `4:${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return `6:${groups.map((g) => g.toString(16).padStart(4, '0')).join(':')}`;
}

/**
 * Decodes a /proc/net/tcp address: 8 (IPv4) or 32 (IPv6) hex digits, each
 * 32-bit word printed as a host-order integer, into an `addressKey`.
 */
export function decodeProcAddress(hex: string, littleEndian = endianness() === 'LE'): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return undefined;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    if (littleEndian) bytes.writeUInt32LE(word, w * 4);
    else bytes.writeUInt32BE(word, w * 4);
  }
  if (bytes.length === 4) return `4:${[...bytes].join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return addressKey(groups.join(':'));
}

/** One row of /proc/net/tcp{,6} (`   1: 0100007F:C350 0100007F:1F90 01 … uid …`), or undefined for the header and malformed rows. */
function parseProcNetRow(line: string, littleEndian: boolean): ProcSocket | undefined {
  // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
  const f = line.trim().split(/\s+/);
  if (f.length < 8 || !/^\d+:$/.test(f[0]!)) return undefined;
  const [lAddr, lPort] = f[1]!.split(':');
  const [rAddr, rPort] = f[2]!.split(':');
  const local = decodeProcAddress(lAddr ?? '', littleEndian);
  const remote = decodeProcAddress(rAddr ?? '', littleEndian);
  const uid = Number(f[7]);
  if (!local || !remote || !Number.isInteger(uid)) return undefined;
  return { local, localPort: parseInt(lPort ?? '', 16), remote, remotePort: parseInt(rPort ?? '', 16), state: parseInt(f[3]!, 16), uid };
}

/** Parses the text of /proc/net/tcp or /proc/net/tcp6 (the header line and malformed rows are skipped). */
export function parseProcNetTcp(text: string, littleEndian = endianness() === 'LE'): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const line of text.split('\n')) {
    const row = parseProcNetRow(line, littleEndian);
    if (row) out.push(row);
  }
  return out;
}

/**
 * The uid owning the client's socket of `conn` in the text of /proc/net/tcp or
 * /proc/net/tcp6, if listed. Parses only the rows whose text holds the client's
 * port as the kernel prints it (`:C350 `, %04X): on a host with 100,000 sockets a
 * lookup is one scan of the text on the event loop, not 100,000 parsed rows.
 */
export function clientUidIn(text: string, conn: ConnectionEnds, littleEndian = endianness() === 'LE'): number | undefined {
  const needle = `:${conn.remotePort.toString(16).toUpperCase().padStart(4, '0')} `;
  const rows: ProcSocket[] = [];
  for (let i = text.indexOf(needle); i !== -1; ) {
    let end = text.indexOf('\n', i);
    if (end === -1) end = text.length;
    const row = parseProcNetRow(text.slice(text.lastIndexOf('\n', i) + 1, end), littleEndian);
    if (row) rows.push(row);
    i = text.indexOf(needle, end);
  }
  return findClientUid(rows, conn);
}

/** The uid owning the client's socket of `conn` among `sockets`, if listed. */
export function findClientUid(sockets: ProcSocket[], conn: ConnectionEnds): number | undefined {
  const client = addressKey(conn.remoteAddress);
  const server = addressKey(conn.localAddress);
  if (!client || !server) return undefined;
  for (const s of sockets) {
    if (s.state === TCP_TIME_WAIT || s.state === TCP_LISTEN) continue;
    if (s.localPort === conn.remotePort && s.remotePort === conn.localPort && s.local === client && s.remote === server) return s.uid;
  }
  return undefined;
}

/** What is known about the caller of a connection. */
export type Caller =
  /** The connection is not made to a loopback address: the check does not apply. */
  | { kind: 'remote' }
  /** The caller's socket belongs to this uid. */
  | { kind: 'local'; uid: number }
  /** A loopback connection whose socket is not listed (it closed already, or another network namespace). */
  | { kind: 'unknown' };

/**
 * Finds the uid behind loopback connections, once per connection (the
 * answer is kept with the socket). `available()` tells whether /proc is
 * there at all (another OS, or /proc not mounted).
 */
export class CallerLookup {
  /**
   * Reads of each table not yet started: every lookup made before a read starts
   * shares it, and the next read starts only when the one in flight has finished.
   * A burst of new connections (a client opening its pool, a node's pods starting)
   * costs a read per read-time, not one per connection. A read never serves a
   * lookup made after it started (that connection might not be listed yet).
   */
  private readonly nextRead = new Map<string, Promise<string | undefined>>();
  /** The read of each table in flight. */
  private readonly lastRead = new Map<string, Promise<unknown>>();

  // /proc/self/net, not /proc/net: the latter is hidden by systemd's ProcSubset=pid.
  constructor(
    private readonly procNet = '/proc/self/net',
    private readonly read: (path: string) => Promise<string> = (path) => readFile(path, 'latin1'),
  ) {}

  /** Whether /proc/net/tcp can be read here. */
  async available(): Promise<boolean> {
    try {
      await this.read(`${this.procNet}/tcp`);
      return true;
    } catch {
      return false;
    }
  }

  /** The caller of the connection `socket`: looked up once per connection, then answered synchronously. */
  readonly callerOf: (socket: Socket) => Caller | Promise<Caller> = perConnection((socket) =>
    this.lookup({
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
    }),
  );

  /** The caller of `socket` if already looked up, else undefined. */
  known(socket: Socket): Caller | undefined {
    const c = this.callerOf(socket);
    return isThenable(c) ? undefined : c;
  }

  async lookup(conn: ConnectionEnds): Promise<Caller> {
    if (!isLoopbackHostname(conn.localAddress)) return { kind: 'remote' };
    // The client's socket is IPv4 (tcp) or IPv6 (tcp6, also when it speaks v4-mapped): look in both.
    for (const file of ['tcp', 'tcp6']) {
      const text = await this.table(file);
      const uid = text === undefined ? undefined : clientUidIn(text, conn);
      if (uid !== undefined) return { kind: 'local', uid };
    }
    return { kind: 'unknown' };
  }

  /**
   * The text of /proc/net/`file` (undefined when unreadable) from the next read: it
   * starts once the read in flight (if any) has finished and the event loop has
   * turned, and every lookup asking until then shares it.
   */
  private table(file: string): Promise<string | undefined> {
    let next = this.nextRead.get(file);
    if (next === undefined) {
      const previous = this.lastRead.get(file);
      next = (previous ?? Promise.resolve())
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(() => {
          this.nextRead.delete(file);
          const reading = this.read(`${this.procNet}/${file}`).catch(() => undefined);
          this.lastRead.set(file, reading);
          // Forget it once read (a busy node's table is megabytes): the lookups that share it hold the text while they need it.
          void reading.then(() => {
            if (this.lastRead.get(file) === reading) this.lastRead.delete(file);
          });
          return reading;
        });
      this.nextRead.set(file, next);
    }
    return next;
  }
}

/** The refusal text for a caller: names the uid and the setting that would let it in. */
export function refusalMessage(caller: Caller, policy: CallerPolicy, accounts: Accounts | undefined): string {
  if (caller.kind === 'unknown') {
    return `cannot tell which local user is calling (its socket is not in /proc/net/tcp); credentials are served only to callers allowed by ${policy.setting}`;
  }
  const who = caller.kind === 'local' ? describeUid(caller.uid, accounts) : 'this caller';
  return `the calling process runs as ${who}, which is not allowed to get these credentials; add it to ${policy.setting}.users (or one of its groups to ${policy.setting}.groups) in the daemon's configuration`;
}


/**
 * The credential routes' caller authorization (an `authorize` check): a loopback
 * caller gets the profile's credentials only when its uid is allowed by the
 * profile's policy. Answers from the per-socket cache when it can (no promise).
 */
export function callerCheck(lookup: CallerLookup, onRefused: (caller: Caller) => void): Check {
  const decide = (caller: Caller, ctx: CheckContext): Refusal | undefined => {
    if (caller.kind === 'remote') return undefined;
    const callers = ctx.state.callers;
    const policy = ctx.profile === undefined ? undefined : callers?.policies.get(ctx.profile);
    if (callers === undefined || policy === undefined) return undefined;
    if (caller.kind === 'local' && policy.allows(caller.uid)) return undefined;
    onRefused(caller);
    return { status: 403, code: 'AccessDenied', message: refusalMessage(caller, policy, callers.accounts) };
  };
  return (req, ctx) => {
    if (ctx.state.callers === undefined) return undefined;
    const caller = lookup.callerOf(req.socket);
    return isThenable<Caller>(caller) ? caller.then((c) => decide(c, ctx)) : decide(caller, ctx);
  };
}
