/**
 * What the agent does for each request: resolve the URI, use the key cache or the HSM gateway,
 * and build the response fields. A handler never throws: every failure becomes a STATUS and a
 * MESSAGE (what failed and what to do), and every private-key operation writes one audit line.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { HsmGateway, KeyDescription, OpResult } from '../azure/gateway.js';
import { AkvError, errorMessage } from '../errors.js';
import {
  KeyType,
  PROTOCOL_VERSION,
  Status,
  Tag,
  bytesField,
  stringField,
  u32Field,
} from '../protocol/index.js';
import type { Field } from '../protocol/index.js';
import { formatKeyUri, parseKeyUri, parseVaultUri } from '../uri/index.js';
import type { KeyRef } from '../uri/index.js';
import { configuredCertificate } from './certificates.js';
import { diagnose, type DiagnoseContext } from './diagnose.js';
import type { GatewayHolder } from './gateway-holder.js';
import { SlotCancelled, type HsmSlots } from './hsm-slots.js';
import type { KeyCache } from './key-cache.js';
import { logAudit } from './log.js';
import type { MetricsSink } from './metrics-sink.js';
import type { PeerCredentials } from './peer-credentials.js';
import type { AccessPolicy } from './policy.js';
import type { AgentRequest, PrivateOpName } from './requests.js';

export interface HandlerContext extends DiagnoseContext {
  gateways: GatewayHolder;
  cache: KeyCache;
  /** The maxInFlight bound on HSM requests, shared by all connections. */
  slots: HsmSlots;
  metrics: MetricsSink;
  /** A getter: SIGHUP may replace the logger. */
  logger(): Logger;
  agentVersion: string;
  /** The access policy in force (a getter: SIGHUP may replace it); undefined = everything allowed. */
  policy(): AccessPolicy | undefined;
  /**
   * A client's AZURE_CLI_ACCESS_TOKEN from HELLO; absent when this agent does not take tokens
   * from clients (docs/agent.md, "Autostart"). Never throws, never logs the token.
   */
  clientToken?: (token: string, clientPid: number | undefined) => void;
}

/**
 * The longest INPUT of a private-key operation. No HSM key takes more (an RSA-4096 ciphertext is
 * 512 bytes, a digest 64); refusing longer ones before they queue keeps a queued request small.
 */
export const MAX_PRIVATE_INPUT = 4096;

/**
 * Private-op failures after which the cached description may be stale (key rotated, deleted,
 * disabled: a 403 may be the key's state, so the next DESCRIBE reads its attributes afresh).
 */
const STALE_ON = new Set(['KEY_NOT_FOUND', 'BAD_PARAMETER', 'KEY_DISABLED', 'FORBIDDEN']);

const STATUS_OK = Status.OK;

const KEY_TYPE_CODES: Record<KeyDescription['kty'], number> = {
  RSA: KeyType.RSA,
  EC: KeyType.EC,
  oct: KeyType.AES,
};

const OP_LABEL: Record<AgentRequest['kind'], string> = {
  hello: 'hello',
  ping: 'ping',
  describe: 'describe',
  forget: 'forget',
  private: 'private',
  list: 'list',
  diagnose: 'diagnose',
  'list-vaults': 'list_vaults',
};

function opLabel(req: AgentRequest): string {
  return req.kind === 'private' ? req.op : OP_LABEL[req.kind];
}

/** The STATUS/MESSAGE/HINT/RETRIES fields of a failure, its status name and its text. */
export function errorFields(
  err: unknown,
  logger: Logger,
  what: string,
): { fields: Field[]; status: string; message: string } {
  const e =
    err instanceof AkvError
      ? err
      : // Not an AkvError: a bug somewhere in the agent. Keep the stack in the log, not on the wire.
        internalError(err, logger, what);
  const fields = [u32Field(Tag.STATUS, e.status), stringField(Tag.MESSAGE, e.message)];
  if (e.hint) fields.push(stringField(Tag.HINT, e.hint));
  if (e.retries > 0) fields.push(u32Field(Tag.RETRIES, e.retries));
  return { fields, status: e.code, message: e.fullMessage };
}

function internalError(err: unknown, logger: Logger, what: string): AkvError {
  logger.error({ err }, `internal error during ${what}`);
  return new AkvError(
    'INTERNAL',
    `internal error in the akv agent during ${what}: ${errorMessage(err)}`,
    'report it with the agent log',
  );
}

/** Where a request came from and when the agent started it (its deadline counts from then). */
export interface RequestMeta {
  conn: number;
  receivedAt: number;
  /** The connection's peer as the kernel gave it (undefined when it could not be read). */
  peer?: PeerCredentials;
}

/**
 * The policy's verdict on OP with KEY: the name of the rule that allows it (undefined when no
 * policy is set); throws ACCESS_DENIED. A refusal of an operation that has no audit line of its
 * own (describe, list, forget, diagnose) is audited here.
 */
function allow(
  ctx: HandlerContext,
  meta: RequestMeta,
  op: 'sign' | 'decrypt' | 'wrap' | 'unwrap' | 'describe' | 'list',
  target: { vaultType: KeyRef['vaultType']; vault: string; name?: string },
  auditAs?: 'describe' | 'list' | 'forget' | 'diagnose',
): string | undefined {
  const policy = ctx.policy();
  if (!policy) return undefined;
  try {
    return policy.check(meta.peer, op, target);
  } catch (err) {
    if (auditAs !== undefined && err instanceof AkvError) {
      logAudit(ctx.logger(), {
        uri: `${target.vaultType}:${target.vault}:${target.name ?? ''}`,
        op: auditAs,
        alg: '',
        status: err.code,
        latencyMs: 0,
        ...(meta.peer ? { peer: meta.peer } : {}),
        retries: 0,
        error: err.fullMessage,
      });
    }
    throw err;
  }
}

/** Runs one HSM call of a request inside a maxInFlight slot, under the request's deadline. */
function atHsm<T>(
  ctx: HandlerContext,
  meta: RequestMeta,
  gateway: HsmGateway,
  what: string,
  call: (deadline: number) => Promise<T>,
): Promise<T> {
  const deadline = meta.receivedAt + gateway.deadlineMs;
  return ctx.slots.run(meta.conn, deadline, what, () => call(deadline));
}

async function describe(
  ctx: HandlerContext,
  meta: RequestMeta,
  ref: KeyRef,
): Promise<KeyDescription> {
  const lease = ctx.gateways.lease();
  const load = (): Promise<KeyDescription> =>
    atHsm(ctx, meta, lease.gateway, `describe ${formatKeyUri(ref)}`, (deadline) =>
      lease.gateway.describe(ref, { deadline }),
    );
  try {
    let looked: { description: KeyDescription; hit: boolean };
    try {
      looked = await ctx.cache.get(ref, load);
    } catch (err) {
      // The lookup this one joined was queued by a client that has since gone: look again.
      if (!(err instanceof SlotCancelled)) throw err;
      looked = await ctx.cache.get(ref, load);
    }
    ctx.metrics.keyCache.inc({ result: looked.hit ? 'hit' : 'miss' });
    return looked.description;
  } finally {
    lease.release();
  }
}

function describeFields(ref: KeyRef, d: KeyDescription): Field[] {
  if (!d.enabled) {
    throw new AkvError(
      'KEY_DISABLED',
      `key ${formatKeyUri(ref)} is disabled, not yet valid or expired`,
      'enable it or adjust its nbf/exp attributes in the HSM, or use another key',
    );
  }
  const fields = [
    u32Field(Tag.STATUS, STATUS_OK),
    u32Field(Tag.KEY_TYPE, KEY_TYPE_CODES[d.kty]),
    u32Field(Tag.KEY_BITS, d.bits),
  ];
  if (d.curve !== undefined) fields.push(stringField(Tag.CURVE, d.curve));
  fields.push(
    stringField(Tag.KEY_VERSION, d.version),
    stringField(Tag.KEY_OPS, d.keyOps.join(',')),
  );
  if (d.spki !== undefined) fields.push(bytesField(Tag.PUBLIC_KEY, d.spki));
  fields.push(stringField(Tag.KEY_ID, d.kid));
  return fields;
}

type PrivateRequest = Extract<AgentRequest, { kind: 'private' }>;

/** What the audit line of one private-key operation says besides the request itself. */
interface PrivateOutcome {
  fields: Field[];
  status: string;
  uri: string;
  rule?: string;
  keyVersion?: string;
  retries: number;
  error?: string;
}

async function privateOp(
  ctx: HandlerContext,
  req: PrivateRequest,
  meta: RequestMeta,
): Promise<{ fields: Field[]; status: string }> {
  const started = performance.now();
  const outcome = await runPrivateOp(ctx, req, meta);
  logAudit(ctx.logger(), {
    uri: outcome.uri,
    op: req.op,
    alg: req.alg.slice(0, 40),
    status: outcome.status,
    latencyMs: performance.now() - started,
    ...(req.clientPid !== undefined ? { clientPid: req.clientPid } : {}),
    ...(meta.peer ? { peer: meta.peer } : {}),
    ...(outcome.rule !== undefined ? { rule: outcome.rule } : {}),
    ...(outcome.keyVersion !== undefined ? { keyVersion: outcome.keyVersion } : {}),
    retries: outcome.retries,
    ...(outcome.error !== undefined ? { error: outcome.error } : {}),
  });
  return { fields: outcome.fields, status: outcome.status };
}

/** The policy check, the HSM call and the answer's fields; never throws. */
async function runPrivateOp(
  ctx: HandlerContext,
  req: PrivateRequest,
  meta: RequestMeta,
): Promise<PrivateOutcome> {
  let uri = req.uri.length > 200 ? `${req.uri.slice(0, 200)}...` : req.uri;
  let ref: KeyRef | undefined;
  let rule: string | undefined;
  const lease = ctx.gateways.lease();
  try {
    ref = parseKeyUri(req.uri);
    uri = formatKeyUri(ref);
    rule = allow(ctx, meta, req.op, ref);
    checkPrivateInput(req);
    const target = ref;
    const result = await atHsm(ctx, meta, lease.gateway, `${req.op} with ${uri}`, (deadline) =>
      runPrivate(lease.gateway, req.op, target, req.alg, req.input, deadline),
    );
    const fields = [
      u32Field(Tag.STATUS, STATUS_OK),
      bytesField(Tag.OUTPUT, result.output),
      stringField(Tag.KEY_VERSION, result.version),
    ];
    if (result.retries > 0) fields.push(u32Field(Tag.RETRIES, result.retries));
    noticeRotation(ctx, ref, result.version);
    return { fields, status: 'OK', uri, rule, keyVersion: result.version, retries: result.retries };
  } catch (err) {
    const e =
      err instanceof SlotCancelled
        ? errorFields(
            new AkvError('UNAVAILABLE', `${req.op} not sent to the HSM: ${err.message}`),
            ctx.logger(),
            req.op,
          )
        : errorFields(err, ctx.logger(), req.op);
    if (ref && err instanceof AkvError && STALE_ON.has(err.code)) ctx.cache.invalidate(ref);
    return {
      fields: e.fields,
      status: e.status,
      uri,
      rule,
      retries: err instanceof AkvError ? err.retries : 0,
      error: e.message,
    };
  } finally {
    lease.release();
  }
}

/** An input no HSM key operation takes is refused before it queues for a slot. */
function checkPrivateInput(req: PrivateRequest): void {
  if (req.input.length > MAX_PRIVATE_INPUT) {
    throw new AkvError(
      'BAD_PARAMETER',
      `the input of ${req.op} is ${req.input.length} bytes, more than any HSM key operation takes (at most ${MAX_PRIVATE_INPUT})`,
      'send a digest to sign, a ciphertext of the key size to decrypt or unwrap, a key of at most 512 bytes to wrap',
    );
  }
}

function runPrivate(
  gateway: HsmGateway,
  op: PrivateOpName,
  ref: KeyRef,
  alg: string,
  input: Buffer,
  deadline: number,
): Promise<OpResult> {
  switch (op) {
    case 'sign':
      return gateway.sign(ref, alg, input, { deadline });
    case 'decrypt':
      return gateway.decrypt(ref, alg, input, { deadline });
    case 'wrap':
      return gateway.wrapKey(ref, alg, input, { deadline });
    case 'unwrap':
      return gateway.unwrapKey(ref, alg, input, { deadline });
  }
}

/**
 * An unpinned operation that ran on a different version than the cached description means the
 * key was rotated: drop the description so the next DESCRIBE returns the new public key.
 */
function noticeRotation(ctx: HandlerContext, ref: KeyRef, usedVersion: string): void {
  if (ref.version !== undefined || usedVersion === '') return;
  const cached = ctx.cache.peek(ref);
  if (cached && cached.version.toLowerCase() !== usedVersion.toLowerCase())
    ctx.cache.invalidate(ref);
}

/**
 * Runs one request and returns its response fields (STATUS first). Records metrics; never throws.
 */
export async function handleRequest(
  ctx: HandlerContext,
  req: AgentRequest,
  meta: RequestMeta,
): Promise<Field[]> {
  const started = performance.now();
  const op = opLabel(req);
  let fields: Field[];
  let status = 'OK';
  if (req.kind === 'private') {
    ({ fields, status } = await privateOp(ctx, req, meta));
  } else {
    try {
      fields = await handleOther(ctx, req, meta);
    } catch (err) {
      const e = errorFields(err, ctx.logger(), op);
      fields = e.fields;
      status = e.status;
      ctx
        .logger()
        .debug({ op, status, error: e.message, client_pid: req.clientPid }, 'request failed');
    }
  }
  ctx.metrics.requests.inc({ op, status });
  if (status !== 'OK') ctx.metrics.errors.inc({ op, status });
  ctx.metrics.latency.observe({ op }, (performance.now() - started) / 1000);
  return fields;
}

async function handleOther(
  ctx: HandlerContext,
  req: Exclude<AgentRequest, { kind: 'private' }>,
  meta: RequestMeta,
): Promise<Field[]> {
  switch (req.kind) {
    case 'hello':
      return hello(ctx, req);
    case 'ping':
      return [u32Field(Tag.STATUS, STATUS_OK)];
    case 'describe':
      return describeOp(ctx, req, meta);
    case 'list-vaults':
      return [
        u32Field(Tag.STATUS, STATUS_OK),
        stringField(Tag.VAULT_NAMES, Object.keys(ctx.config().vaults).join(',')),
      ];
    case 'forget':
      return forget(ctx, req, meta);
    case 'diagnose':
      return diagnoseOp(ctx, req, meta);
    case 'list':
      return listKeys(ctx, req, meta);
  }
}

function hello(ctx: HandlerContext, req: Extract<AgentRequest, { kind: 'hello' }>): Field[] {
  ctx.logger().debug(
    {
      client_pid: req.clientPid,
      client_name: req.clientName,
      proto: req.protoVersion,
      access_token: req.accessToken !== undefined ? 'handed over' : undefined,
    },
    'hello',
  );
  if (req.accessToken !== undefined) ctx.clientToken?.(req.accessToken, req.clientPid);
  return [
    u32Field(Tag.STATUS, STATUS_OK),
    u32Field(Tag.PROTO_VERSION, PROTOCOL_VERSION),
    stringField(Tag.AGENT_VERSION, ctx.agentVersion),
  ];
}

/** The key's description, and the certificate the config pairs with it, if any. */
async function describeOp(
  ctx: HandlerContext,
  req: Extract<AgentRequest, { kind: 'describe' }>,
  meta: RequestMeta,
): Promise<Field[]> {
  const ref = parseKeyUri(req.uri);
  allow(ctx, meta, 'describe', ref, 'describe');
  const d = await describe(ctx, meta, ref);
  const fields = describeFields(ref, d);
  const certificate = await configuredCertificate(ctx.config(), ref, d.spki, ctx.logger());
  if (certificate !== undefined) fields.push(bytesField(Tag.CERTIFICATE, certificate));
  return fields;
}

/**
 * The key commands send FORGET after a rotate, import or delete, so that the next DESCRIBE of an
 * unpinned URI asks the HSM instead of serving the old version until the TTL.
 */
function forget(
  ctx: HandlerContext,
  req: Extract<AgentRequest, { kind: 'forget' }>,
  meta: RequestMeta,
): Field[] {
  const ref = parseKeyUri(req.uri);
  allow(ctx, meta, 'describe', ref, 'forget');
  ctx.cache.invalidate(ref);
  ctx
    .logger()
    .info({ uri: formatKeyUri(ref), client_pid: req.clientPid }, 'key cache entry dropped');
  return [u32Field(Tag.STATUS, STATUS_OK)];
}

/** Never fails as a whole: every check's failure is part of the report. */
async function diagnoseOp(
  ctx: HandlerContext,
  req: Extract<AgentRequest, { kind: 'diagnose' }>,
  meta: RequestMeta,
): Promise<Field[]> {
  const report = await diagnose(ctx, req.uri, (ref) => {
    allow(ctx, meta, 'describe', ref, 'diagnose');
    return describe(ctx, meta, ref);
  });
  ctx
    .logger()
    .info({ client_pid: req.clientPid, ready: report.ready, uri: report.key?.uri }, 'diagnose');
  return [u32Field(Tag.STATUS, STATUS_OK), stringField(Tag.REPORT, JSON.stringify(report))];
}

/** The vault's key names, those the policy lets this peer see. */
async function listKeys(
  ctx: HandlerContext,
  req: Extract<AgentRequest, { kind: 'list' }>,
  meta: RequestMeta,
): Promise<Field[]> {
  const vault = parseVaultUri(`${req.vaultType}:${req.vault}:`);
  const target = { vaultType: vault.vaultType, vault: vault.vault };
  allow(ctx, meta, 'list', target, 'list');
  const visible = ctx.policy()?.listFilter(meta.peer, target) ?? (() => true);
  const lease = ctx.gateways.lease();
  try {
    const names = await atHsm(
      ctx,
      meta,
      lease.gateway,
      `list ${vault.vaultType}:${vault.vault}:`,
      (deadline) => lease.gateway.listKeys(vault.vaultType, vault.vault, { deadline }),
    );
    return [
      u32Field(Tag.STATUS, STATUS_OK),
      ...names.filter(visible).map((n) => stringField(Tag.KEY_NAME, n)),
    ];
  } finally {
    lease.release();
  }
}
