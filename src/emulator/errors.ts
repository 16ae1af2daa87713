/**
 * The error a Managed HSM request ends with: an HTTP status and the service's
 * `{"error":{"code","message"}}` body. Handlers throw it; the server turns it into the response.
 */
export type HsmErrorCode =
  | 'BadParameter'
  | 'KeyNotFound'
  | 'Unauthorized'
  | 'Forbidden'
  | 'Conflict'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'RequestEntityTooLarge'
  | 'Throttled'
  | 'InternalServerError'
  | 'ServiceUnavailable';

export class HsmError extends Error {
  override name = 'HsmError';
  constructor(
    readonly status: number,
    readonly code: HsmErrorCode,
    message: string,
    /** Optional `innererror.code`, as the service sends for RBAC and key-state refusals. */
    readonly innerCode?: string,
  ) {
    super(message);
  }

  /** The service's error body; real messages end with the request's Activity ID. */
  toBody(activityId?: string): {
    error: { code: string; message: string; innererror?: { code: string } };
  } {
    const error: { code: string; message: string; innererror?: { code: string } } = {
      code: this.code,
      message: activityId ? `${this.message} (Activity ID: ${activityId})` : this.message,
    };
    if (this.innerCode) error.innererror = { code: this.innerCode };
    return { error };
  }
}

export function badParameter(message: string): HsmError {
  return new HsmError(400, 'BadParameter', message);
}

export function forbidden(message: string, innerCode?: string): HsmError {
  return new HsmError(403, 'Forbidden', message, innerCode);
}

/** A plain-data form of HsmError that can cross a worker_threads message boundary. */
export interface HsmErrorData {
  status: number;
  code: HsmErrorCode;
  message: string;
  innerCode?: string;
}

export function toErrorData(err: HsmError): HsmErrorData {
  return { status: err.status, code: err.code, message: err.message, innerCode: err.innerCode };
}

export function fromErrorData(data: HsmErrorData): HsmError {
  return new HsmError(data.status, data.code, data.message, data.innerCode);
}
