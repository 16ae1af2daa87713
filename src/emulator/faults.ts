/**
 * Fault injection and request counting, driven through the admin API (`/_emulator/`, see
 * docs/emulator.md): tests make the next N matching requests fail the way Azure fails.
 */
import { badParameter } from './errors.js';
import { isInteger, isOneOf, isRecord } from '../guards.js';
import { API_OPERATIONS, type ApiOperation } from './http/router.js';

export const FAULT_MODES = [
  'throttle',
  'throttle-retry-after',
  'error500',
  'error503',
  'reset',
  'hang',
] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface Fault {
  mode: FaultMode;
  /** How many matching requests still get the fault; undefined = until cleared. */
  remaining?: number;
  retryAfterSeconds?: number;
  /** Operations the fault applies to; undefined = all. */
  operations?: ApiOperation[];
}

export function parseFault(body: unknown): Fault {
  if (!isRecord(body)) {
    throw badParameter(
      'POST /_emulator/faults takes a JSON object such as {"mode":"throttle","count":2}',
    );
  }
  const { mode, count, retryAfterSeconds, operations } = body;
  if (!isOneOf(FAULT_MODES, mode)) {
    throw badParameter(`"mode" must be one of ${FAULT_MODES.join(', ')}`);
  }
  const fault: Fault = { mode };
  if (count !== undefined) {
    if (!isInteger(count) || count < 1) {
      throw badParameter('"count" must be a positive integer (omit it for "until cleared")');
    }
    fault.remaining = count;
  }
  if (retryAfterSeconds !== undefined) {
    if (!isInteger(retryAfterSeconds) || retryAfterSeconds < 0) {
      throw badParameter('"retryAfterSeconds" must be a non-negative integer');
    }
    fault.retryAfterSeconds = retryAfterSeconds;
  }
  if (operations !== undefined) {
    if (
      !Array.isArray(operations) ||
      operations.length === 0 ||
      !operations.every((o): o is ApiOperation => isOneOf(API_OPERATIONS, o))
    ) {
      throw badParameter(`"operations" must be a non-empty list of: ${API_OPERATIONS.join(', ')}`);
    }
    fault.operations = operations;
  }
  return fault;
}

export class FaultInjector {
  private fault: Fault | undefined;

  set(fault: Fault): void {
    this.fault = fault;
  }

  clear(): void {
    this.fault = undefined;
  }

  current(): Fault | undefined {
    return this.fault;
  }

  /** The fault to apply to this request, consuming one of its count; undefined = serve normally. */
  take(operation: ApiOperation): Fault | undefined {
    const fault = this.fault;
    if (!fault) return undefined;
    if (fault.operations && !fault.operations.includes(operation)) return undefined;
    if (fault.remaining !== undefined) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.fault = undefined;
    }
    return fault;
  }
}

/** Requests served per operation; 401 challenges count as "challenge", bad tokens as "unauthorized". */
export class RequestStats {
  private counts: Record<string, number> = {};
  private total = 0;

  count(operation: string): void {
    this.counts[operation] = (this.counts[operation] ?? 0) + 1;
    this.total += 1;
  }

  snapshot(): { requests: Record<string, number>; total: number } {
    return { requests: { ...this.counts }, total: this.total };
  }

  reset(): void {
    this.counts = {};
    this.total = 0;
  }
}
