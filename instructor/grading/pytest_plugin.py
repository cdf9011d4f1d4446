"""The grader's pytest plugin: the one voice in a graded run that the grader listens to.

`labs grade` runs every test in a fresh `python -m pytest` process inside the graded tree, with
this file loaded as `-p raftlabs_grade_plugin`. The grader writes a copy of it into a directory
of its own for each run (never into the graded tree), so a submission cannot replace it.

The channel. Before starting the run the grader makes two pipes:

* the *brief* pipe: the grader writes a JSON brief into it and closes its end; the child inherits
  the read end. The brief holds a random per-run key, the run id and the one test the run must
  execute. This plugin reads the brief and closes the pipe while pytest imports it, which is
  before any conftest, test module or student module is imported. Afterwards the key exists in
  this process only inside an HMAC object, and on no file descriptor, file or environment
  variable.
* the *result* pipe: the plugin writes one line per event to it, `<hmac-sha256 hex> <json>`,
  signed with the run's key. The grader accepts a run's verdict only from lines whose signature
  checks, in order, for this run, and fails the run if anything else appears on the pipe.

What student code in the same process could do, and what it gets: printing "1 passed" or a
forged line on stdout (the grader does not parse output for verdicts); writing a results file
(none is read); writing to the result pipe (unsigned lines fail the run); `os._exit(0)` at
import (no signed `finish` event, so the run fails); skipping or xfailing the test (only
"passed" counts); replacing pytest's runner or report functions (the plugin compares them with
what they were when it was imported and reports the difference); swapping the test function
(its code must come from the test file and stay the same); running `pytest.main` on a passing
copy of the test with this plugin (only the pytest that loaded the plugin is reported on, and a
second session is reported as such). What remains possible is code written against this plugin
itself: locating its HMAC object in the interpreter and signing a forged `finish`.
docs/instructors.md says so, and the grader's report flags the tools such code needs (ctypes,
gc, sys.modules, _pytest...) in submitted files.

The module also holds the wire format (`encode_event`, `decode_event`) that the grader uses to
check the lines, so there is one definition of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from typing import Any

# pytest imports this plugin before any conftest or test module: these are loaded already, and
# importing them here makes sure every watched module is in the snapshot below.
import _pytest.main
import _pytest.outcomes
import _pytest.python
import _pytest.reports
import _pytest.runner  # noqa: F401 (the other imports bind _pytest; this one only loads)
import pluggy
import pluggy._callers
import pluggy._hooks
import pytest

CHANNEL_ENV = "RAFTLABS_GRADE_CHANNEL"   # "<brief read fd>,<result write fd>"
PLUGIN_MODULE = "raftlabs_grade_plugin"  # the name the grader loads this file under

# pytest internals whose replacement would let a submission turn a failure into a pass.
# `module:qualified.name`. Every one must exist: a pytest or pluggy that renamed one would
# otherwise weaken the watch without a word, so the plugin refuses to load (WatchError).
WATCHED = (
    "_pytest.runner:call_and_report",
    "_pytest.runner:runtestprotocol",
    "_pytest.runner:pytest_runtest_makereport",
    "_pytest.runner:pytest_runtest_protocol",
    "_pytest.runner:CallInfo.from_call",
    "_pytest.runner:SetupState.setup",
    "_pytest.reports:TestReport.from_item_and_call",
    "_pytest.reports:BaseReport.passed",
    "_pytest.reports:BaseReport.failed",
    "_pytest.python:pytest_pyfunc_call",
    "_pytest.python:Function.runtest",
    "_pytest.main:pytest_runtestloop",
    "_pytest.main:Session.perform_collect",
    "_pytest.outcomes:skip",
    "_pytest.outcomes:xfail",
    "pluggy._hooks:HookCaller.__call__",
    "pluggy._callers:_multicall",
)


class WatchError(RuntimeError):
    """A WATCHED internal is missing from the installed pytest or pluggy."""


# --- the wire format ------------------------------------------------------------------------------

def encode_event(signer: Any, payload: dict) -> bytes:
    """One line of the result pipe: hex HMAC-SHA256 of the JSON, a space, the JSON."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    mac = signer.copy()
    mac.update(body)
    return mac.hexdigest().encode() + b" " + body + b"\n"


def decode_event(key: bytes, line: bytes) -> dict | None:
    """The payload of a correctly signed line, else None."""
    mac_hex, _, body = line.rstrip(b"\n").partition(b" ")
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not body or not hmac.compare_digest(mac_hex, expected):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# --- the channel, opened at import ----------------------------------------------------------------

class _Channel:
    """The run's brief and the signing end of the result pipe."""

    def __init__(self, spec: str) -> None:
        brief_fd, result_fd = (int(fd) for fd in spec.split(","))
        with os.fdopen(brief_fd, "rb") as brief_pipe:
            brief = json.loads(brief_pipe.read())
        self._signer = hmac.new(bytes.fromhex(brief.pop("key")), digestmod=hashlib.sha256)
        self.run_id: str = brief["run"]
        self.expected: str = brief["test"]
        self.student_modules: list[str] = brief.get("student_modules", [])
        self._fd = result_fd
        os.set_inheritable(result_fd, False)  # processes the test starts do not get it
        self._seq = 0

    def send(self, event: str, **fields: Any) -> None:
        self._seq += 1
        line = encode_event(self._signer, {"run": self.run_id, "seq": self._seq, "event": event,
                                           **fields})
        try:
            while line:
                line = line[os.write(self._fd, line):]
        except OSError:
            pass  # the grader sees a missing event, and fails the run


def _resolve(spec: str) -> tuple[Any, Any] | None:
    """(the module, the current object) for a WATCHED entry; class attributes are taken raw from
    the class `__dict__`, so a property or classmethod compares by identity."""
    module_name, _, qualified = spec.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        return None
    owner: Any = module
    *path, last = qualified.split(".")
    try:
        for part in path:
            owner = getattr(owner, part)
        value = owner.__dict__[last] if isinstance(owner, type) else getattr(owner, last)
    except (AttributeError, KeyError):
        return None
    return module, value


def _fingerprint(value: Any) -> tuple:
    """Identity of an object and of the code behind it, so `f.__code__ = ...` is caught too."""
    inner = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
    return id(value), id(getattr(inner, "__code__", None))


def _snapshot(watched: tuple[str, ...] = WATCHED) -> dict[str, tuple]:
    """What each watched internal is now; raises WatchError, naming them, if any is missing."""
    snapshot = {}
    missing = []
    for spec in watched:
        resolved = _resolve(spec)
        if resolved is None:
            missing.append(spec)
            continue
        module, value = resolved
        snapshot[spec] = (id(module), _fingerprint(value), value, module)
    if missing:
        raise WatchError(
            f"the grader's anti-tamper plugin watches {', '.join(missing)}, which pytest "
            f"{pytest.__version__} with pluggy {pluggy.__version__} does not have: find what "
            "replaced it and update WATCHED in instructor/grading/pytest_plugin.py, or install the "
            "pytest and pluggy that setup.cfg pins")
    return snapshot


# Opened while pytest imports the plugin: no test code has run yet.
_channel = _Channel(os.environ.pop(CHANNEL_ENV)) if CHANNEL_ENV in os.environ else None
_original = _snapshot()
_own_code: dict[str, tuple] = {}
_anomalies: list[str] = []
# The plugin manager of the pytest that loaded this plugin with -p, taken while it registers the
# plugin, before any conftest or test code. Only that pytest's session is reported: a second
# session started from test code (pytest.main with this plugin) is an anomaly, never a result.
_home: Any = None


def _tampered() -> list[str]:
    """The watched pytest internals, and this plugin's code, that are not what they were."""
    changed = []
    for spec, (module_id, fingerprint, _value, _module) in _original.items():
        resolved = _resolve(spec)
        if (resolved is None or id(resolved[0]) != module_id
                or _fingerprint(resolved[1]) != fingerprint):
            changed.append(spec)
    for name, fingerprint in _own_code.items():
        owner, _, attribute = name.rpartition(".")
        current = getattr(_Recorder, attribute, None) if owner else globals().get(name)
        if _fingerprint(current) != fingerprint:
            changed.append(f"{PLUGIN_MODULE}:{name}")
    return changed


def _module_files(names: list[str]) -> dict[str, str | None]:
    """Where each loaded student module came from: the grader checks it is the graded tree."""
    files = {}
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            files[name] = getattr(module, "__file__", None)
    return files


# --- hooks ----------------------------------------------------------------------------------------

def pytest_addoption(parser: Any, pluginmanager: Any) -> None:
    """A historic hook: pytest calls it as it registers this plugin, which is how the plugin
    learns which pytest is its own."""
    global _home
    if _home is None:
        _home = pluginmanager


def pytest_configure(config: Any) -> None:
    if _channel is None:
        return
    if config.pluginmanager is not _home:
        _anomalies.append("a second pytest session was started inside the run")
        return
    config.pluginmanager.register(_Recorder(config, _channel), "raftlabs-grade-recorder")


class _Recorder:
    """Registered with the run's own pytest only; records and reports its one session."""

    def __init__(self, config: Any, channel: _Channel) -> None:
        self.config = config
        self.channel = channel
        self.collected: list[str] = []
        self.phases: dict[str, dict[str, Any]] = {}
        self.finished = False
        self.code: Any = None     # the test function's code object, as collected
        self.code_changed = False

    @pytest.hookimpl(trylast=True)  # after every other plugin's selection
    def pytest_collection_modifyitems(self, config: Any, items: list) -> None:
        """Keep exactly the test the brief names."""
        if config is not self.config:
            return
        keep = [item for item in items if item.nodeid == self.channel.expected]
        drop = [item for item in items if item.nodeid != self.channel.expected]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        if keep:
            self.code = getattr(getattr(keep[0], "obj", None), "__code__", None)

    def pytest_collection_finish(self, session: Any) -> None:
        if session.config is not self.config:
            return
        self.collected = [item.nodeid for item in session.items]
        self.channel.send("collected", tests=list(self.collected))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any):
        report = yield
        if item.config is self.config and item.nodeid == self.channel.expected:
            if getattr(getattr(item, "obj", None), "__code__", None) is not self.code:
                self.code_changed = True
            self.phases[report.when] = {
                "outcome": report.outcome,
                "xfail": bool(getattr(report, "wasxfail", False)),
                "seconds": round(float(getattr(report, "duration", 0.0)), 3),
            }
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: Any, exitstatus: Any) -> None:
        if session.config is not self.config or self.finished:
            return
        self.finished = True
        self.channel.send(
            "finish",
            exitstatus=int(exitstatus),
            collected=list(self.collected),
            phases=self.phases,
            failed=int(getattr(session, "testsfailed", 0)),
            tampered=_tampered(),
            anomalies=list(_anomalies) + (["the test function's code changed during the run"]
                                          if self.code_changed else []),
            test_code=None if self.code is None else {"file": self.code.co_filename,
                                                      "line": self.code.co_firstlineno},
            modules=_module_files(self.channel.student_modules),
        )


for _name in ("pytest_addoption", "pytest_configure", "_tampered", "_resolve", "_fingerprint",
              "_Recorder.pytest_collection_modifyitems", "_Recorder.pytest_collection_finish",
              "_Recorder.pytest_runtest_makereport", "_Recorder.pytest_sessionfinish"):
    _owner, _, _attribute = _name.rpartition(".")
    _own_code[_name] = _fingerprint(getattr(_Recorder, _attribute) if _owner else globals()[_name])
