"""The session status machine of DESIGN.md 4: every listed transition works, nothing else does.

SCHEDULED -> ACTIVE | CANCELLED; ACTIVE <-> PAUSED; ACTIVE/PAUSED -> ENDED | CANCELLED |
CONVERTED; ENDED -> CONVERTED | CANCELLED; CONVERTED and CANCELLED are final. CONVERTED is
reached only through endSession with convertToOrder.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import Rpc
from tests.factories import STATUSES, Room, Shop, refusal

ALLOWED = {
    ("SCHEDULED", "ACTIVE"),
    ("SCHEDULED", "CANCELLED"),
    ("ACTIVE", "PAUSED"),
    ("PAUSED", "ACTIVE"),
    ("ACTIVE", "ENDED"),
    ("ACTIVE", "CANCELLED"),
    ("ACTIVE", "CONVERTED"),
    ("PAUSED", "ENDED"),
    ("PAUSED", "CANCELLED"),
    ("PAUSED", "CONVERTED"),
    ("ENDED", "CONVERTED"),
    ("ENDED", "CANCELLED"),
}
REFUSED = {
    current: [t for t in STATUSES if (current, t) not in ALLOWED]
    # Converting a converted session again is conversion's idempotent CONFLICT, tested with
    # conversion (test_credit_and_conversion.py), not a refused transition.
    for current in STATUSES
}
REFUSED["CONVERTED"].remove("CONVERTED")


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{a}->{b}" for a, b in pairs]


@pytest.fixture
def shop(rpc: Rpc) -> Shop:
    return Shop(rpc)


async def _move(shop: Shop, room: Room, target: str) -> None:
    """Ask for a transition the way a staff console would: CONVERTED only via endSession."""
    if target == "CONVERTED":
        await shop.end(room, convert=True)
    else:
        await shop.set_status(room, target)


async def _end_without_conversion(shop: Shop, room: Room, target: str) -> None:
    await shop.end(room)


async def _session_in(shop: Shop, status: str) -> Room:
    return await shop.session_in(status, await shop.customer(), await shop.stock())


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED), ids=_ids(sorted(ALLOWED)))
async def test_a_transition_in_the_table_is_allowed(shop: Shop, current: str, target: str) -> None:
    room = await _session_in(shop, current)

    await _move(shop, room, target)

    assert await shop.status(room) == target


@pytest.mark.parametrize("current", STATUSES)
async def test_every_other_transition_is_refused_naming_both_states(
    shop: Shop, current: str
) -> None:
    # A refused transition changes nothing, so one session tries every target in turn.
    room = await _session_in(shop, current)

    attempts = [(target, _move) for target in REFUSED[current]]
    if "ENDED" in REFUSED[current]:
        attempts.append(("ENDED", _end_without_conversion))
    for target, move in attempts:
        failure = await refusal(move(shop, room, target))

        assert failure.code == "PRECONDITION_FAILED", target
        assert current in failure.error["message"], target
        assert target in failure.error["message"], target
        assert await shop.status(room) == current, target


@pytest.mark.parametrize("current", ["ACTIVE", "PAUSED"])
async def test_end_session_without_conversion_ends_an_open_session(
    shop: Shop, current: str
) -> None:
    room = await _session_in(shop, current)

    assert (await shop.end(room))["status"] == "ENDED"
    assert await shop.status(room) == "ENDED"


@pytest.mark.parametrize("current", ["ACTIVE", "PAUSED", "ENDED"])
async def test_converted_is_reached_only_through_end_session(shop: Shop, current: str) -> None:
    room = await _session_in(shop, current)

    failure = await refusal(shop.set_status(room, "CONVERTED"))

    assert failure.code == "PRECONDITION_FAILED"
    assert await shop.status(room) == current
    assert await shop.rpc.staff("orders.list", {}) == []


@pytest.mark.parametrize("current", ["CONVERTED", "CANCELLED"])
async def test_cancel_session_cannot_reopen_a_final_session(shop: Shop, current: str) -> None:
    room = await _session_in(shop, current)

    failure = await refusal(shop.rpc.staff("liveShopping.cancelSession", {"sessionId": room.id}))

    assert failure.code == "PRECONDITION_FAILED"
    assert await shop.status(room) == current


# --- creation ---------------------------------------------------------------------------------


async def test_a_session_scheduled_in_the_future_is_created_scheduled(shop: Shop) -> None:
    room = await shop.session(await shop.customer(), starts_in=timedelta(hours=2))

    session = (await shop.get(room))["session"]

    assert session["status"] == "SCHEDULED"
    assert session["startedAt"] is None


@pytest.mark.parametrize("starts_in", [None, timedelta(minutes=-5)], ids=["unscheduled", "past"])
async def test_a_session_without_a_future_start_is_created_active(
    shop: Shop, starts_in: timedelta | None
) -> None:
    room = await shop.session(await shop.customer(), starts_in=starts_in)

    session = (await shop.get(room))["session"]

    assert session["status"] == "ACTIVE"
    assert session["startedAt"] is not None


async def test_starting_a_scheduled_session_stamps_its_start(shop: Shop) -> None:
    room = await shop.session(await shop.customer(), starts_in=timedelta(hours=2))

    session = (await shop.set_status(room, "ACTIVE"))["session"]

    assert session["status"] == "ACTIVE"
    assert session["startedAt"] is not None


@pytest.mark.parametrize("target", ["ENDED", "CANCELLED"])
async def test_closing_a_session_stamps_its_end(shop: Shop, target: str) -> None:
    room = await shop.session(await shop.customer())

    session = (await shop.set_status(room, target))["session"]

    assert session["endedAt"] is not None
