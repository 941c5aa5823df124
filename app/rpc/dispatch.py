"""Runs one procedure call: lookup, authentication, role guard, params, unit of work."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError

from app.domain.actors import Actor, Role
from app.domain.users import ensure_user
from app.rpc.context import CallContext, UnitOfWork
from app.rpc.errors import ErrorCode, Issue, RpcError, error_from_exception
from app.rpc.registry import Feature, Kind, Procedure, Registry
from app.rpc.validation import decimal_issues
from app.runtime import Services

log = logging.getLogger("app.rpc")

_encoder = msgspec.json.Encoder(decimal_format="string")
_EMPTY_PARAMS = b"{}"


@dataclass(slots=True)
class Outcome:
    """The result of one call: encoded JSON result, or an error."""

    result: bytes | None = None
    error: RpcError | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """What the transport knows about who is calling."""

    authorization: str | None
    request_id: str
    base_url: str = ""


class Dispatcher:
    def __init__(self, services: Services, registry: Registry) -> None:
        self.services = services
        features = [Feature.LIVE_SHOPPING] if services.settings.live_shopping_enabled else []
        self.registry = registry.enabled(features)
        # user id -> (role, client id) this process last wrote to that user's row, so a token
        # whose claims differ from it (even ones seen before: A -> B -> A) is written again.
        # Bounded so it cannot grow forever.
        self._known_users: OrderedDict[int, tuple[Role, int | None]] = OrderedDict()

    def lookup(self, method: str) -> Procedure:
        procedure = self.registry.get(method)
        if procedure is None:
            raise RpcError(ErrorCode.METHOD_NOT_FOUND, f"No procedure named {method!r}")
        return procedure

    async def call(
        self, method: str, params: bytes | None, caller: Caller, *, require_query: bool = False
    ) -> Outcome:
        try:
            procedure = self.lookup(method)
            if procedure.kind is Kind.SUBSCRIPTION:
                raise RpcError(
                    ErrorCode.METHOD_NOT_FOUND,
                    f"{method} is a subscription, a stream of events: open it with GET "
                    f"/trpc/{method} (tRPC's httpSubscriptionLink) or as one of the SSE "
                    "streams under /api/sse",
                )
            if require_query and procedure.kind is not Kind.QUERY:
                raise RpcError(ErrorCode.BAD_REQUEST, f"{method} is a mutation; call it with POST")
            actor = await self._authorize(procedure, caller)
            value = self._decode_params(procedure, params)
            return Outcome(result=await self._run(procedure, value, actor, caller))
        except Exception as exc:
            error = error_from_exception(exc)
            if error is None:
                log.exception("internal error in %s (request %s)", method, caller.request_id)
                error = RpcError(
                    ErrorCode.INTERNAL_SERVER_ERROR,
                    f"Internal error; quote request id {caller.request_id}",
                    extra={"requestId": caller.request_id},
                )
            return Outcome(error=error)

    async def _authorize(self, procedure: Procedure, caller: Caller) -> Actor | None:
        if procedure.roles is None:
            return None
        actor = self.services.tokens.authenticate(caller.authorization)
        if actor.role not in procedure.roles:
            raise RpcError(ErrorCode.FORBIDDEN, f"Role {actor.role} may not call {procedure.name}")
        await self._remember_user(actor)
        return actor

    async def _remember_user(self, actor: Actor) -> None:
        claims = (actor.role, actor.client_id)
        if self._known_users.get(actor.user_id) == claims:
            self._known_users.move_to_end(actor.user_id)
            return
        async with self.services.db.write_sessions() as session:
            try:
                await ensure_user(session, actor)
                await session.commit()
            except IntegrityError:
                # Another request created the same user first, perhaps with other claims:
                # leave it uncached so the next call compares and refreshes the row.
                await session.rollback()
                return
        self._known_users[actor.user_id] = claims
        self._known_users.move_to_end(actor.user_id)
        if len(self._known_users) > 10_000:
            self._known_users.popitem(last=False)

    @staticmethod
    def _decode_params(procedure: Procedure, params: bytes | None) -> Any:
        try:
            value = procedure.decoder.decode(params or _EMPTY_PARAMS)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `")
            issue = Issue(path=path.rstrip("`") or "$", message=message)
            raise RpcError(
                ErrorCode.INVALID_PARAMS, f"Invalid params: {exc}", issues=[issue]
            ) from None
        except msgspec.DecodeError as exc:
            raise RpcError(ErrorCode.PARSE_ERROR, f"Params are not valid JSON: {exc}") from None
        issues = decimal_issues(value, params or _EMPTY_PARAMS)
        if issues:
            summary = "; ".join(f"{i.message} at {i.path}" for i in issues)
            raise RpcError(ErrorCode.INVALID_PARAMS, f"Invalid params: {summary}", issues=issues)
        return value

    async def _run(
        self, procedure: Procedure, params: Any, actor: Actor | None, caller: Caller
    ) -> bytes:
        db = self.services.db
        sessions = db.write_sessions if procedure.kind is Kind.MUTATION else db.read_sessions
        uow = UnitOfWork(sessions, self.services.bus)
        ctx = CallContext(
            settings=self.services.settings,
            services=self.services,
            registry=self.registry,
            uow=uow,
            request_id=caller.request_id,
            maybe_actor=actor,
            base_url=caller.base_url,
        )
        try:
            result = await procedure.handler(ctx, params)
            await uow.commit()
        finally:
            await uow.close()
        return _encoder.encode(result)
