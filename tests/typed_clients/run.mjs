// Runs the compiled program.ts against a server, for tests/test_typed_clients.py: reads the
// scenario (JSON) on stdin and prints what `run(scenario)` returns (JSON) on stdout.
// Usage: node run.mjs <path of the compiled program.js>
import { pathToFileURL } from 'node:url';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const scenario = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const program = await import(pathToFileURL(process.argv[2]).href);
process.stdout.write(JSON.stringify(await program.run(scenario)));
