/**
 * An SDK pipeline policy for answers the Key Vault SDK cannot read: a non-2xx answer without a
 * JSON body (a redirect, a proxy's bare 401 or 502) makes its error deserializer throw "Cannot
 * read properties of undefined (reading 'error')" instead of a RestError with the status. This
 * policy gives such an answer the service's error shape, with a message that says what came
 * back, so failures.ts classifies it by its status like any other. Redirects are not followed
 * (the SDK drops the token on a redirect, so the HSM answers 401): the redirect itself is the
 * answer, and its Location is named.
 */
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { isRecord } from '../guards.js';

export const emptyErrorBodyPolicy: PipelinePolicy = {
  name: 'akvEmptyErrorBody',
  async sendRequest(request, next) {
    const response = await next(request);
    if (response.status < 300) return response;
    const text = response.bodyAsText ?? '';
    let readable = false;
    try {
      const parsed: unknown = JSON.parse(text);
      readable = isRecord(parsed) && parsed.error !== undefined;
    } catch {
      readable = false;
    }
    if (readable) return response;
    const location = response.headers.get('location');
    const message =
      response.status >= 300 && response.status < 400
        ? `the HSM answered with a redirect (HTTP ${response.status}${location ? ` to ${location}` : ''}), which akv does not follow`
        : `the HSM answered HTTP ${response.status} without an error body${text ? `: ${text.slice(0, 200)}` : ''}`;
    response.bodyAsText = JSON.stringify({
      error: { code: response.status < 400 ? 'Redirect' : 'NoErrorBody', message },
    });
    response.headers.set('content-type', 'application/json');
    return response;
  },
};
