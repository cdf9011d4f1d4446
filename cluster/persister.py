"""A `Persister` on disk that survives `kill -9` and power loss of what it acknowledged.

Raft state and snapshot live together in one file, `state.bin`, so that
`save_state_and_snapshot` is atomic as the protocol requires. Every save writes a complete new
file beside the old one, fsyncs it, renames it over the old one (atomic on POSIX) and fsyncs the
directory so the rename itself is on disk. A save returns only after all that: a crash at any
moment leaves either the old state or the new one, never a mixture or a torn file.

File format: the magic `RLPS1\\n`, the lengths of state and snapshot (8 bytes each, big-endian),
a CRC-32 of what follows, then the state and the snapshot. The CRC catches a file damaged
outside this class (a disk fault, an edit) instead of handing Raft garbage.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

from raft.persister import PersisterBase

__all__ = ["FilePersister", "PersisterCorrupt", "STATE_FILE"]

STATE_FILE = "state.bin"
_MAGIC = b"RLPS1\n"
_HEADER = struct.Struct(">QQI")
_TEMP_SUFFIX = ".tmp"


class PersisterCorrupt(Exception):
    """The state file exists but is not a complete state written by FilePersister."""


class FilePersister(PersisterBase):
    """A file-backed `raft.persister.Persister`: reads are served from memory, every save is
    durable before it returns."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / STATE_FILE
        # A temporary file left by a save that a crash interrupted was never acknowledged.
        for leftover in self.directory.glob(f"{STATE_FILE}.*{_TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        super().__init__(*self._load())

    def _load(self) -> tuple[bytes, bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return b"", b""
        return decode(data, self.path)

    def _store(self, state: bytes, snapshot: bytes) -> None:
        # Called with the base class's lock held throughout: two saves must reach the disk in
        # the order they were made.
        temp = self.directory / f"{STATE_FILE}.{os.getpid()}.{threading.get_ident()}{_TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(encode(state, snapshot))
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        _fsync_directory(self.directory)
        super()._store(state, snapshot)  # acknowledged only once it is on disk

    def __repr__(self) -> str:
        return f"FilePersister({str(self.directory)!r})"


def encode(state: bytes, snapshot: bytes) -> bytes:
    body = state + snapshot
    return _MAGIC + _HEADER.pack(len(state), len(snapshot), zlib.crc32(body)) + body


def decode(data: bytes, path: Path | str = STATE_FILE) -> tuple[bytes, bytes]:
    """(state, snapshot) from a file's bytes; raises PersisterCorrupt naming what is wrong."""
    if not data.startswith(_MAGIC):
        raise PersisterCorrupt(f"{path}: not a raftlabs state file (bad magic)")
    header_end = len(_MAGIC) + _HEADER.size
    if len(data) < header_end:
        raise PersisterCorrupt(f"{path}: truncated header ({len(data)} bytes)")
    state_len, snapshot_len, crc = _HEADER.unpack_from(data, len(_MAGIC))
    body = data[header_end:]
    if len(body) != state_len + snapshot_len:
        raise PersisterCorrupt(f"{path}: {len(body)} bytes of data, the header says "
                               f"{state_len} + {snapshot_len}")
    if zlib.crc32(body) != crc:
        raise PersisterCorrupt(f"{path}: checksum mismatch")
    return body[:state_len], body[state_len:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
