"""Lab 3's key/value service as a model for the checker (labs.linearizability.checker).

Apart from labs.linearizability.model, which holds what every model shares, so that the KV read
hints (kv_reads) build on the shared types without the model and the hints importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from labs.linearizability.kv_reads import read_hints
from labs.linearizability.model import APPEND, GET, PUT, KvInput, Operation, ReadHints

__all__ = ["KvModel"]


class KvModel:
    """Lab 3's key/value service: one string per key, "" when the key was never written.

    Get must return the current string; put replaces it; append concatenates. Keys never
    interact, so each key is checked on its own (Horn & Kroening's P-compositionality), which
    turns one huge search into several small ones. The output of a get that never returned is
    None: nobody saw its result, so it is legal anywhere.
    """

    def partition(self, operations: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        by_key: dict[str, list[Operation]] = {}
        for operation in operations:
            by_key.setdefault(operation.input.key, []).append(operation)
        return sorted(by_key.items())

    def init(self) -> str:
        return ""

    def step(self, state: str, input: KvInput, output: str | None) -> tuple[bool, str]:
        op = input.op
        if op == GET:
            return output is None or output == state, state
        if op == PUT:
            return True, input.value
        if op == APPEND:
            return True, state + input.value
        raise ValueError(f"unknown KV operation {op!r}")

    def describe_operation(self, input: KvInput, output: str | None) -> str:
        if input.op == GET:
            return f"get({input.key!r}) -> {'?' if output is None else repr(output)}"
        return f"{input.op}({input.key!r}, {input.value!r})"

    def describe_state(self, state: str) -> str:
        return repr(state)

    def read_hints(self, operations: Sequence[Operation]) -> ReadHints:
        """Gets are reads; their outputs say which puts and appends came before them (see
        `labs.linearizability.kv_reads`)."""
        return read_hints(operations)
