"""Re-export a compiled `.proto`: its messages, enums, and a `<Name>Service` / `<Name>Client` per
service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labrpc.service import services_of
from proto.compiler import load_proto


def export_proto(proto_file: str | Path, namespace: dict[str, Any]) -> list[str]:
    """Compile `proto_file` if needed and define its types in `namespace`; return their names."""
    module = load_proto(proto_file)
    names = []
    descriptor = module.DESCRIPTOR
    for name in [*descriptor.message_types_by_name, *descriptor.enum_types_by_name]:
        namespace[name] = getattr(module, name)
        names.append(name)
    for service in services_of(module).values():
        namespace[f"{service.name}Service"] = service
        namespace[f"{service.name}Client"] = service.client_class
        names += [f"{service.name}Service", f"{service.name}Client"]
    return names
