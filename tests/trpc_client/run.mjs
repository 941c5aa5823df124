// Runs calls through the official @trpc/client against a server, for
// tests/test_trpc_client_official.py.
//
// Reads one JSON scenario on stdin:
//   {"url": "http://host:port/trpc", "token": "..." | null,
//    "link": "httpLink" | "httpBatchLink" | "httpBatchStreamLink",
//    "methodOverride": true | false,
//    "calls": [{"type": "query" | "mutation", "path": "a.b", "input"?: ...}, ...]}
// and prints one JSON object on stdout:
//   {"requests": [{method, url, trpcAccept, contentType, body, status, responseContentType}],
//    "results": [{"ok": true, "data": ...} |
//                {"ok": false, "name", "message", "shape", "data"}]}
// The calls are made together, so the batching links put them in one request.
import {
  createTRPCClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
} from '@trpc/client';

const LINKS = { httpLink, httpBatchLink, httpBatchStreamLink };

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function procedureAt(client, path) {
  return path.split('.').reduce((node, segment) => node[segment], client);
}

function outcomeOf(settled) {
  if (settled.status === 'fulfilled') return { ok: true, data: settled.value ?? null };
  const error = settled.reason;
  return {
    ok: false,
    name: error?.name ?? null,
    message: error?.message ?? String(error),
    // TRPCClientError: the error object the server sent, and its `data`.
    shape: error?.shape ?? null,
    data: error?.data ?? null,
  };
}

const scenario = await readStdin();
const requests = [];

async function recordingFetch(url, init = {}) {
  const headers = init.headers ?? {};
  const response = await fetch(url, init);
  requests.push({
    method: init.method ?? 'GET',
    url: String(url),
    trpcAccept: headers['trpc-accept'] ?? null,
    contentType: headers['content-type'] ?? null,
    body: typeof init.body === 'string' ? init.body : null,
    status: response.status,
    responseContentType: response.headers.get('content-type'),
  });
  return response;
}

const makeLink = LINKS[scenario.link];
if (!makeLink) throw new Error(`unknown link ${scenario.link}`);
const client = createTRPCClient({
  links: [
    makeLink({
      url: scenario.url,
      fetch: recordingFetch,
      headers: () => (scenario.token ? { authorization: `Bearer ${scenario.token}` } : {}),
      ...(scenario.methodOverride ? { methodOverride: 'POST' } : {}),
    }),
  ],
});

const settled = await Promise.allSettled(
  scenario.calls.map((call) => {
    const procedure = procedureAt(client, call.path);
    // No "input" key: called with no argument, as `.query()` is.
    const args = 'input' in call ? [call.input] : [];
    return call.type === 'mutation'
      ? procedure.mutate(...args)
      : procedure.query(...args);
  }),
);

process.stdout.write(JSON.stringify({ requests, results: settled.map(outcomeOf) }));
