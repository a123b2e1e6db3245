// Example ARNs the emulator accepts (well-formed, any account; the region is the
// trust anchor's), shared by the demo and the `emulator` command's start-up guide.
export const EXAMPLE_ACCOUNT = '123456789012';

export interface ExampleArns {
  trustAnchorArn: string;
  profileArn: string;
  roleArn: string;
}

export function exampleArns(region: string): ExampleArns {
  return {
    trustAnchorArn: `arn:aws:rolesanywhere:${region}:${EXAMPLE_ACCOUNT}:trust-anchor/8f2a1c5e-1f7b-4d3a-9c1e-0d5b7a9e3f10`,
    profileArn: `arn:aws:rolesanywhere:${region}:${EXAMPLE_ACCOUNT}:profile/3b9d6e21-7c4a-4f8e-b2d1-6a0c9e5f7b42`,
    roleArn: `arn:aws:iam::${EXAMPLE_ACCOUNT}:role/rolesanywhere-demo`,
  };
}

/** One shell word: quoted unless it is made of characters no shell treats specially. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
