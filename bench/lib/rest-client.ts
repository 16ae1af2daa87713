/**
 * The baseline for "what we add": the same sign request the agent makes, sent straight to the
 * emulator's REST API by a warm keep-alive HTTPS client (one socket, requests one after another).
 */
import { createHash } from 'node:crypto';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { BenchKey, Emulator } from './services.js';

const API_VERSION = '7.4';

export class DirectSigner {
  private readonly agent: HttpsAgent;

  constructor(
    private readonly emulator: Emulator,
    private readonly token: string,
  ) {
    this.agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: emulator.ca });
  }

  /** One sign of a SHA-256 digest; resolves with the round-trip time in µs. */
  sign(key: BenchKey, digest: Buffer): Promise<number> {
    const body = JSON.stringify({ alg: key.alg, value: digest.toString('base64url') });
    const url = new URL(
      `/keys/${key.spec.name}/${key.version}/sign?api-version=${API_VERSION}`,
      this.emulator.url,
    );
    const start = process.hrtime.bigint();
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            Authorization: `Bearer ${this.token}`,
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            const us = Number(process.hrtime.bigint() - start) / 1000;
            if (res.statusCode !== 200) {
              reject(new Error(`direct sign: HTTP ${res.statusCode} ${text}`));
              return;
            }
            const value = (JSON.parse(text) as { value?: string }).value;
            if (!value) reject(new Error(`direct sign: no signature in ${text}`));
            else resolve(us);
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** `ops` signatures one after another (after `warmup` unmeasured ones); latencies in µs. */
  async loop(key: BenchKey, ops: number, warmup: number): Promise<number[]> {
    const digest = createHash('sha256').update('akv bench').digest();
    for (let i = 0; i < warmup; i++) await this.sign(key, digest);
    const out: number[] = [];
    for (let i = 0; i < ops; i++) out.push(await this.sign(key, digest));
    return out;
  }

  close(): void {
    this.agent.destroy();
  }
}
