/**
 * The hot path's HTTPS client (src/azure/hsm-http.ts) against a TLS server that answers with
 * exactly the bytes each test asks for: bodies by length, by chunks and until close, interim
 * answers, malformed and oversized answers, a hang (abort), keep-alive reuse, a server that
 * closes idle connections, the server's Keep-Alive timeout, and the connection limit.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createServer,
  createSecureContext,
  rootCertificates,
  type Server,
  type TLSSocket,
} from 'node:tls';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, it } from 'node:test';
import { Deadline } from '../../src/azure/abort.js';
import { HsmHttpClient, MAX_BODY_BYTES } from '../../src/azure/hsm-http.js';
import { ensureTlsMaterial } from '../../src/emulator/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-hsm-http-'));
let server: Server;
let origin: string;
let ca: string;
/** Connections the server accepted, and requests it read, since the last reset. */
let connections = 0;
let requests: string[] = [];
/** What the server answers to a request for a path (raw bytes), or null for no answer. */
let answers: Record<string, (socket: TLSSocket) => string | null> = {};

const json = (body: string, extra = ''): string =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

before(async () => {
  const tls = await ensureTlsMaterial(dir);
  ca = tls.caPem;
  server = createServer({ key: tls.keyPem, cert: tls.certPem }, (socket) => {
    connections++;
    let buffered = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.slice(0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        const path = head.split(' ')[1] ?? '';
        requests.push(head);
        const answer = answers[path]?.(socket) ?? null;
        if (answer !== null) socket.write(answer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  connections = 0;
  requests = [];
  answers = {};
});

function client(maxConnections = 1): HsmHttpClient {
  return new HsmHttpClient(origin, {
    secureContext: createSecureContext({ ca: [...rootCertificates, ca] }),
    maxConnections,
  });
}

/** A deadline no test reaches. */
const never = new Deadline(Date.now() + 3_600_000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('sends the request line, headers and body, and reuses the connection', async () => {
  answers['/a'] = () => json('{"value":"x"}', 'x-ms-request-id: 1\r\nx-ms-request-id: 2\r\n');
  const http = client();
  try {
    const first = await http.post('/a', ['authorization', 'Bearer t'], '{"alg":"ES256"}', never);
    assert.equal(first.status, 200);
    assert.equal(first.body.toString(), '{"value":"x"}');
    assert.deepEqual(first.headers['x-ms-request-id'], ['1', '2']);
    const second = await http.post('/a', [], '{}', never);
    assert.equal(second.status, 200);
    assert.equal(connections, 1, 'one keep-alive connection for both');
    assert.match(requests[0]!, /^POST \/a HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\n/);
    assert.match(requests[0]!, /authorization: Bearer t\r\ncontent-length: 15$/);
  } finally {
    http.close();
  }
});

it('reads chunked bodies, bodies that end with the connection, and skips interim answers', async () => {
  answers['/chunked'] = () =>
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"va\r\n9;ext=1\r\nlue":"y"}\r\n0\r\nx-trailer: z\r\n\r\n';
  answers['/close'] = (socket) => {
    setImmediate(() => socket.end());
    return 'HTTP/1.1 200 OK\r\n\r\n{"value":"until close"}';
  };
  answers['/interim'] = () => `HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n${json('{"ok":1}')}`;
  const http = client();
  try {
    assert.equal((await http.post('/chunked', [], '', never)).body.toString(), '{"value":"y"}');
    assert.equal(
      (await http.post('/close', [], '', never)).body.toString(),
      '{"value":"until close"}',
    );
    const interim = await http.post('/interim', [], '', never);
    assert.deepEqual([interim.status, interim.body.toString()], [200, '{"ok":1}']);
  } finally {
    http.close();
  }
});

it('refuses malformed and oversized answers with a code the retry logic knows', async () => {
  answers['/garbage'] = () => 'SMTP ready\r\n\r\n';
  answers['/huge'] = () => `HTTP/1.1 200 OK\r\ncontent-length: ${MAX_BODY_BYTES + 1}\r\n\r\n`;
  answers['/cut'] = (socket) => {
    setImmediate(() => socket.destroy());
    return 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort';
  };
  const http = client();
  try {
    await assert.rejects(http.post('/garbage', [], '', never), {
      code: 'EPROTO',
      message: /not valid HTTP\/1\.1 \(.*Expected HTTP\//,
    });
    await assert.rejects(http.post('/huge', [], '', never), { code: 'EPROTO', message: /1 MiB/ });
    await assert.rejects(http.post('/cut', [], '', never), {
      code: 'UND_ERR_SOCKET',
      message: /in the middle of its answer/,
    });
  } finally {
    http.close();
  }
});

it('the deadline ends a request that gets no answer, and its connection is not reused', async () => {
  answers['/hang'] = () => null;
  answers['/a'] = () => json('{}');
  const http = client();
  try {
    const started = Date.now();
    await assert.rejects(http.post('/hang', [], '', new Deadline(started + 200)), {
      name: 'AbortError',
    });
    assert.ok(Date.now() - started >= 190, 'not before the deadline');
    assert.equal((await http.post('/a', [], '', never)).status, 200);
    assert.equal(connections, 2);
  } finally {
    http.close();
  }
});

it('a connection the server closed while idle is replaced transparently', async () => {
  answers['/a'] = (socket) => {
    setTimeout(() => socket.end(), 20);
    return json('{}');
  };
  const http = client();
  try {
    await http.post('/a', [], '', never);
    await sleep(200);
    assert.equal((await http.post('/a', [], '', never)).status, 200);
    assert.equal(connections, 2);
  } finally {
    http.close();
  }
});

it("honours the server's Keep-Alive timeout", async () => {
  answers['/a'] = () => json('{}', 'keep-alive: timeout=2\r\n');
  const http = client();
  try {
    await http.post('/a', [], '', never);
    await http.post('/a', [], '', never);
    assert.equal(connections, 1);
    await sleep(1500); // the idle connection is closed 1 s before the server's 2 s are up
    await http.post('/a', [], '', never);
    assert.equal(connections, 2);
  } finally {
    http.close();
  }
});

it('opens at most maxConnections; more requests wait for a free one', async () => {
  answers['/slow'] = (socket) => {
    setTimeout(() => socket.write(json('{}')), 50);
    return null;
  };
  const http = client(2);
  try {
    const all = await Promise.all(
      Array.from({ length: 6 }, () => http.post('/slow', [], '', never)),
    );
    assert.ok(all.every((r) => r.status === 200));
    assert.equal(connections, 2);
  } finally {
    http.close();
  }
});
