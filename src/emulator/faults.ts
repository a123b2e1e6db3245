// Fault injection for the emulator: an ordered list of rules consulted on
// every call. `delay` rules add latency and let the call continue; the first
// other rule that fires decides the answer. A rule with `times` fires that
// many times and is then removed; without `times` it stays until cleared.
// `probability` (0..1) makes a rule fire at random (chaos testing).

export type FaultOperation = 'CreateSession' | 'GetCallerIdentity' | 'AssumeRole' | 'any';

interface FaultCommon {
  /** Fire this many times, then disappear. Default: until cleared. */
  times?: number;
  /** Chance that the rule fires on a matching call, 0..1. Default 1. */
  probability?: number;
  /** Which calls it applies to. Default 'CreateSession'. */
  operation?: FaultOperation;
}

export type FaultRule = FaultCommon &
  (
    | { kind: 'status'; status: number; errorType?: string; message?: string }
    | { kind: 'delay'; ms: number }
    /** Destroy the socket without answering. */
    | { kind: 'drop' }
    /** 201 with a non-JSON or truncated body. */
    | { kind: 'malformed'; body?: string }
    /** 201 with `credentialSet: []`. */
    | { kind: 'empty-set' }
    /** Accept the call but issue credentials whose `expiration` is this many seconds from now (may be ≤ 0: already expired). */
    | { kind: 'expiration'; seconds: number }
  );

export type FaultKind = FaultRule['kind'];

/** What the faults decided for one call. */
export interface FaultDecision {
  delayMs: number;
  /** The terminal rule that fired, if any. */
  rule?: FaultRule;
}

const KINDS = new Set<FaultKind>(['status', 'delay', 'drop', 'malformed', 'empty-set', 'expiration']);
const OPERATIONS = new Set<FaultOperation>(['CreateSession', 'GetCallerIdentity', 'AssumeRole', 'any']);

/** Validates rules from an untrusted source (HTTP control API); throws Error with a clear message. */
export function parseFaultRules(input: unknown): FaultRule[] {
  const list = Array.isArray(input) ? input : input && typeof input === 'object' && Array.isArray((input as { faults?: unknown }).faults) ? (input as { faults: unknown[] }).faults : [input];
  return list.map((raw, i) => {
    if (!raw || typeof raw !== 'object') throw new Error(`fault ${i + 1}: expected an object like {"kind":"status","status":503}`);
    const r = raw as Record<string, unknown>;
    if (!KINDS.has(r.kind as FaultKind)) throw new Error(`fault ${i + 1}: kind must be one of ${[...KINDS].join(', ')}`);
    if (r.times !== undefined && (!Number.isInteger(r.times) || (r.times as number) < 1)) throw new Error(`fault ${i + 1}: times must be a positive integer`);
    if (r.probability !== undefined && (typeof r.probability !== 'number' || r.probability < 0 || r.probability > 1)) {
      throw new Error(`fault ${i + 1}: probability must be a number between 0 and 1`);
    }
    if (r.operation !== undefined && !OPERATIONS.has(r.operation as FaultOperation)) throw new Error(`fault ${i + 1}: operation must be one of ${[...OPERATIONS].join(', ')}`);
    if (r.kind === 'status' && (!Number.isInteger(r.status) || (r.status as number) < 400 || (r.status as number) > 599)) {
      throw new Error(`fault ${i + 1}: status must be an HTTP error status 400..599`);
    }
    if (r.kind === 'delay' && (typeof r.ms !== 'number' || r.ms < 0 || r.ms > 600_000)) throw new Error(`fault ${i + 1}: ms must be 0..600000`);
    if (r.kind === 'expiration' && typeof r.seconds !== 'number') throw new Error(`fault ${i + 1}: seconds must be a number`);
    return { ...r } as unknown as FaultRule;
  });
}

export class FaultSet {
  private rules: FaultRule[] = [];
  /** How many times each kind fired. */
  readonly fired: Record<string, number> = {};

  set(rules: FaultRule[]): void {
    this.rules = rules.map((r) => ({ ...r }));
  }

  add(rules: FaultRule[]): void {
    this.rules.push(...rules.map((r) => ({ ...r })));
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Consults (and consumes) the rules for one call. */
  decide(operation: Exclude<FaultOperation, 'any'>, random: () => number = Math.random): FaultDecision {
    const decision: FaultDecision = { delayMs: 0 };
    for (const rule of [...this.rules]) {
      const op = rule.operation ?? 'CreateSession';
      if (op !== 'any' && op !== operation) continue;
      if (rule.probability !== undefined && random() >= rule.probability) continue;
      this.consume(rule);
      this.fired[rule.kind] = (this.fired[rule.kind] ?? 0) + 1;
      if (rule.kind === 'delay') {
        decision.delayMs += rule.ms;
        continue;
      }
      decision.rule = rule;
      break;
    }
    return decision;
  }

  private consume(rule: FaultRule): void {
    if (rule.times === undefined) return;
    rule.times -= 1;
    if (rule.times <= 0) this.rules = this.rules.filter((r) => r !== rule);
  }
}
