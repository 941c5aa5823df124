// A frontend typed by the generated AppRouter (clients/typescript/trpc.ts), with no glue.
//
// tests/test_typed_clients.py type-checks it with `tsc --strict --noEmit`: each
// `@ts-expect-error` line below must really be an error, or tsc fails ("Unused
// '@ts-expect-error' directive"). It then compiles it and runs `run` against a real server
// (run.mjs reads the scenario and prints what `run` returns).
import { TRPCClientError, createTRPCClient, httpLink } from "@trpc/client";

import type { Cart, SessionStatus } from "../../clients/typescript/live-shopping.js";
import { createLiveShoppingClient } from "../../clients/typescript/trpc.js";
import type { AppRouter, LiveShoppingClient } from "../../clients/typescript/trpc.js";

export interface Scenario {
  url: string; // the tRPC endpoint, http://127.0.0.1:<port>/trpc
  staffToken: string;
  clientToken: string;
  clientId: number;
  batchId: number;
}

export interface Outcome {
  health: string;
  sessionStatus: SessionStatus;
  subtotal: string;
  quantities: string[];
  activeSessionId: number | null;
  notFoundCode: string | null;
  notFoundHttpStatus: number | null;
}

export async function run(scenario: Scenario): Promise<Outcome> {
  const staff = createLiveShoppingClient(scenario.url, scenario.staffToken);
  // A token read before each request, as an app with refreshed tokens passes it.
  const vip = createLiveShoppingClient(scenario.url, () => scenario.clientToken);

  // No input at all where the procedure has none, or none required.
  const health = await staff.system.health.query();
  await staff.liveShopping.listSessions.query();

  const created = await staff.liveShopping.createSession.mutate({ clientId: scenario.clientId });
  const sessionId: number = created.sessionId;
  // Decimals go out as numbers or strings, and come back as strings.
  await staff.liveShopping.addToCart.mutate({ sessionId, batchId: scenario.batchId, quantity: 2 });
  const cart: Cart = await staff.liveShopping.addToCart.mutate({
    sessionId,
    batchId: scenario.batchId,
    quantity: "0.5",
    isSample: true,
  });
  const { session } = await staff.liveShopping.getSession.query({ sessionId });
  const status: SessionStatus = session.status;

  const active = await vip.vipPortalLiveShopping.getActiveSession.query();

  let notFound: TRPCClientError<AppRouter> | null = null;
  try {
    await staff.liveShopping.getSession.query({ sessionId: 987654321 });
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    notFound = error as TRPCClientError<AppRouter>;
  }

  return {
    health: health.status,
    sessionStatus: status,
    subtotal: cart.subtotal,
    quantities: cart.items.map((line) => line.quantity),
    activeSessionId: active.session?.id ?? null,
    notFoundCode: notFound?.data?.code ?? null,
    notFoundHttpStatus: notFound?.data?.httpStatus ?? null,
  };
}

// Never called: each line shows a mistake the types refuse.
export async function refusedByTheTypes(client: LiveShoppingClient): Promise<void> {
  const sessionId = 1;

  // @ts-expect-error - a field addToCart does not take
  await client.liveShopping.addToCart.mutate({ sessionId, batchId: 2, quantity: 1, colour: "red" });

  // @ts-expect-error - a required param left out
  await client.liveShopping.addToCart.mutate({ sessionId, quantity: 1 });

  // @ts-expect-error - a procedure the router does not have
  await client.liveShopping.deleteEverything.mutate({ sessionId });

  // @ts-expect-error - a mutation has no .query
  await client.liveShopping.addToCart.query({ sessionId, batchId: 2, quantity: 1 });

  // @ts-expect-error - a query has no .mutate
  await client.liveShopping.getSession.mutate({ sessionId });

  // @ts-expect-error - getSession needs its sessionId
  await client.liveShopping.getSession.query();

  // @ts-expect-error - a status that does not exist
  await client.liveShopping.updateSessionStatus.mutate({ sessionId, status: "LIVE" });

  const cart = await client.liveShopping.getSession.query({ sessionId });
  // @ts-expect-error - a decimal result is a string, not a number
  const subtotal: number = cart.cart.subtotal;

  const raw = createTRPCClient<AppRouter>({ links: [httpLink({ url: "http://127.0.0.1/trpc" })] });
  // @ts-expect-error - the same on a client made with createTRPCClient<AppRouter> directly
  await raw.orders.get.query({ orderId: "7" });

  void subtotal;
}
