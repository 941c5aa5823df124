// Follows subscriptions through the official @trpc/client's httpSubscriptionLink (with the
// `eventsource` package as EventSource, as a Node frontend would), for
// tests/test_trpc_client_official.py.
//
// Reads one JSON scenario on stdin:
//   {"url": "http://host:port/trpc",
//    "subscriptions": [{"name": "staff", "path": "a.b", "input": {...},
//                       "token"?: "...",              // sent as the Authorization header
//                       "connectionParams"?: {...}}]} // sent as ?connectionParams=
// and prints one JSON line per happening, as it happens:
//   {"sub", "kind": "request", "url", "lastEventId"}   each GET EventSource makes
//   {"sub", "kind": "data", "id", "data"}               each tracked event (onData)
//   {"sub", "kind": "state", "state", "error"}          connection state changes
//   {"sub", "kind": "error", "message", "code"}         the subscription failed (onError)
//   {"sub", "kind": "complete"}                         the server said `return`
// and exits once every subscription has completed or failed.
import { createTRPCClient, httpSubscriptionLink } from '@trpc/client';
import { EventSource } from 'eventsource';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function emit(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

function procedureAt(client, path) {
  return path.split('.').reduce((node, segment) => node[segment], client);
}

function follow(url, subscription) {
  const { name, path, input, token, connectionParams } = subscription;
  // EventSource sends no headers of its own choosing; its `fetch` option is the way to add
  // one (and to see each request it makes, reconnections included).
  const recordingFetch = (requestUrl, init) => {
    const headers = { ...(init?.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    emit({
      sub: name,
      kind: 'request',
      url: String(requestUrl),
      lastEventId: headers['Last-Event-ID'] ?? headers['last-event-id'] ?? null,
    });
    return fetch(requestUrl, { ...init, headers });
  };
  const client = createTRPCClient({
    links: [
      httpSubscriptionLink({
        url,
        EventSource,
        eventSourceOptions: { fetch: recordingFetch },
        ...(connectionParams ? { connectionParams } : {}),
      }),
    ],
  });
  return new Promise((resolve) => {
    procedureAt(client, path).subscribe(input, {
      onData(value) {
        emit({ sub: name, kind: 'data', id: value.id, data: value.data });
      },
      onConnectionStateChange(state) {
        emit({
          sub: name,
          kind: 'state',
          state: state.state,
          error: state.error ? String(state.error.message ?? state.error) : null,
        });
      },
      onError(error) {
        emit({ sub: name, kind: 'error', message: error.message, code: error.data?.code ?? null });
        resolve();
      },
      onComplete() {
        emit({ sub: name, kind: 'complete' });
        resolve();
      },
    });
  });
}

const scenario = await readStdin();
await Promise.all(scenario.subscriptions.map((s) => follow(scenario.url, s)));
process.exit(0);
