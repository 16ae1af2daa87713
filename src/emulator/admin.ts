/**
 * The emulator's own loopback admin API under `/_emulator/` (no auth, no latency, not counted):
 * fault injection, request statistics and runtime latency. Documented in docs/emulator.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HsmError, badParameter } from './errors.js';
import { parseFault, type FaultInjector, type RequestStats } from './faults.js';
import { parseJson, readBody, sendJson } from './http/io.js';
import { isRecord } from '../guards.js';

export interface AdminState {
  faults: FaultInjector;
  stats: RequestStats;
  latencyMs: number;
}

export async function handleAdmin(
  state: AdminState,
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
): Promise<void> {
  const path = pathname.replace(/\/+$/, '');
  const method = req.method ?? 'GET';
  const body = method === 'POST' ? parseJson(req, await readBody(req)) : undefined;
  if (path === '/_emulator/faults') {
    if (method === 'POST') {
      const fault = parseFault(body);
      state.faults.set(fault);
      return sendJson(res, 200, { fault });
    }
    if (method === 'DELETE') {
      state.faults.clear();
      return sendJson(res, 200, { fault: null });
    }
    if (method === 'GET') return sendJson(res, 200, { fault: state.faults.current() ?? null });
  }
  if (path === '/_emulator/stats' && method === 'GET')
    return sendJson(res, 200, state.stats.snapshot());
  if (path === '/_emulator/stats/reset' && method === 'POST') {
    state.stats.reset();
    return sendJson(res, 200, state.stats.snapshot());
  }
  if (path === '/_emulator/latency') {
    if (method === 'POST') {
      const ms = isRecord(body) ? body.ms : undefined;
      if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > 600_000) {
        throw badParameter(
          'POST /_emulator/latency takes {"ms": N} with N a whole number of milliseconds',
        );
      }
      state.latencyMs = ms;
      return sendJson(res, 200, { ms });
    }
    if (method === 'GET') return sendJson(res, 200, { ms: state.latencyMs });
  }
  if (path === '/_emulator/health' && method === 'GET') return sendJson(res, 200, { status: 'ok' });
  throw new HsmError(
    404,
    'NotFound',
    `${method} ${pathname} is not an emulator admin endpoint (see docs/emulator.md)`,
  );
}
