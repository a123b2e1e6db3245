// The logger's safety net: secret-looking fields are redacted even when a
// mistake puts them into a log object (the code must not do so in the first place).
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger, REDACT_PATHS } from '../src/log.js';

t.test('every secret-looking field is redacted, at the top level and one level down', async (t) => {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (d: Buffer) => chunks.push(d));
  const log = await createLogger({ level: 'info', pretty: false, destination: out });
  const fields = REDACT_PATHS.filter((p) => /^[A-Za-z0-9]+$/.test(p));
  for (const f of ['secretAccessKey', 'sessionToken', 'password', 'keyPassword', 'tpmKeyPassword', 'pkcs11Pin', 'pin', 'privateKey', 'authorization']) {
    t.ok(fields.includes(f), `${f} is a redacted path`);
  }
  fields.forEach((f, i) => {
    log.info({ [f]: `top-secret-${i}-x` }, 'top');
    log.info({ nested: { [f]: `nested-secret-${i}-x` } }, 'nested');
  });
  log.flush?.();
  await new Promise((r) => setImmediate(r));
  const text = Buffer.concat(chunks).toString('utf8');
  t.equal(text.trim().split('\n').length, fields.length * 2, 'every line was written');
  t.notMatch(text, /secret-\d+-x/, 'no value reached the output');
  t.match(text, /\[redacted\]/);
});
