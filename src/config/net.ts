// Host classification (loopback is src/net/loopback.ts).

/** Loopback or the link-local addresses the ECS/EKS credential endpoints use (SDKs accept plain http to these). */
export function isLinkLocalCredentialHost(host: string): boolean {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h === '169.254.170.2' || h === '169.254.170.23' || h === 'fd00:ec2::23';
}
