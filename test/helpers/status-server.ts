// Shared by the deploy tests: runs a probe/healthcheck command against a real
// local HTTP server answering with a chosen status.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function statusServer(status: number): Promise<{ port: number; paths: string[]; close: () => Promise<void> }> {
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { port, paths, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
