#!/usr/bin/env node
import { enableCompileCache } from './cli/compile-cache.js';
import { holdSighup } from './cli/early-sighup.js';
import { debugOutputEnabled, describeError, UserError } from './errors.js';

// Before any command module loads: see compile-cache.ts.
enableCompileCache();

/**
 * Each command is a module under src/cli/ exporting
 *   `summary: string` (one line for the top-level help),
 *   `run(argv: string[]): Promise<number>` (exit code; prints its own --help).
 * Modules are loaded lazily so a command pays only for what it uses.
 */
interface CommandModule {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  serve: () => import('./cli/serve.js'),
  'credential-process': () => import('./cli/credential-process.js'),
  update: () => import('./cli/update.js'),
  check: () => import('./cli/check.js'),
  'sign-string': () => import('./cli/sign-string.js'),
  'read-certificate-data': () => import('./cli/read-certificate-data.js'),
  pki: () => import('./cli/pki.js'),
  emulator: () => import('./cli/emulator.js'),
};

async function topLevelHelp(): Promise<string> {
  const lines = ['Usage: rolesanywhere-credentiald <command> [options]', '', 'Commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    let summary = '';
    try {
      summary = (await load()).summary;
    } catch {
      summary = '(unavailable)';
    }
    lines.push(`  ${name.padEnd(21)} ${summary}`);
  }
  lines.push('', 'Run `rolesanywhere-credentiald <command> --help` for a command\'s options.');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await topLevelHelp()) + '\n');
    return name ? 0 : 1;
  }
  if (name === '--version' || name === 'version') {
    const { VERSION } = await import('./version.js');
    process.stdout.write(VERSION + '\n');
    return 0;
  }
  // Before anything slow (loading the command, its config, its identities): see early-sighup.ts.
  if (name === 'serve') holdSighup();
  const load = COMMANDS[name];
  if (!load) {
    throw new UserError(`unknown command "${name}"; run with --help to list the commands`);
  }
  return (await load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // No stack: errors here are the user's to fix. A UserError's message is
    // printed whole (a config error lists one problem per line after its header).
    const message = err instanceof UserError ? err.message : describeError(err);
    process.stderr.write(`rolesanywhere-credentiald: ${message}\n`);
    if (debugOutputEnabled()) {
      for (let c = err instanceof Error ? err.cause : undefined, n = 0; c !== undefined && n < 10; c = c instanceof Error ? c.cause : undefined, n++) {
        process.stderr.write(`  caused by: ${describeError(c)}\n`);
      }
      if (!(err instanceof UserError) && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
    }
    process.exitCode = err instanceof UserError ? err.exitCode : 1;
  },
);
