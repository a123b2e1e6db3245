/**
 * An error caused by the user's input (a file, a flag, a config field, the
 * service's answer to our request). Its message is one line, names the
 * problem and, where we know it, the fix. CLI commands print only the message
 * (no stack) and exit with `exitCode`.
 *
 * Never put secret material (keys, passwords, tokens) into a message.
 */
export class UserError extends Error {
  readonly exitCode: number;
  /** A short machine-readable reason, used for metrics labels and tests. */
  readonly reason: string;

  constructor(message: string, options: { reason?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserError';
    this.exitCode = options.exitCode ?? 1;
    this.reason = options.reason ?? 'invalid_input';
  }
}

/** One-line message of any thrown value, safe to show a user. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err);
  return String(err);
}

let debugOutput = false;
/** aws_signing_helper's `--debug` on a one-shot command: the CLI prints an error's causes too. */
export function enableDebugOutput(): void {
  debugOutput = true;
}
/** `--debug` was given, or ROLESANYWHERE_DEBUG is set. */
export function debugOutputEnabled(): boolean {
  return debugOutput || !!process.env.ROLESANYWHERE_DEBUG;
}

/** What an aborted operation rejects with: the signal's reason, else an AbortError. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error('the operation was aborted'), { name: 'AbortError' });
}
