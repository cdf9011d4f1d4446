"""Compile a `.proto` file with grpc_tools' protoc and import the generated module.

The generated `<name>_pb2.py` lives in `_generated/` beside its `.proto` and is rebuilt whenever
it is missing or older than the `.proto`, so a student who edits `raft.proto` just reruns the
tests. Beside it protoc writes `<name>_pb2.pyi`, the messages' types, which mypy and editors
read through the `TYPE_CHECKING` import of the module that re-exports the messages
(proto/raftpb.py). Several processes may import at once (pytest-xdist, `labs test -p 4`): an
exclusive `flock` on `_generated/.lock` serializes the rebuild, and the new files replace the
old ones with an atomic rename, so no process ever imports a half-written module.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["ProtoCompileError", "compile_proto", "load_proto"]

GENERATED_DIR_NAME = "_generated"

_loaded: dict[Path, ModuleType] = {}
_load_lock = threading.Lock()


class ProtoCompileError(Exception):
    """protoc rejected a `.proto` file; the message carries protoc's `file:line:col: message`."""


def _generated_path(proto_path: Path) -> Path:
    return proto_path.parent / GENERATED_DIR_NAME / f"{proto_path.stem}_pb2.py"


def _is_stale(proto_path: Path, generated: Path) -> bool:
    try:
        # A tree compiled before the stubs existed gets them with the next rebuild.
        return (generated.stat().st_mtime_ns < proto_path.stat().st_mtime_ns
                or not generated.with_suffix(".pyi").is_file())
    except FileNotFoundError:
        return True


def _run_protoc(proto_path: Path, out_dir: Path) -> None:
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"--proto_path={proto_path.parent}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        str(proto_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        details = (result.stderr or result.stdout).strip()
        # protoc names the file relative to --proto_path; show the path the student opens.
        details = details.replace(f"{proto_path.name}:", f"{proto_path}:")
        raise ProtoCompileError(f"protoc failed on {proto_path}:\n{details}")


def compile_proto(proto_path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Build `<name>_pb2.py` for `proto_path` if it is missing or stale; return its path."""
    proto_path = Path(proto_path).resolve()
    if not proto_path.is_file():
        raise ProtoCompileError(f"{proto_path}: no such .proto file")
    generated = _generated_path(proto_path)
    if not force and not _is_stale(proto_path, generated):
        return generated
    generated.parent.mkdir(exist_ok=True)
    with open(generated.parent / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if force or _is_stale(proto_path, generated):
                with tempfile.TemporaryDirectory(dir=generated.parent) as tmp:
                    _run_protoc(proto_path, Path(tmp))
                    # The stub first: the module's mtime is what says the pair is up to date.
                    stub = generated.with_suffix(".pyi")
                    os.replace(Path(tmp) / stub.name, stub)
                    os.replace(Path(tmp) / generated.name, generated)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return generated


def load_proto(proto_path: str | os.PathLike[str]) -> ModuleType:
    """Compile `proto_path` when needed and import its generated module (once per process)."""
    proto_path = Path(proto_path).resolve()
    with _load_lock:
        module = _loaded.get(proto_path)
        if module is not None:
            return module
        generated = compile_proto(proto_path)
        module_name = f"_raftlabs_generated.{proto_path.stem}_pb2_{abs(hash(proto_path)):x}"
        spec = importlib.util.spec_from_file_location(module_name, generated)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[proto_path] = module
        return module
