// What a user sees when the config is wrong: every problem, one per line, no
// stack, exit 1 — through the real CLI process.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/pki.js';

t.test('serve with an invalid config lists every problem and exits 1', async (t) => {
  const dir = await tempDir('ra-cfgcli-');
  const file = join(dir, 'config.yaml');
  await writeFile(
    file,
    `listen: ["0.0.0.0:9911"]
profiles:
  app:
    certificate: c.pem
    privateKey: k.pem
    trustAnchorArn: arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/abc
    profileArn: arn:aws:rolesanywhere:us-east-1:123456789012:profile/def
    roleArm: arn:aws:iam::123456789012:role/x
`,
  );
  const res = await runCli(['serve', '--config', file], { cleanEnv: true });
  t.equal(res.code, 1);
  t.match(res.stderr, `invalid configuration (${file}), 3 problems:`);
  t.match(res.stderr, /\n  listen\[0\]: 0\.0\.0\.0:9911 is not a loopback address/);
  t.match(res.stderr, /\n  profiles\.app\.roleArm: unknown key — did you mean roleArn\?/);
  t.match(res.stderr, /\n  profiles\.app\.roleArn: required/);
  t.notMatch(res.stderr, /\bat .*\.js:\d+/, 'no stack trace');
});

t.test('unknown serve flag', async (t) => {
  const res = await runCli(['serve', '--certficate', 'x'], { cleanEnv: true });
  t.equal(res.code, 1);
  t.match(res.stderr, /Unknown option '--certficate'/);
});
