"""The driver's signal handler where Python cannot raise (harness.interrupt): a SIGINT whose
``Interrupted`` lands in a ``__del__`` is not printed as a traceback, and the launch still stops
before Tune starts a trial (the CI failure of test_signals' first-second case)."""
import gc
import os
import signal
import sys

import pytest

from harness import interrupt


@pytest.fixture
def unraisable(monkeypatch):
    """What reaches the hook before harness's (Python's own prints "Exception ignored" and a traceback)."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(unraisable.exc_value))
    return seen


@pytest.fixture
def stops(unraisable):
    interrupt.STOPS.reset()
    interrupt.STOPS.install()
    yield interrupt.STOPS
    interrupt.STOPS.reset()


class _SignalledInDel:
    """An object whose finalizer is where a real SIGINT is delivered to the handler."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, before kill returns to Python code


def test_a_signal_python_cannot_raise_is_kept_silently_and_raised_before_tune(stops, unraisable):
    obj = _SignalledInDel()
    del obj  # the Interrupted raised in __del__ is "unraisable"
    gc.collect()
    assert unraisable == []  # nothing printed
    assert stops.reason == "SIGINT" and stops.exit_code == 130
    with pytest.raises(interrupt.Interrupted) as raised:
        with stops.during_tune():
            pytest.fail("Tune must not start after a signal before it")
    assert raised.value.reason == "SIGINT"
    assert stops.phase == "before"


def test_other_unraisable_exceptions_still_reach_the_previous_hook(stops, unraisable):
    class Broken:
        def __del__(self):
            raise ValueError("a real bug in a finalizer")

    obj = Broken()
    del obj
    gc.collect()
    assert [str(e) for e in unraisable] == ["a real bug in a finalizer"]
    assert stops.reason is None


def test_uninstall_gives_the_previous_hook_back(stops):
    assert sys.unraisablehook == stops._unraisable_hook
    stops.uninstall()
    assert sys.unraisablehook is not stops._unraisable_hook
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
