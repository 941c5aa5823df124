"""Source of the generated `clients/typescript/trpc.ts`: the `AppRouter` type and a client maker.

The service is not a TypeScript program, so there is no `typeof appRouter` to export. The router
type is written instead with @trpc/server's own public types (`TRPCBuiltRouter` over
`TRPCQueryProcedure`, ...), exactly the shape `t.router({...})` would have, so that
`createTRPCClient<AppRouter>` infers every input, output and error with no glue. Params and
results come from the `Procedures` map of `live-shopping.ts`, so each type is written once.
"""

from __future__ import annotations

import json
import re

from app.codegen.model import Api, CodegenError, ProcedureSpec

TYPES_MODULE = "./live-shopping.js"  # tsc maps the .js of a relative import to the .ts beside it
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_PROCEDURE_TYPES = {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}
# Names a router record may not use: the client proxy or the built router already has them.
_RESERVED = frozenset({"_def", "createCaller", "then", "call", "apply"})

_USAGE = """\
// The tRPC router type of the Live Shopping service (its `/trpc` endpoint), for the official
// `@trpc/client` v11 (which needs `@trpc/server` v11 installed beside it, as its peer):
//
//   import { createLiveShoppingClient } from "./trpc.js";
//   const client = createLiveShoppingClient("https://shop.example/trpc", token);
//   const cart = await client.liveShopping.addToCart.mutate({ sessionId, batchId, quantity: 2 });
//
// or `createTRPCClient<AppRouter>({ links: [...] })` with links of one's own choosing."""

_SHAPES = """\
/** What `err.shape` of a `TRPCClientError` holds; validation problems list `data.issues`. */
export interface LiveShoppingErrorShape extends TRPCDefaultErrorShape {
  data: TRPCDefaultErrorData & { issues?: { path: string; message: string }[] };
}

/** Params, which may be left out (`.query()`) when none is required: the server reads `{}`. */
type Input<P extends ProcedureName> = {} extends ProcedureInput<P>
  ? ProcedureInput<P> | undefined
  : ProcedureInput<P>;

interface Def<P extends ProcedureName> {
  meta: object;
  input: Input<P>;
  output: ProcedureOutput<P>;
  errorShape: LiveShoppingErrorShape;
}"""

# One alias per kind the registry uses (an unused alias fails `noUnusedLocals`).
_KIND_ALIASES = {
    "query": "type Query<P extends ProcedureName> = TRPCQueryProcedure<Def<P>>;",
    "mutation": "type Mutation<P extends ProcedureName> = TRPCMutationProcedure<Def<P>>;",
    "subscription": """\
/** A subscription's event as `httpSubscriptionLink` delivers a tracked one: `id` resumes. */
export interface TrackedEvent<T> {
  id: string;
  data: T;
}

type Subscription<P extends ProcedureName> = TRPCSubscriptionProcedure<
  Omit<Def<P>, "output"> & { output: AsyncIterable<TrackedEvent<ProcedureOutput<P>>> }
>;""",
}

_ROOT = """\
interface Root {
  ctx: object;
  meta: object;
  errorShape: LiveShoppingErrorShape;
  transformer: false; // plain JSON: decimals are strings, times RFC 3339 strings
}"""

_CLIENT_MAKER = """\
/** A typed client of every procedure, as `createTRPCClient<AppRouter>` makes it. */
export type LiveShoppingClient = TRPCClient<AppRouter>;

/** A subscription's credentials, sent as tRPC `connectionParams`: a stream ticket. */
export interface StreamParams {
  ticket: string;
}

export interface LiveShoppingClientOptions {
  /**
   * The credentials of a subscription (`onSessionEvent`, `onRoomEvent`), asked for each time its
   * stream opens or reopens: a fresh ticket from `createStreamTicket` for that stream. They
   * travel in the stream's URL, where the long-lived bearer token must never go, so without
   * this option a subscription is refused (UNAUTHORIZED).
   */
  streamParams?: () => StreamParams | Promise<StreamParams>;
  /** The `EventSource` class where the runtime has none (Node 20: the `eventsource` package). */
  EventSource?: typeof EventSource;
}

/**
 * A client of the service's tRPC endpoint (`url`, such as "https://shop.example/trpc"): calls
 * made in the same tick go in one request, subscriptions follow Server-Sent Events and resume
 * from the last event after a dropped connection. `token` is the bearer token, or a function
 * returning the current one (read before each request, so a refreshed token is used).
 */
export function createLiveShoppingClient(
  url: string,
  token?: string | (() => string | null | undefined),
  options: LiveShoppingClientOptions = {},
): LiveShoppingClient {
  const { streamParams, EventSource } = options;
  const connectionParams = streamParams && (async () => ({ ...(await streamParams()) }));
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: httpSubscriptionLink({
          url,
          ...(EventSource ? { EventSource } : {}),
          ...(connectionParams ? { connectionParams } : {}),
        }),
        false: httpBatchLink({
          url,
          headers() {
            const current = typeof token === "function" ? token() : token;
            return current ? { authorization: `Bearer ${current}` } : {};
          },
        }),
      }),
    ],
  });
}"""


def trpc_router_module(api: Api, header: str) -> str:
    kinds = [k for k in _KIND_ALIASES if any(p.kind == k for p in api.procedures)]
    parts = [
        header.rstrip("\n"),
        _USAGE,
        _imports(kinds),
        _SHAPES,
        *(_KIND_ALIASES[k] for k in kinds),
        _ROOT,
        _router(api.procedures),
        _CLIENT_MAKER,
    ]
    return "\n\n".join(parts) + "\n"


def _imports(kinds: list[str]) -> str:
    server_types = ["TRPCBuiltRouter", "TRPCDefaultErrorData", "TRPCDefaultErrorShape"]
    server_types += [f"TRPC{_PROCEDURE_TYPES[k]}Procedure" for k in kinds]
    listed = "".join(f"  {name},\n" for name in sorted(server_types))
    return (
        "import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } "
        'from "@trpc/client";\n'
        'import type { TRPCClient } from "@trpc/client";\n'
        f'import type {{\n{listed}}} from "@trpc/server";\n'
        "import type { ProcedureInput, ProcedureName, ProcedureOutput } from "
        f"{json.dumps(TYPES_MODULE)};"
    )


def _router(procedures: list[ProcedureSpec]) -> str:
    tree: dict[str, object] = {}
    for p in procedures:
        kind = _PROCEDURE_TYPES.get(p.kind)
        if kind is None:
            raise CodegenError(f"{p.name}: no tRPC procedure type for kind {p.kind!r}")
        *path, leaf = p.name.split(".")
        node = tree
        for segment in path:
            child = node.setdefault(_segment(p, segment), {})
            if not isinstance(child, dict):
                raise CodegenError(f"{p.name}: {segment!r} is both a procedure and a router")
            node = child
        if _segment(p, leaf) in node:
            raise CodegenError(f"{p.name}: {leaf!r} is both a procedure and a router")
        node[leaf] = f"{kind}<{json.dumps(p.name)}>"
    lines = [
        "/** The router `/trpc` serves, as `typeof appRouter` of a tRPC server would be. */",
        "export type AppRouter = TRPCBuiltRouter<",
        "  Root,",
        *_record(tree, indent="  "),
        ">;",
    ]
    return "\n".join(lines)


def _record(node: dict[str, object], *, indent: str) -> list[str]:
    lines = [f"{indent}{{"]
    for key, value in node.items():
        name = key if _IDENTIFIER.match(key) else json.dumps(key)
        if isinstance(value, dict):
            inner = _record(value, indent=indent + "  ")
            lines.append(f"{indent}  {name}: {inner[0].lstrip()}")
            lines += inner[1:-1]
            lines.append(f"{inner[-1]};")
        else:
            lines.append(f"{indent}  {name}: {value};")
    lines.append(f"{indent}}}")
    return lines


def _segment(p: ProcedureSpec, segment: str) -> str:
    if segment in _RESERVED:
        raise CodegenError(f"{p.name}: {segment!r} cannot be a tRPC path segment")
    return segment
