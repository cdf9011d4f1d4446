"""The benchmarks of the reference solution (instructor-only: the student handout leaves this
package out, and its stubs could not run them): `labs bench`, `make bench`.

    bench.py                    the group registry, the targets, the table and the JSON file;
                                group "rpc" (the cost of a labrpc call)
    bench_raft.py               group "raft": agreement latency, idle elections, 2A-2D suite costs
    bench_kv.py                 group "kv": operation latency, 3A/3B suite costs
    bench_linearizability.py    group "linearizability": the checker on lab 3's histories
    rpc_bench.proto             the benchmarks' own messages (compiled into _generated/)
    tests/                      their tests (part of `make test`, not of `make test_others`)
"""
