"""An asyncio event loop on a daemon thread: the MCP SDK is async, the agent loop is not.

Every MCP connection lives as a task on this loop; the agent's threads hand it coroutines and
wait for their results with a timeout (and, for a tool call, a cancel event: Ctrl-C).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

POLL = 0.1  # seconds between looks at a cancel event while waiting


class Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine, timeout: float,
            cancel: threading.Event | None = None) -> Any:
        """`coro`'s result; TimeoutError after `timeout` seconds, KeyboardInterrupt once
        `cancel` is set (the coroutine is cancelled either way)."""
        future = self.submit(coro)
        try:
            return self._wait(future, timeout, cancel)
        except BaseException:  # a timeout, a cancel, or Ctrl-C on this thread
            future.cancel()
            raise

    @staticmethod
    def _wait(future: concurrent.futures.Future, timeout: float,
              cancel: threading.Event | None) -> Any:
        waited = 0.0
        while True:
            try:
                return future.result(timeout=min(POLL, max(timeout - waited, 0)))
            except concurrent.futures.TimeoutError:
                waited += POLL
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt from None
                if waited >= timeout:
                    raise TimeoutError(f"no answer within {timeout:g} s") from None

    def call_soon(self, fn, *args) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
