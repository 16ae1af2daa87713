/**
 * One log line per interval for an event that a client can repeat at will (a connection turned
 * away at maxClients): the first event is logged at once with count 1; events within the interval
 * after a line are counted, and the next line (the next event after the interval, or a timer at
 * its end) carries their count. So the log says how often it happened without a line each time.
 */
export class RateLimitedWarning {
  private lastLineAt = -Infinity;
  private suppressed = 0;
  private flush: NodeJS.Timeout | undefined;
  private write: ((count: number) => void) | undefined;

  constructor(private readonly intervalMs: number) {}

  /** An event; `write(count)` logs a line for `count` events when one is due. */
  hit(write: (count: number) => void): void {
    const now = Date.now();
    this.write = write;
    if (now - this.lastLineAt >= this.intervalMs) {
      this.line(now, this.suppressed + 1);
      return;
    }
    this.suppressed++;
    if (!this.flush) {
      this.flush = setTimeout(
        () => {
          this.flush = undefined;
          if (this.suppressed > 0) this.line(Date.now(), this.suppressed);
        },
        this.lastLineAt + this.intervalMs - now,
      );
      this.flush.unref();
    }
  }

  private line(now: number, count: number): void {
    this.lastLineAt = now;
    this.suppressed = 0;
    clearTimeout(this.flush);
    this.flush = undefined;
    this.write?.(count);
  }
}
