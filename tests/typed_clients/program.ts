// A frontend typed by the generated AppRouter (clients/typescript/trpc.ts), with no glue.
//
// tests/test_typed_clients.py type-checks it with `tsc --strict --noEmit`: each
// `@ts-expect-error` line below must really be an error, or tsc fails ("Unused
// '@ts-expect-error' directive"). It then compiles it and runs `run` against a real server
// (run.mjs reads the scenario and prints what `run` returns).
import { TRPCClientError, createTRPCClient, httpLink } from "@trpc/client";

import type {
  Cart,
  RoomEvent,
  SessionEvent,
  SessionStatus,
} from "../../clients/typescript/live-shopping.js";
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

// What a staff console shows of each event: the switch covers every type of the staff stream,
// each case narrowed to its own data, and `never` proves no type is left out.
export function describe(event: SessionEvent): string {
  switch (event.type) {
    case "SESSION_SNAPSHOT":
      return event.reset ? "state replaced" : `session ${event.session.id}`;
    case "SESSION_STATUS":
      return `${event.change.before?.status ?? "new"} -> ${event.change.after.status}`;
    case "CART_UPDATED":
      return `line ${event.change.subject.cartItemId}: ${event.change.after?.quantity ?? "removed"}`;
    case "HIGHLIGHTED":
      return `showing batch ${event.change.after.batchId ?? "none"}`;
    case "PRICE_CHANGED":
      return `${event.change.before.unitPrice} -> ${event.change.after.unitPrice}`;
    case "CHECKOUT_REQUESTED":
      return `checkout asked at ${event.change.after.requestedAt}`;
    case "CHECKOUT_ANSWERED":
      return event.change.after.accepted ? "accepted" : (event.change.after.message ?? "declined");
    case "SESSION_CONVERTED":
      return `order ${event.change.subject.orderId} of ${event.change.after.total}`;
    case "SALES_SHEET_READY":
      return event.change.after.shareUrl;
    case "SESSION_TIMEOUT":
      return `timed out at ${event.change.after.holdsExpireAt}`;
    case "SESSION_UPDATED":
      return event.change.after.internalNotes ?? event.session.title ?? "";
    case "HOLDS_EXTENDED":
      return `holds until ${event.change.after.holdsExpireAt}`;
    case "HOLDS_EXPIRING":
      return `holds expire at ${event.change.after.holdsExpireAt}`;
    case "PRESENCE":
      return event.change.after.client ? "client here" : "client away";
    default: {
      const unknown: never = event;
      return unknown;
    }
  }
}

// A frontend following a live session: `onData` gets tracked events, `{ id, data }`, with `id`
// the last event to resume from and `data` one of the stream's typed events. (Typed here; the
// streams themselves run in tests/test_trpc_client_official.py.)
export function follow(client: LiveShoppingClient, sessionId: number, seen: string[]): () => void {
  const subscription = client.liveShopping.onSessionEvent.subscribe(
    { sessionId },
    {
      onData(event) {
        const id: string = event.id;
        seen.push(`${id}: ${describe(event.data)}`);
      },
    },
  );
  return () => subscription.unsubscribe();
}

export function watchRoom(client: LiveShoppingClient, roomCode: string, onCart: (c: string) => void) {
  return client.vipPortalLiveShopping.onRoomEvent.subscribe(
    { roomCode, lastEventId: "12" },
    {
      onData({ data }: { id: string; data: RoomEvent }) {
        if (data.type === "CART_UPDATED") onCart(data.cart.subtotal);
      },
    },
  );
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

  client.liveShopping.onSessionEvent.subscribe(
    { sessionId },
    {
      onData({ data }) {
        if (data.type === "HIGHLIGHTED") {
          // @ts-expect-error - a field of another event type (PRICE_CHANGED's) on a HIGHLIGHTED event
          void data.change.after.unitPrice;
        }
        if (data.type === "CART_UPDATED") {
          // @ts-expect-error - an event type the staff stream does not send
          if (data.type === "CART_CHANGED") return;
        }
      },
    },
  );

  client.vipPortalLiveShopping.onRoomEvent.subscribe(
    { roomCode: "ABC123" },
    {
      onData({ data }) {
        // @ts-expect-error - the client's events never carry the internal notes
        void data.session.internalNotes;
      },
    },
  );

  // @ts-expect-error - a subscription has no .query
  await client.liveShopping.onSessionEvent.query({ sessionId });

  // @ts-expect-error - onRoomEvent needs its roomCode
  client.vipPortalLiveShopping.onRoomEvent.subscribe({ sessionId }, {});

  void subtotal;
}
