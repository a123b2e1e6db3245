// Placeholder until the command lands; replaced by its owner.
import { UserError } from '../errors.js';

export const summary = '(not built yet)';

export async function run(_argv: string[]): Promise<number> {
  throw new UserError('the credential-process command is not built yet');
}
