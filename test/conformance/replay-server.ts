/**
 * A replay server: HTTPS on 127.0.0.1 (a free port, the emulator's TLS material in a temporary
 * directory) that answers with the recorded real responses of the fixtures, so that the agent,
 * `akv` and `openssl` can be checked against what a real Managed HSM sends.
 *
 * Matching: a request without a token gets the fixture's recorded 401 challenge; otherwise
 * method + path (empty segments dropped, the version segment optional), for sign/decrypt/
 * encrypt/wrapkey/unwrapkey the body's alg and value, and for a listing page its $skiptoken (a
 * request with one gets the page recorded with that token, so the recorded nextLinks lead page by
 * page; one without gets the page recorded without, else the only recorded page). A GET of a key is answered with the key's recorded bundle
 * (from its create or get answer: the service returns the same bundle). The recorded (sanitised)
 * host in key ids is replaced by this server's, as a real HSM's key ids name the HSM itself.
 * An unmatched request gets 599 with the reason, so a test fails saying what was asked.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTlsMaterial } from '../../src/emulator/tls.js';
import type { Fixture, RecordedExchange } from './fixtures.js';

export interface ReplayServer {
  url: string;
  caFile: string;
  /** Requests seen, as "METHOD /path". */
  seen: string[];
  /** How many requests came without a token and got the recorded 401 challenge. */
  challenges(): number;
  stop(): Promise<void>;
}

const segments = (path: string): string[] =>
  path
    .split('?')[0]
    ?.split('/')
    .filter((s) => s !== '') ?? [];
const isVersion = (s: string | undefined): boolean => s !== undefined && /^[0-9a-f]{32}$/.test(s);

/** The path without its version segment: keys/NAME[/OP]. */
function shape(path: string): string {
  const seg = segments(path);
  if (seg[0] === 'keys' && isVersion(seg[2])) seg.splice(2, 1);
  return seg.join('/');
}

export async function startReplay(fixtures: Fixture[]): Promise<ReplayServer> {
  const dir = mkdtempSync(join(tmpdir(), 'akv-replay-'));
  const tls = await ensureTlsMaterial(dir);
  const exchanges: { fixture: Fixture; x: RecordedExchange }[] = fixtures.flatMap((fixture) =>
    fixture.exchanges.map((x) => ({ fixture, x })),
  );
  const challenge = exchanges.find(({ x }) => x.request.auth === false)?.x;
  const seen: string[] = [];
  let challenges = 0;
  let url = '';

  const rehost = (text: string): string =>
    text.replace(/https:\/\/[A-Za-z0-9_.-]+\.(?:managedhsm\.azure\.net|vault\.azure\.net)/g, url);

  function send(res: ServerResponse, x: RecordedExchange): void {
    const body =
      x.response.body === null || x.response.body === undefined
        ? ''
        : typeof x.response.body === 'string'
          ? x.response.body
          : rehost(JSON.stringify(x.response.body));
    const headers: Record<string, string> = { ...x.response.headers };
    headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(x.response.status, headers);
    res.end(body);
  }

  function find(
    req: IncomingMessage,
    body: Record<string, unknown> | undefined,
  ): RecordedExchange | string {
    const method = req.method ?? 'GET';
    const want = shape(req.url ?? '/');
    const seg = want.split('/');
    const candidates = exchanges.filter(
      ({ x }) => x.request.auth !== false && x.response.status !== 401,
    );
    if (method === 'GET' && seg[0] === 'keys' && seg.length === 2) {
      // The key's bundle: its latest recorded create/get/import answer.
      const bundles = candidates.filter(
        ({ x }) =>
          x.response.status === 200 &&
          (x.response.body as { key?: { kid?: string } } | null)?.key?.kid !== undefined &&
          shape(x.request.path).split('/')[1] === seg[1] &&
          !x.request.path.startsWith('/deletedkeys'),
      );
      const last = bundles[bundles.length - 1];
      return last ? last.x : `no recorded bundle for key ${seg[1]}`;
    }
    const matching = candidates.filter(
      ({ x }) => x.request.method === method && shape(x.request.path) === want,
    );
    if (matching.length === 0) return `no recorded answer for ${method} /${want}`;
    const skiptoken = new URL(req.url ?? '/', 'https://replay').searchParams.get('$skiptoken');
    const recordedToken = (x: RecordedExchange): string | undefined => x.request.query.$skiptoken;
    if (skiptoken !== null) {
      const page = matching.find(({ x }) => recordedToken(x) === skiptoken);
      return page ? page.x : `no recorded page of /${want} with this $skiptoken`;
    }
    const op = seg[seg.length - 1];
    if (
      op === 'sign' ||
      op === 'decrypt' ||
      op === 'encrypt' ||
      op === 'unwrapkey' ||
      op === 'wrapkey'
    ) {
      const same = matching.find(({ x }) => {
        const rb = x.request.body as { alg?: string; value?: string };
        return rb.alg === body?.alg && rb.value === body?.value;
      });
      return same ? same.x : `no recorded ${op} with alg ${String(body?.alg)} and this value`;
    }
    const first = matching.find(({ x }) => recordedToken(x) === undefined) ?? matching[0];
    return (first as { x: RecordedExchange }).x;
  }

  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push(`${req.method} ${(req.url ?? '').split('?')[0]}`);
      if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) {
        challenges++;
        if (challenge) return send(res, challenge);
        res.writeHead(401).end();
        return;
      }
      let body: Record<string, unknown> | undefined;
      try {
        body = chunks.length
          ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>)
          : undefined;
      } catch {
        body = undefined;
      }
      const found = find(req, body);
      if (typeof found === 'string') {
        res.writeHead(599, { 'content-type': 'text/plain' }).end(`replay: ${found}`);
        return;
      }
      send(res, found);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `https://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    url,
    caFile: tls.caFile,
    seen,
    challenges: () => challenges,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          // The replay server's TLS material lives only as long as the server.
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
