import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';

/**
 * Wraps an HTTP client so that `signal` ends every request and every response body read.
 *
 * isomorphic-git's `fetch` takes no signal, and a client override (a pinned agent, say)
 * may ignore the one in the request; racing each step against the signal is what
 * actually bounds a fetch against a server that stalls mid-pack.
 */
export function abortableHttp(inner: HttpClient, signal: AbortSignal): HttpClient {
  return {
    async request(request: GitHttpRequest): Promise<GitHttpResponse> {
      signal.throwIfAborted();
      const pending = inner.request({ ...request, signal });
      let response: GitHttpResponse;
      try {
        response = await raceAbort(pending, signal);
      } catch (err) {
        // A response that arrives after the abort must still release its connection.
        pending.then((late) => closeBody(late.body), () => {});
        throw err;
      }
      return response.body === undefined ? response : { ...response, body: abortableBody(response.body, signal) };
    },
  };
}

async function* abortableBody(
  body: AsyncIterableIterator<Uint8Array>,
  signal: AbortSignal,
): AsyncIterableIterator<Uint8Array> {
  try {
    while (true) {
      const next = await raceAbort(body.next(), signal);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    closeBody(body);
  }
}

function closeBody(body: AsyncIterableIterator<Uint8Array> | undefined): void {
  // Best effort: the connection is being abandoned anyway.
  try {
    Promise.resolve(body?.return?.()).catch(() => {});
  } catch {
    // A synchronous throw from return() is as ignorable as a rejection.
  }
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
