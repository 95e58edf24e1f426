"""Quiet by default: a command shows its own progress bars and summary, and Ray's own
lines only with --verbose.

Ray speaks through four channels, each switched off at its source when not verbose:

- the driver's Python loggers `ray` (start-up lines, Ray Train's driver side) and
  `ray.data` (execution plans, "Progress bars disabled"), each with a console handler
  of its own: shown from ERROR up (`set_console_logging`); log files keep every line;
- Ray Data's progress lines (`DataContext.enable_progress_bars`);
- what every worker and actor prints, which the driver relays with a "(Name pid=…)"
  prefix — Ray Train's controller lines, the "Failed to query Ray Train Controller actor
  state" warnings of its placement-group cleaner when the dashboard is off, "(raylet)"
  notices: `ray.init(log_to_driver=False)`; they stay in the session's logs/ folder;
- the core's C++ log, which echoes errors to the driver's stderr, e.g. "Actor … has
  constructor arguments in the object store and max_restarts > 0" for every Ray Data
  actor pool (ray-project/ray#57733, harmless): `RAY_BACKEND_LOG_LEVEL=fatal` while
  `ray.init` runs (`quiet_start`). An embedded local Ray inherits it, so its raylet and
  workers log only fatal C++ errors to their files; --verbose (or setting the variable)
  keeps all.

A worker's own output (the training bar of rank 0) then reaches the driver as a driver-side
bar instead: `StepBar` (driver) and `RemoteBar` (worker), through a small actor.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

VERBOSE_ENV = "PLUREL_RAY_VERBOSE"
_CORE_LOG_LEVEL_ENV = "RAY_BACKEND_LOG_LEVEL"
_QUIET_CORE_LOG_LEVEL = "fatal"
_QUIET_LOGGERS = ("ray", "ray.data")  # `ray.data` does not propagate to `ray`
_BAR_POLL_S = 0.5


def verbose() -> bool:
    """Whether this process shows Ray's own lines: --verbose was given (it sets
    $PLUREL_RAY_VERBOSE, so a subprocess inherits the choice) or the variable is set."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def quiet_start(verbose: bool) -> Iterator[None]:
    """Around `ray.init`: the core's C++ log records only fatal errors unless `verbose`
    or the user set RAY_BACKEND_LOG_LEVEL, and what Ray prints on this process's stderr
    while it starts (the C++ log's own "Set ray log level" line) is held back, and
    shown only if the start fails.

    Args:
        verbose: change nothing.
    """
    if verbose or _CORE_LOG_LEVEL_ENV in os.environ:
        yield
        return
    os.environ[_CORE_LOG_LEVEL_ENV] = _QUIET_CORE_LOG_LEVEL
    sys.stderr.flush()
    stderr = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore_stderr(stderr)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.environ.pop(_CORE_LOG_LEVEL_ENV, None)
        _restore_stderr(stderr)


def _restore_stderr(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def set_console_logging(verbose: bool) -> None:
    """Show Ray's driver-side log records on the console from INFO (verbose) or only
    from ERROR; handlers that write files keep every record.

    Args:
        verbose: the level to show: INFO when True, ERROR when False.
    """
    import ray.data  # noqa: F401  (configures the `ray.data` logger and its handlers)
    from ray._private.log import PlainRayHandler

    level = logging.INFO if verbose else logging.ERROR
    for name in _QUIET_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PlainRayHandler):  # Ray's console handler
                handler.setLevel(level)


def _new_step_board():
    import ray

    @ray.remote(num_cpus=0)
    class StepBoard:
        """Rank 0's step count and bar text, written by the worker, read by the driver."""

        def __init__(self) -> None:
            self.state: dict[str, Any] = {"total": None, "n": 0, "postfix": ""}

        def post(self, **fields: Any) -> None:
            self.state.update(fields)

        def read(self) -> dict[str, Any]:
            return self.state

    return StepBoard.remote()


class RemoteBar:
    """A tqdm-like bar in a Ray worker whose every update goes to the driver's `StepBar`
    (fire and forget: a step never waits on the driver).

    Args:
        board: the `StepBar.board` actor handle.
        total, initial: as tqdm's (steps of the run, the step it resumes after).
        disable: show nothing (ranks other than 0, or progress off).
        options: tqdm's other keywords, ignored (the driver's bar has its own).
    """

    def __init__(self, board, *, total: int | None = None, initial: int = 0,
                 disable: bool = False, **options: Any) -> None:  # fmt: skip
        self._board = None if disable else board
        self.n = initial
        if self._board is not None:
            self._board.post.remote(total=total, n=initial)

    @staticmethod
    def factory(board) -> Callable[..., RemoteBar]:
        """`train_loop`'s `bar_factory` for a worker posting to `board`.

        Args:
            board: the `StepBar.board` actor handle.
        """
        return lambda **options: RemoteBar(board, **options)

    def update(self, n: int = 1) -> None:
        """Advance by `n` steps."""
        self.n += n
        if self._board is not None:
            self._board.post.remote(n=self.n)

    def set_postfix(self, **values: Any) -> None:
        """Show `values` (loss, tokens/s) after the bar."""
        if self._board is not None:
            self._board.post.remote(postfix=", ".join(f"{k}={v}" for k, v in values.items()))

    def close(self) -> None:
        """Wait until the board holds every update (one caller's calls run in order), so
        that the driver's last look at it, once training returns, shows the final step."""
        if self._board is not None:
            import ray

            ray.get(self._board.post.remote())


class StepBar:
    """The driver's bar of a Ray Train run: a thread polls the actor rank 0's
    `RemoteBar` posts to. Use as a context manager around `trainer.fit()`.

    Args:
        desc: the bar's label.
        enabled: show a bar (on a terminal, like every bar of the project); when False
            `board` is None and workers show nothing.
    """

    def __init__(self, desc: str, *, enabled: bool = True) -> None:
        self.desc = desc
        self.board = _new_step_board() if enabled else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StepBar:
        if self.board is not None:
            self._thread = threading.Thread(target=self._follow, name="plurel-step-bar",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.board is not None:
            import ray

            ray.kill(self.board)

    def _follow(self) -> None:
        import ray
        from tqdm import tqdm

        bar = tqdm(desc=self.desc, unit="step", file=sys.stderr, disable=None)
        try:
            while True:
                stopping = self._stop.wait(_BAR_POLL_S)
                try:
                    state = ray.get(self.board.read.remote(), timeout=10)
                except (ray.exceptions.RayError, TimeoutError):
                    state = None  # the bar is cosmetic: a slow read skips one update
                if state is not None:
                    if state["total"] is not None and bar.total != state["total"]:
                        # The clock starts when rank 0 starts training, not with the worker
                        # group's start-up (tens of seconds): steps/s means what it says.
                        bar.reset(total=state["total"])
                        bar.initial = state["n"]
                    bar.n = state["n"]
                    bar.set_postfix_str(state["postfix"], refresh=False)
                    bar.refresh()
                if stopping:
                    return
        finally:
            bar.close()
