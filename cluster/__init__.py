"""The lab code as a real cluster: one OS process per server, gRPC between them, state on disk.

- `transport`: the labs' services over gRPC, with labrpc's client API and error kinds, deadlines
  and the fault-injecting client interceptor.
- `persister`: `FilePersister`, a `Persister` that survives `kill -9`.
- `node`: one server process (`python -m cluster.node`); `control`: `LocalCluster`, which starts,
  faults and stops them; `controller`: the daemon behind `labs cluster start`.
- `check`: the Jepsen-style workload, nemesis and linearizability check; `command`: the `labs
  cluster` and `labs kv` command lines.

The guide is docs/cluster.md.
"""
