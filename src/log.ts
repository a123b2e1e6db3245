import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * Field paths redacted as a safety net. Secrets must never be put into log
 * objects in the first place; this only limits the damage of a mistake.
 */
export const REDACT_PATHS = [
  'secretAccessKey',
  'SecretAccessKey',
  'sessionToken',
  'SessionToken',
  'Token',
  'token',
  'password',
  'keyPassword',
  'tpmKeyPassword',
  'pkcs11Pin',
  'pin',
  'privateKey',
  'authorization',
  'Authorization',
  '*.secretAccessKey',
  '*.SecretAccessKey',
  '*.sessionToken',
  '*.SessionToken',
  '*.Token',
  '*.token',
  '*.password',
  '*.keyPassword',
  '*.tpmKeyPassword',
  '*.pkcs11Pin',
  '*.pin',
  '*.privateKey',
  '*.authorization',
  '*.Authorization',
  'req.headers.authorization',
  'req.headers["x-aws-ec2-metadata-token"]',
  'headers.authorization',
  'headers["x-aws-ec2-metadata-token"]',
];

export interface LoggerSetup {
  level?: LogLevel;
  /** Human-readable output (pino-pretty). Default: when stdout is a TTY. */
  pretty?: boolean;
  /** Write here instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
}

/**
 * The daemon's logger: JSON lines (pretty on a TTY), secret-looking fields redacted.
 * Pretty output is formatted in this thread (pino-pretty as a stream, not a worker
 * transport): a worker loads its module from disk, which a single-file executable
 * does not have; pino-pretty itself is loaded only when used.
 */
export async function createLogger(setup: LoggerSetup = {}): Promise<Logger> {
  const options: LoggerOptions = {
    level: setup.level ?? 'info',
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = setup.pretty ?? (setup.destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    const { default: prettyStream } = await import('pino-pretty');
    return pino(
      options,
      prettyStream({
        colorize: setup.destination === undefined,
        translateTime: 'SYS:standard',
        ignore: 'pid,hostname',
        sync: true,
        destination: setup.destination ?? 1,
      }),
    );
  }
  if (setup.destination) return pino(options, setup.destination as pino.DestinationStream);
  return pino(options, pino.destination({ fd: 1, sync: true }));
}

/** A logger that discards everything (unit tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
