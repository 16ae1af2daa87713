/**
 * Holds the current HSM gateway and lets SIGHUP swap in a new one without failing requests that
 * are still running on the old one: each request leases the gateway it started with, and a
 * replaced gateway is closed when its last lease is returned.
 */
import type { HsmGateway } from '../azure/gateway.js';

interface Slot {
  gateway: HsmGateway;
  leases: number;
  retired: boolean;
}

export interface GatewayLease {
  gateway: HsmGateway;
  release(): void;
}

export class GatewayHolder {
  private current: Slot;
  private readonly closing = new Set<Promise<void>>();

  constructor(gateway: HsmGateway) {
    this.current = { gateway, leases: 0, retired: false };
  }

  lease(): GatewayLease {
    const slot = this.current;
    slot.leases++;
    let released = false;
    return {
      gateway: slot.gateway,
      release: () => {
        if (released) return;
        released = true;
        slot.leases--;
        if (slot.retired && slot.leases === 0) this.closeSlot(slot);
      },
    };
  }

  /** Makes `gateway` current; the old one closes once its in-flight requests are done. */
  replace(gateway: HsmGateway): void {
    const old = this.current;
    this.current = { gateway, leases: 0, retired: false };
    old.retired = true;
    if (old.leases === 0) this.closeSlot(old);
  }

  /** Closes the current gateway and waits for retired ones to finish closing. */
  async close(): Promise<void> {
    this.current.retired = true;
    if (this.current.leases === 0) this.closeSlot(this.current);
    await Promise.allSettled([...this.closing]);
  }

  private closeSlot(slot: Slot): void {
    const p = slot.gateway.close().catch(() => undefined);
    this.closing.add(p);
    void p.finally(() => this.closing.delete(p));
  }
}
