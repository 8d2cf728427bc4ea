"""SIGINT/SIGTERM during a run: stop at the next round boundary, with a checkpoint.

The handler only sets a flag; a thread passes it to the coordinator (no Ray call inside a
signal handler), whose ``stop_after`` gives every rank the same round to stop after. A second
signal stops at once (KeyboardInterrupt), as a user pressing Ctrl-C twice expects."""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Context manager around training; ``signum`` is the signal received, if any."""

    def __init__(self, coord, echo: bool = True):
        self.coord, self.echo = coord, echo
        self.signum: int | None = None
        self.event = threading.Event()
        self.saved: dict[int, object] = {}
        self.thread = threading.Thread(target=self._forward, daemon=True)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the second one: stop now
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"skillit-ray: {signal.Signals(signum).name}: stopping after the current round, "
            "with a checkpoint (send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        self.event.set()

    def _forward(self) -> None:
        import ray

        self.event.wait()
        if self.signum is not None:
            ray.get(self.coord.request_stop.remote())

    def _restore(self) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
        self.saved = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # handlers live there only
            for sig in SIGNALS:
                self.saved[sig] = signal.signal(sig, self._handle)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
        self.event.set()  # ends the thread when no signal came
