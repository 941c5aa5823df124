// A frontend following a live session through the generated client maker (clients/typescript/
// trpc.ts): a stream ticket as its credentials, `onData` typed by the AppRouter, each event told
// apart by `data.type`. tests/test_typed_clients.py compiles it with program.ts and runs `run`
// against a real server (run.mjs passes the EventSource class where Node has none).
import { createLiveShoppingClient } from "../../clients/typescript/trpc.js";
import { describe } from "./program.js";

export interface LiveScenario {
  url: string; // the tRPC endpoint, http://127.0.0.1:<port>/trpc
  staffToken: string;
  clientId: number;
  batchId: number;
}

export interface LiveOutcome {
  seen: string[]; // "<id> <type>: <what describe() says>"
  withoutCredentials: string; // the error code of a subscription opened without streamParams
}

export async function run(s: LiveScenario, EventSource?: typeof globalThis.EventSource) {
  const options = EventSource ? { EventSource } : {};
  const staff = createLiveShoppingClient(s.url, s.staffToken);
  const { sessionId } = await staff.liveShopping.createSession.mutate({ clientId: s.clientId });
  const follower = createLiveShoppingClient(s.url, s.staffToken, {
    ...options,
    async streamParams() {
      const { ticket } = await staff.liveShopping.createStreamTicket.query({ sessionId });
      return { ticket };
    },
  });

  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const subscription = follower.liveShopping.onSessionEvent.subscribe(
      { sessionId },
      {
        onData(event) {
          seen.push(`${event.id} ${event.data.type}: ${describe(event.data)}`);
          if (event.data.type === "SESSION_SNAPSHOT") {
            // Only once the stream is open, so the change is sure to arrive on it.
            staff.liveShopping.addToCart
              .mutate({ sessionId, batchId: s.batchId, quantity: "1.5" })
              .catch(reject);
          } else if (event.data.type === "CART_UPDATED") {
            subscription.unsubscribe();
            resolve();
          }
        },
        onError: reject,
      },
    );
  });

  // The bearer token never goes in a stream's URL: without streamParams there are no credentials.
  const withoutCredentials = await new Promise<string>((resolve) => {
    const bare = createLiveShoppingClient(s.url, s.staffToken, options);
    const subscription = bare.liveShopping.onSessionEvent.subscribe(
      { sessionId },
      {
        onData(event) {
          subscription.unsubscribe();
          resolve(`data ${event.data.type}`);
        },
        onError(error) {
          subscription.unsubscribe();
          resolve(error.data?.code ?? error.message);
        },
      },
    );
  });
  const outcome: LiveOutcome = { seen, withoutCredentials };
  return outcome;
}
