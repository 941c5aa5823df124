"""Hands the process's stop signals (SIGTERM, SIGINT) to the app before uvicorn acts on them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

_SignalHandler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` in the event loop as soon as the process is told to stop.

    uvicorn takes SIGTERM and SIGINT before the lifespan starts, but tells the app only at
    lifespan shutdown, after it has waited for open connections to close: a stream would be
    cut, not ended. So its handlers are wrapped; each still does what it did. A signal left
    to its default (outside uvicorn) keeps its default.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    loop = asyncio.get_running_loop()

    def then(previous: _SignalHandler) -> _SignalHandler:
        def handler(signum: int, frame: FrameType | None) -> None:
            # A signal handler interrupts the loop anywhere: hand the callback to the loop.
            # A loop already closed (an app stopped earlier in this process) has no streams.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)
            previous(signum, frame)

        return handler

    wrapped: list[tuple[signal.Signals, _SignalHandler, _SignalHandler]] = []
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(stop_signal)
        if callable(previous):
            handler = then(previous)
            signal.signal(stop_signal, handler)
            wrapped.append((stop_signal, previous, handler))
    try:
        yield
    finally:
        for stop_signal, previous, handler in wrapped:
            if signal.getsignal(stop_signal) is handler:
                signal.signal(stop_signal, previous)
