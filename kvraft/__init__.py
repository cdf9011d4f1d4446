"""Lab 3: the fault-tolerant key/value service (`server.py`) and its clerk (`client.py`)."""

from kvraft.client import Clerk
from kvraft.server import KvServer, Node

__all__ = ["Clerk", "KvServer", "Node"]
