// Runs a compiled program (program.ts, live.ts) against a server, for tests/test_typed_clients.py:
// reads the scenario (JSON) on stdin and prints what `run(scenario, EventSource)` returns (JSON)
// on stdout. EventSource is the runtime's own, or the `eventsource` package's where Node has none.
// Usage: node run.mjs <path of the compiled program>
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const scenario = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const program = await import(pathToFileURL(process.argv[2]).href);
// Found beside the program, as its own imports are (its tree links tests/trpc_client's modules).
const besideProgram = createRequire(process.argv[2]);
const EventSource = globalThis.EventSource ?? loadEventSource();
process.stdout.write(JSON.stringify(await program.run(scenario, EventSource)));

function loadEventSource() {
  try {
    return besideProgram('eventsource').EventSource;
  } catch {
    return undefined; // the program reports what fails without it
  }
}
