import { loadDaemonConfig, SERVE_USAGE } from '../config/load.js';
import type { DaemonConfig, ProfileConfig } from '../config/types.js';
import { describeError, UserError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { SharedIdentities } from '../runtime/identity-source.js';
import { sessionFetcher } from '../runtime/pipeline.js';
import { NO_VERIFY_SSL_WARNING } from '../runtime/profile.js';
import { Daemon, type DaemonDeps } from '../server/daemon.js';
import { monotonicUsec, systemdNotifier } from '../server/systemd-notify.js';
import { holdSighup, releaseSighup } from './early-sighup.js';
import { argvSecretWarnings } from '../config/command-line.js';

export const summary = 'Run the daemon: keep Roles Anywhere credentials fresh and serve them to AWS SDKs (container endpoint + IMDSv2)';

/** How long SIGTERM/SIGINT waits for in-flight requests before dropping connections. */
const SHUTDOWN_GRACE_MS = 3_000;

/** The daemon's pipeline parts: the shared identity loader and CreateSession call (src/runtime/). */
export function daemonDeps(logger: Logger): DaemonDeps {
  // Profiles on the same certificate and key share one loaded identity (SharedIdentities).
  const identities = new SharedIdentities();
  return {
    logger,
    loadIdentity: (profile: ProfileConfig, files) => identities.load(profile, files),
    fetchFactory: (profile: ProfileConfig) => sessionFetcher(profile, logger),
  };
}

function printUserError(err: UserError): number {
  // The full message: a config error lists one problem per line.
  process.stderr.write(`rolesanywhere-credentiald: ${err.message}\n`);
  return err.exitCode;
}

export async function run(argv: string[]): Promise<number> {
  // Normally held already by the CLI entry point, before this module loaded.
  holdSighup();
  if (argv.includes('--help') || argv.includes('-h')) {
    releaseSighup();
    process.stdout.write(SERVE_USAGE + '\n');
    return 0;
  }
  // Said once, at start: logged, or on stderr when the configuration is refused (no logger yet).
  const argvSecrets = argvSecretWarnings(argv, 'serve');
  let config: DaemonConfig;
  try {
    config = await loadDaemonConfig({ argv, env: process.env });
  } catch (err) {
    releaseSighup();
    for (const w of argvSecrets) process.stderr.write(`warning: ${w}\n`);
    if (err instanceof UserError) return printUserError(err);
    throw err;
  }
  const logger = await createLogger({ level: config.logLevel });
  for (const w of argvSecrets) logger.warn({ event: 'secret_in_argv' }, w);
  for (const p of Object.values(config.profiles)) {
    if (p.noVerifySsl) logger.warn({ profile: p.name }, NO_VERIFY_SSL_WARNING);
  }

  // A SIGHUP that arrives while starting stays held (early-sighup.ts) and is applied once started.
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, daemonDeps(logger));
  } catch (err) {
    releaseSighup();
    if (err instanceof UserError) {
      logger.error({ reason: err.reason, error: err.message }, 'cannot start');
      return printUserError(err);
    }
    throw err;
  }
  process.stderr.write(
    ['Point AWS SDKs and CLIs at this daemon with:', ...daemon.exportLines().map((l) => `  ${l}`), ''].join('\n'),
  );

  // systemd (Type=notify): READY=1 once the readiness rule of /readyz holds (every profile
  // has credentials), RELOADING=1/READY=1 around a reload, STOPPING=1, and the count in STATUS=.
  const systemd = systemdNotifier(process.env, logger);
  let announcedReady = false;
  let lastStatus = '';
  const statusText = () => {
    const r = daemon.readiness();
    return { ok: r.ok, text: `profiles with credentials: ${r.ready} of ${r.total}` };
  };
  const announce = () => {
    if (!systemd.enabled) return;
    const { ok, text } = statusText();
    if (!announcedReady && ok) {
      announcedReady = true;
      lastStatus = text;
      void systemd.send({ READY: '1', STATUS: text });
    } else if (text !== lastStatus) {
      lastStatus = text;
      void systemd.send({ STATUS: text });
    }
  };
  const stopAnnouncing = daemon.onRefresh(announce);
  announce();

  return new Promise<number>((resolve) => {
    let stopping = false;
    let reloading: Promise<void> = Promise.resolve();

    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down: finishing in-flight requests');
      stopAnnouncing();
      const told = systemd.send({ STOPPING: '1', STATUS: 'shutting down' });
      // The SIGHUP listener stays while draining (it ignores signals now): without one, a
      // SIGHUP would kill the process instead of letting it drain and exit 0.
      daemon
        .close(SHUTDOWN_GRACE_MS)
        .catch((err) => logger.error({ error: describeError(err) }, 'error while shutting down'))
        .finally(() => {
          process.removeListener('SIGTERM', stop);
          process.removeListener('SIGINT', stop);
          process.removeListener('SIGHUP', hup);
          return told;
        })
        .finally(() => {
          logger.info('stopped');
          logger.flush?.();
          // Anything left holding the event loop must not keep us alive.
          setTimeout(() => process.exit(0), 2_000).unref();
          resolve(0);
        });
    };

    // Before the first READY=1 a reload only changes what readiness waits for.
    const reload = async () => {
      const wasReady = announcedReady && systemd.enabled;
      if (wasReady) void systemd.send({ RELOADING: '1', MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading the configuration' });
      try {
        await reloadConfig();
      } finally {
        if (wasReady && !stopping) {
          lastStatus = statusText().text;
          void systemd.send({ READY: '1', STATUS: lastStatus });
        } else if (!stopping) announce();
      }
    };

    const reloadConfig = async () => {
      logger.info('SIGHUP: reloading the configuration and certificates');
      let next: DaemonConfig;
      try {
        next = await loadDaemonConfig({ argv, env: process.env });
      } catch (err) {
        const problems = (err as { problems?: Array<{ path: string; message: string }> }).problems;
        logger.error(
          { reason: err instanceof UserError ? err.reason : 'error', error: describeError(err), problems },
          'new configuration refused; still running with the previous one',
        );
        return;
      }
      try {
        await daemon.reload(next);
        if (next.logLevel !== logger.level) logger.level = next.logLevel;
        for (const p of Object.values(next.profiles)) if (p.noVerifySsl) logger.warn({ profile: p.name }, NO_VERIFY_SSL_WARNING);
      } catch (err) {
        logger.error(
          { reason: err instanceof UserError ? err.reason : 'error', error: describeError(err) },
          'new configuration refused; still running with the previous one',
        );
      }
    };

    const hup = () => {
      if (stopping) return;
      reloading = reloading.then(reload, reload);
    };

    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', hup);
    if (releaseSighup()) hup();
  });
}
