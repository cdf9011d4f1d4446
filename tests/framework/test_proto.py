"""proto: the labs' generated modules, and compiling `.proto` files (errors, rebuilds, races).

A process's protobuf descriptor pool accepts a given `.proto` file once, so whatever loads a
changed or fresh temporary `.proto` runs in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import proto
from labrpc import Service, ServiceClient, snake_case
from proto.compiler import compile_proto

# Prints the fields of message `Thing` of the .proto in argv[1], loaded with load_proto, after
# sleeping until the wall-clock time in argv[2] (so several processes start loading at once).
LOAD_SCRIPT = textwrap.dedent("""
    import sys, time
    from proto.compiler import load_proto
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    module = load_proto(sys.argv[1])
    print(",".join(sorted(module.DESCRIPTOR.message_types_by_name["Thing"].fields_by_name)))
""")


def thing_proto(path: Path, *fields: str) -> Path:
    """Write a .proto whose message `Thing` has the given uint64 fields."""
    body = "\n".join(f"  uint64 {name} = {i};" for i, name in enumerate(fields, 1))
    path.write_text(f'syntax = "proto3";\npackage {path.stem}pb;\n\nmessage Thing {{\n{body}\n}}\n')
    return path


def load_in_subprocess(path: Path, start_at: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(path), str(start_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fields_loaded_by(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip()


def test_raftpb_exports_messages_service_and_client() -> None:
    from proto import raftpb

    # Only what the student handout's raft.proto has too: the rest is the student's to add.
    for name in ("RequestVoteArgs", "RequestVoteReply", "RaftClient", "RaftService"):
        assert name in raftpb.__all__ and hasattr(raftpb, name)
    assert isinstance(raftpb.RaftService, Service)
    assert issubclass(raftpb.RaftClient, ServiceClient)
    method = raftpb.RaftService.methods["RequestVote"]
    assert method.request_type is raftpb.RequestVoteArgs
    assert method.reply_type is raftpb.RequestVoteReply
    client = raftpb.RaftClient(SimpleNamespace(name="end"))  # stubs bind lazily to an end
    assert "request_vote" in {m.attr for m in raftpb.RaftService.methods.values()}
    for method in raftpb.RaftService.methods.values():
        rpc = getattr(client, method.attr)
        assert callable(rpc) and callable(rpc.future)


def test_kvraftpb_exports_requests_and_client_with_get_and_put_append() -> None:
    from proto import kvraftpb

    for name in ("GetRequest", "GetReply", "PutAppendRequest", "PutAppendReply", "KvClient",
                 "KvService"):
        assert name in kvraftpb.__all__ and hasattr(kvraftpb, name)
    assert {m.attr for m in kvraftpb.KvService.methods.values()} == {"get", "put_append"}
    client = kvraftpb.KvClient(SimpleNamespace(name="end"))
    assert callable(client.get) and callable(client.put_append.future)
    assert kvraftpb.PutAppendRequest(key="k", value="v").key == "k"


@pytest.mark.parametrize("name, expected", [
    ("AppendEntries", "append_entries"), ("PutAppend", "put_append"), ("Get", "get"),
    ("RequestVote", "request_vote"), ("InstallSnapshot", "install_snapshot"),
    ("Handler2", "handler2"), ("HTTPServer", "http_server"), ("GetHTTP", "get_http"),
    ("already_snake", "already_snake"),
])
def test_snake_case_of_rpc_names(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_syntax_error_raises_compile_error_with_path_and_line(tmp_path: Path) -> None:
    broken = tmp_path.resolve() / "broken.proto"
    broken.write_text('syntax = "proto3";\n'          # line 1
                      "package brokenpb;\n"            # line 2
                      "\n"                             # line 3
                      "message Fine { uint64 x = 1; }\n"  # line 4
                      "\n"                             # line 5
                      "this is not proto\n")           # line 6
    with pytest.raises(proto.ProtoCompileError) as failure:
        compile_proto(broken)
    assert f"{broken}:6:" in str(failure.value)
    assert not (tmp_path / "_generated" / "broken_pb2.py").exists()


def test_missing_proto_file_raises_compile_error(tmp_path: Path) -> None:
    with pytest.raises(proto.ProtoCompileError, match="no such"):
        compile_proto(tmp_path / "absent.proto")


def test_generated_module_is_rebuilt_only_when_proto_is_newer(tmp_path: Path) -> None:
    source = thing_proto(tmp_path / "rebuilt.proto", "a")
    generated = compile_proto(source)
    assert generated == tmp_path.resolve() / "_generated" / "rebuilt_pb2.py"
    assert fields_loaded_by(load_in_subprocess(source)) == "a"
    built = generated.stat().st_mtime_ns

    assert compile_proto(source) == generated  # up to date: not rebuilt
    assert generated.stat().st_mtime_ns == built

    thing_proto(source, "a", "b")
    newer = built + 5_000_000_000  # 5 s later than the module, whatever the clock resolution
    os.utime(source, ns=(newer, newer))
    assert fields_loaded_by(load_in_subprocess(source)) == "a,b"  # the import rebuilt it
    assert generated.stat().st_mtime_ns > built


def test_compiling_writes_the_messages_type_stub_beside_the_module(tmp_path: Path) -> None:
    generated = compile_proto(thing_proto(tmp_path / "typed.proto", "count"))
    stub = generated.with_suffix(".pyi")
    assert "class Thing(_message.Message):" in stub.read_text()
    assert "    count: int" in stub.read_text()
    # A tree compiled before the stubs existed gets its stub with the next import.
    stub.unlink()
    assert compile_proto(tmp_path / "typed.proto") == generated
    assert "class Thing(_message.Message):" in stub.read_text()


def test_several_processes_importing_a_fresh_proto_all_succeed(tmp_path: Path) -> None:
    source = thing_proto(tmp_path / "raced.proto", "first", "second")
    start_at = time.time() + 1.0  # every process is up and waiting by then
    processes = [load_in_subprocess(source, start_at) for _ in range(4)]
    assert [fields_loaded_by(p) for p in processes] == ["first,second"] * 4
    # (__pycache__: the importers' own bytecode, there unless PYTHONDONTWRITEBYTECODE is set)
    leftovers = sorted(p.name for p in (tmp_path / "_generated").iterdir()
                       if p.name != "__pycache__")
    # no half-written or temporary files remain: the module, its stub and the lock
    assert leftovers == [".lock", "raced_pb2.py", "raced_pb2.pyi"]
