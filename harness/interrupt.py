"""How a launch stops: SIGINT, SIGTERM and a store that fails take one path, and the exit code says which.

``Stops`` is the driver's signal handling, installed by the CLI before anything else runs:

* before Tune runs (imports, checks, Ray starting), the first SIGINT or SIGTERM raises ``Interrupted``
  where the driver is; the launch unwinds, closes what it opened (a search's parent run) and prints
  what the store holds;
* while Tune runs (``during_tune``), it asks Tune for its own graceful stop: Tune saves its experiment
  state, stops the trials (each keeps its last checkpoint) and returns; the driver then closes their
  runs and reads the summary back from the store. Tune's SIGINT handler is switched off
  (``TUNE_DISABLE_SIGINT_HANDLER``, a documented Tune variable) so every signal reaches this handler,
  which reaches Tune through the SIGUSR1 handler Tune registers for the same stop;
* a second or third signal while stopping only says so: the state and the runs are being written,
  and cutting that short is what left runs RUNNING before.

Python cannot raise into every frame: a signal that lands while a ``__del__``, a weakref callback or
an import's cleanup runs has its ``Interrupted`` printed as "Exception ignored" with a traceback and
dropped (seen in CI, in the first second of a launch). ``install`` therefore also routes Python's
unraisable hook: an ``Interrupted`` there is kept silently (the reason is already recorded), and the
launch raises it again at its next checkpoint, ``during_tune``, before any trial starts.

``StoreWatch`` probes the store while Tune runs (a real write, every ``interval_s``) and, when it fails
twice in a row, says so on the console naming the URI and takes the same stop path.

Ray's own SIGTERM handling (``ray.init`` installs ``sys.exit`` and a C++ handler that prints a stack
dump) is replaced after Ray starts (``reinstall``). Signal handlers write with ``os.write``: a
``print`` inside a handler can re-enter a write the main thread was doing.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Optional

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "store": 75}  # 128 + signal number; 75 is sysexits' EX_TEMPFAIL
HEARTBEAT_TAG = "harness.driver_heartbeat"  # the experiment tag StoreWatch writes: a real write, the cheapest


class Interrupted(KeyboardInterrupt):
    """Raised in the driver by a signal that arrives before Tune runs (a KeyboardInterrupt, so code
    that cleans up on Ctrl-C does so for SIGTERM too)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _say(text: str) -> None:
    try:
        os.write(2, (text.rstrip("\n") + "\n").encode())
    except OSError:  # the terminal went away: nothing to tell
        pass


class Stops:
    """The driver's SIGINT / SIGTERM handler and what it received (module singleton ``STOPS``)."""

    def __init__(self):
        self.reason: Optional[str] = None  # SIGINT | SIGTERM | store: the first cause of the stop
        self.detail = ""
        self.phase = "before"  # before | tune | after
        self._tune_asked = False
        self._lock = threading.Lock()
        self._waiter: Optional[threading.Thread] = None
        self.active = False  # installed (the CLI); a library caller keeps Python's and Tune's own handling
        self._unraisable = None  # Python's hook before install, called for everything but Interrupted

    @property
    def exit_code(self) -> Optional[int]:
        return EXIT_CODES.get(self.reason) if self.reason else None

    def install(self) -> None:
        """SIGINT and SIGTERM to this handler (main thread only, as Python requires)."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        if self._unraisable is None:
            self._unraisable = sys.unraisablehook
            sys.unraisablehook = self._unraisable_hook
        self.active = True

    reinstall = install  # after ray.init, which installs its own SIGTERM handlers

    def uninstall(self) -> None:
        if self.active and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self._unraisable is not None:
            sys.unraisablehook, self._unraisable = self._unraisable, None
        self.active = False

    def _unraisable_hook(self, unraisable) -> None:
        """An ``Interrupted`` Python could not raise (it landed in a ``__del__`` or a callback) is kept:
        ``self.reason`` holds it and ``during_tune`` raises it again. Everything else as before."""
        if isinstance(unraisable.exc_value, Interrupted):
            return
        (self._unraisable or sys.__unraisablehook__)(unraisable)

    def installed(self) -> bool:
        return signal.getsignal(signal.SIGTERM) == self._handle

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        first = self.reason is None
        if first:
            self.reason = name
        if self.phase == "before" and first:
            raise Interrupted(name)
        if not first:
            _say(f"harness: {name} received; already stopping ({self.reason}): "
                 + ("saving Tune's state and closing the runs, seconds. The summary follows." if self.phase == "tune"
                    else "finishing what it writes."))
            return
        if self.phase == "tune":
            _say(f"harness: {name} received: stopping the trials (each keeps its last checkpoint) and saving "
                 f"Tune's state; the summary follows. Continue later with the same command and --resume.")
            self.stop_tune()
        # phase "after": the trials have ended; what is being written (the summary, a reproduction's
        # report, Ray's shutdown) ends, and the exit code says why

    def request(self, reason: str, detail: str = "") -> None:
        """A stop asked for by the driver itself (StoreWatch): as a signal would, once."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason, self.detail = reason, detail
        if self.phase == "tune":
            self.stop_tune()

    def stop_tune(self) -> None:
        """Tune's graceful stop: its SIGUSR1 handler, once Tune has installed it (before that, SIGUSR1
        would end the process, so a waiter sends it as soon as the handler is there)."""
        with self._lock:
            if self._tune_asked:
                return
            self._tune_asked = True

        def send_when_ready():
            while self.phase == "tune":
                if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None):
                    os.kill(os.getpid(), signal.SIGUSR1)
                    return
                time.sleep(0.05)

        self._waiter = threading.Thread(target=send_when_ready, name="harness-stop-tune", daemon=True)
        self._waiter.start()

    @contextlib.contextmanager
    def during_tune(self):
        """Around ``Tuner.fit``: a signal asks Tune to stop instead of raising in its loop."""
        if self.phase == "before" and self.reason in ("SIGINT", "SIGTERM"):
            # a signal whose Interrupted Python dropped (see the module's docstring): the launch stops
            # here, before Tune starts a trial, as it would have where the signal landed
            raise Interrupted(self.reason)
        if self.active:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.phase = "tune"
        if self.reason is not None:  # a stop asked for between the checks and the fit
            self.stop_tune()
        try:
            yield
        finally:
            self.phase = "after"

    def reset(self) -> None:
        """As new (tests run several launches in one process)."""
        if self._unraisable is not None:
            self.uninstall()
        self.__init__()


STOPS = Stops()


def _auth_headers() -> dict:
    """The credentials MLflow's client would send (its documented environment variables)."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def probe_write(uri: str, experiment_id: str, timeout_s: float = 5.0) -> Optional[str]:
    """None when the store takes a write within ``timeout_s``, else why not (one line).

    A server is asked over MLflow's REST API with urllib, not MLflow's client: the client retries a
    failing server for minutes (right for trials riding out a blip), and its retry settings are process
    environment that the driver's own calls share. A SQLite store takes the write through MLflow's
    client, which fails at once on a read-only file or a full disk ("database is locked" is another
    writer, not a failure)."""
    value = time.strftime("%Y-%m-%dT%H:%M:%S")
    if uri.startswith(("http://", "https://")):
        body = json.dumps({"experiment_id": experiment_id, "key": HEARTBEAT_TAG, "value": value}).encode()
        request = urllib.request.Request(uri.rstrip("/") + "/api/2.0/mlflow/experiments/set-experiment-tag",
                                         data=body, method="POST",
                                         headers={"Content-Type": "application/json", **_auth_headers()})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s):
                return None
        except urllib.error.HTTPError as e:
            if e.code in (401, 403, 404):  # answering, just not this call for this user: not a dead store
                return None
            return f"HTTP {e.code} {e.reason}"
        except (OSError, ValueError) as e:
            return f"{type(e).__name__}: {getattr(e, 'reason', None) or e}"
    from . import store

    try:
        store.client(uri).set_experiment_tag(experiment_id, HEARTBEAT_TAG, value)
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's OperationalError, MlflowException, OSError: all mean no write)
        text = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        if "database is locked" in text:
            return None
        return text.strip()[:300]
    return None


class StoreWatch:
    """A thread probing the store every ``interval_s`` while Tune runs; two failures in a row are said
    on the console at once, naming the URI, and stop the launch (``STOPS.request('store')``)."""

    def __init__(self, uri: str, experiment_id: str, interval_s: float = 5.0, timeout_s: float = 5.0,
                 failures: int = 2, probe: Callable[[str, str, float], Optional[str]] = probe_write):
        self.uri, self.experiment_id = uri, experiment_id
        self.interval_s, self.timeout_s, self.failures, self.probe = interval_s, timeout_s, failures, probe
        self.failed: Optional[str] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="harness-store-watch", daemon=True)

    def _watch(self) -> None:
        misses, first_miss = 0, 0.0
        while not self._stop.wait(self.interval_s):
            why = self.probe(self.uri, self.experiment_id, self.timeout_s)
            if why is None:
                misses = 0
                continue
            misses += 1
            first_miss = first_miss if misses > 1 else time.time()
            if misses >= self.failures:
                self.failed = why
                print(f"harness: the MLflow store {self.uri} stopped answering or taking writes "
                      f"({why}; failing for {time.time() - first_miss + self.interval_s:.0f} s). Stopping the trials, "
                      f"each keeps its last checkpoint. Once the store is back: the same command with --resume.",
                      flush=True)
                STOPS.request("store", why)
                return

    def __enter__(self) -> "StoreWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)


def store_problem(uri: str, timeout_s: float = 5.0) -> Optional[str]:
    """None when the store answers a read within about ``timeout_s``, else why not: what the summary
    is read back from must answer before any status is claimed (a server is asked for its health
    first, so MLflow's client does not spend minutes retrying a dead one)."""
    from . import store

    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
                if r.status != 200:
                    return f"HTTP {r.status}"
        except (OSError, ValueError) as e:
            return f"{type(e).__name__}: {getattr(e, 'reason', None) or e}"
    try:
        store.client(uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001  (any failure means no status can be read)
        text = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        return text.strip()[:300]
    return None
