/**
 * A raw connection to the agent socket for tests that must send what AgentClient never would
 * (malformed frames, floods, requests it never reads the answers of): it collects every frame the
 * agent sends and notices when the agent closes the connection.
 */
import { createConnection, type Socket } from 'node:net';
import { FrameDecoder, MAX_RESPONSE_BODY, type Frame } from '../../src/protocol/index.js';

/** A raw connection that collects every frame the agent sends and notices when it closes. */
export class Raw {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(MAX_RESPONSE_BODY);
  private waiters: Array<() => void> = [];
  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      for (const f of this.decoder.push(c)) this.frames.push(f);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ path }, () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** Waits until `cond` holds (checked whenever a frame arrives or the connection closes). */
  async until(cond: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`condition not met within ${timeoutMs} ms: ${String(cond)}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((r) => {
        this.waiters.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }
  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'hex') : bytes);
  }
}
