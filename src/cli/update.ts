// `update`: keeps a profile of the AWS shared credentials file filled with
// fresh Roles Anywhere credentials (like `aws_signing_helper update`).
import { defaultOf } from '../config/settings.js';
import { usageFor } from '../config/command-line.js';
import { writeCredentialsProfile, credentialsFilePath } from '../credentials-file/write.js';
import { validateProfileName } from '../credentials-file/ini.js';
import { describeError, UserError } from '../errors.js';
import { RolesAnywhereError } from '../rolesanywhere/errors.js';
import type { AwsCredentials } from '../rolesanywhere/types.js';
import { parseProfileArgs } from './profile-args.js';
import { obtainCredentials, openPipeline, type PipelineTiming } from '../runtime/pipeline.js';
import { NO_VERIFY_SSL_WARNING } from '../runtime/profile.js';
import { isoSeconds, MAX_TIMER_DELAY_MS } from '../timers.js';

export const summary = 'write temporary credentials into ~/.aws/credentials and keep them fresh';

const USAGE = `Usage: rolesanywhere-credentiald update [options]

Writes aws_access_key_id, aws_secret_access_key and aws_session_token into a
profile of the AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
~/.aws/credentials), leaving every other line of the file untouched. Without
--once it keeps running and refreshes them like serve does (at half their
lifetime, ± 10%; retries with backoff; a rotated certificate is picked up)
until SIGINT/SIGTERM (exit 0).

${usageFor('update')}
`;

function log(line: string): void {
  process.stderr.write(`${isoSeconds(new Date())} update: ${line}\n`);
}

function humanDelay(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The same refresh policy as `serve` with its default settings (the settings table's refresh.* and watch.* defaults). */
export const UPDATE_TIMING: PipelineTiming = {
  refresh: { backoffInitialMs: defaultOf('refresh.backoffInitialMs'), backoffMaxMs: defaultOf('refresh.backoffMaxMs') },
  watch: { debounceMs: defaultOf('watch.debounceMs'), recheckIntervalMs: defaultOf('watch.recheckIntervalMs') },
};

/** A failure worth retrying (the service or network), as opposed to one a person must fix. */
function retryable(err: unknown): boolean {
  return err instanceof RolesAnywhereError ? err.retryable : !(err instanceof UserError);
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

  const write = async (creds: AwsCredentials): Promise<void> => {
    const res = await writeCredentialsProfile(path, target, creds);
    log(`wrote profile [${target}] to ${res.path}${res.created ? ' (created)' : ''}; credentials expire at ${isoSeconds(creds.expiration)}`);
  };

  if (once) {
    await write(await obtainCredentials(profile, { warn: (l) => log(l) }));
    return 0;
  }

  // One pipeline, refreshed on serve's schedule; this subscriber writes the file on every refresh.
  const pipeline = await openPipeline(profile, {
    ...UPDATE_TIMING,
    onIdentity: (id) => {
      for (const w of id.warnings) log(`warning: ${w}`);
    },
    onIdentityError: (err) => log(`new certificate or key refused (${describeError(err)}); keeping the current one`),
  });
  return new Promise<number>((resolve, reject) => {
    let everSucceeded = false;
    let done = false;
    // The session's timers do not hold the process; this does, until a signal or a fatal error.
    const keepAlive = setInterval(() => undefined, MAX_TIMER_DELAY_MS);
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      unsubscribe();
      void pipeline.stop().then(() => (err === undefined ? resolve(0) : reject(err)));
    };
    const onSignal = (sig: NodeJS.Signals) => {
      if (!done) log(`${sig} received, exiting`);
      finish();
    };
    let writing = Promise.resolve();
    const unsubscribe = pipeline.session.subscribe((outcome) => {
      if (outcome.ok) {
        writing = writing.then(async () => {
          try {
            await write(outcome.credentials);
            everSucceeded = true;
            log(`next refresh in ${humanDelay(outcome.nextRefreshInMs)}`);
          } catch (err) {
            // A file that cannot be written is for a person to fix: fatal at first, logged later.
            if (!everSucceeded) finish(err);
            else log(`could not write the credentials file (${describeError(err)}); trying again at the next refresh`);
          }
        });
        return;
      }
      // A first failure a person must fix (bad certificate, access denied, bad file) ends the command.
      if (!everSucceeded && !retryable(outcome.error)) return finish(outcome.error);
      log(`refresh failed (${describeError(outcome.error)}); retrying in ${humanDelay(outcome.retryInMs)}`);
    });
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    pipeline.start();
  });
}
