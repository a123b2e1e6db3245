// `update`: keeps a profile of the AWS shared credentials file filled with
// fresh Roles Anywhere credentials (like `aws_signing_helper update`).
import { setTimeout as sleep } from 'node:timers/promises';
import { usageFor } from '../config/settings.js';
import { writeCredentialsProfile, credentialsFilePath } from '../credentials-file/write.js';
import { validateProfileName } from '../credentials-file/ini.js';
import { describeError, UserError } from '../errors.js';
import { formatExpiration, obtainCredentials, parseProfileArgs } from '../rolesanywhere/command.js';
import { RolesAnywhereError } from '../rolesanywhere/errors.js';
import { NO_VERIFY_SSL_WARNING } from '../rolesanywhere/profile.js';
import { clampDelay } from '../timers.js';

export const summary = 'write temporary credentials into ~/.aws/credentials and keep them fresh';

const USAGE = `Usage: rolesanywhere-credentiald update [options]

Writes aws_access_key_id, aws_secret_access_key and aws_session_token into a
profile of the AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
~/.aws/credentials), leaving every other line of the file untouched. Without
--once it keeps running and refreshes them at about half their lifetime until
SIGINT/SIGTERM (exit 0).

${usageFor('update')}
`;

const BACKOFF_INITIAL_MS = 1000;
const BACKOFF_MAX_MS = 60_000;
const MIN_REFRESH_DELAY_MS = 1000;

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')} update: ${line}\n`);
}

function humanDelay(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** When to refresh credentials that expire at `expiration`: at 40–50% of the remaining lifetime. */
export function refreshDelayMs(expiration: Date, now = Date.now(), random = Math.random): number {
  const remaining = expiration.getTime() - now;
  return Math.max(MIN_REFRESH_DELAY_MS, Math.floor(remaining * (0.5 - 0.1 * random())));
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseProfileArgs(argv, 'update');
  if (parsed.help || !parsed.profile) {
    process.stdout.write(USAGE);
    return 0;
  }
  const profile = parsed.profile;
  const target = typeof parsed.values.profile === 'string' ? parsed.values.profile : 'default';
  validateProfileName(target);
  const once = parsed.values.once === true;
  const path = credentialsFilePath();
  if (profile.noVerifySsl) process.stderr.write(`${NO_VERIFY_SSL_WARNING}\n`);

  const refreshOnce = async (signal?: AbortSignal): Promise<Date> => {
    const creds = await obtainCredentials(profile, { signal, warn: (l) => log(l) });
    if (signal?.aborted) throw signal.reason;
    const res = await writeCredentialsProfile(path, target, creds);
    log(`wrote profile [${target}] to ${res.path}${res.created ? ' (created)' : ''}; credentials expire at ${formatExpiration(creds.expiration)}`);
    return creds.expiration;
  };

  if (once) {
    await refreshOnce();
    return 0;
  }

  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (!controller.signal.aborted) log(`${sig} received, exiting`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const { signal } = controller;
  try {
    let failures = 0;
    let everSucceeded = false;
    while (!signal.aborted) {
      let delay: number;
      try {
        const expiration = await refreshOnce(signal);
        everSucceeded = true;
        failures = 0;
        delay = refreshDelayMs(expiration);
        log(`next refresh in ${humanDelay(delay)}`);
      } catch (err) {
        if (signal.aborted) break;
        const retryable = err instanceof RolesAnywhereError ? err.retryable : !(err instanceof UserError);
        // A first failure a person must fix (bad certificate, access denied, bad file) ends the command.
        if (!everSucceeded && !retryable) throw err;
        failures++;
        const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** (failures - 1));
        delay = Math.max(200, Math.floor(cap * (0.5 + 0.5 * Math.random())));
        log(`refresh failed (${describeError(err)}); retrying in ${humanDelay(delay)}`);
      }
      try {
        await sleep(clampDelay(delay), undefined, { signal });
      } catch {
        break;
      }
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
