# raftlabs: `make help` lists the targets. POSIX make and sh only (Linux and macOS).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Each test run starts Python afresh (pytest, its workers): with PYTHONDONTWRITEBYTECODE set in
# the environment, every one of them would compile the framework again and pytest would rewrite
# the test modules' asserts again, ~0.1 s of CPU a process. The caches go to git-ignored
# __pycache__ folders, and an unwritable tree just goes without them.
PYTEST := PYTHONDONTWRITEBYTECODE= $(PY) -m pytest
# env_logger syntax: `LOG_LEVEL=raft=debug,labrpc=info make test_2a 2>test.log`
LOG_LEVEL ?=
export LOG_LEVEL
# Extra pytest arguments, e.g. `make test_2a PYTEST_ARGS=-x`
PYTEST_ARGS ?=
# A part's tests (test_2a ... test_3) run JOBS at a time, each in a pytest-xdist worker: a Raft
# test spends its time in the tester's own sleeps, and two runs at a time is the load the suites
# are proven under (`labs test -p 2`). JOBS=1 runs them one after the other, as pytest's -s and
# --pdb need; so does LOG_LEVEL, so that the debug lines of two tests never interleave.
JOBS ?= $(if $(LOG_LEVEL),1,2)
PARALLEL := $(if $(filter-out 0 1,$(JOBS)),-n $(JOBS))

.PHONY: help venv test test_others test_2 test_2a test_2b test_2c test_2d test_3 test_3a test_3b \
	proto bench clean lint

help:
	@echo "raftlabs targets:"
	@echo "  make test            every test: framework, lab 2 (Raft) and lab 3 (KV); the instructors'"
	@echo "                       repository adds the tests of instructor/ and benchmarks/"
	@echo "  make test_others     framework tests (labrpc, labcodec, proto, the student tools)"
	@echo "  make test_2a ... test_2d, test_2    Raft: election, log, persistence, snapshots, all"
	@echo "  make test_3a, test_3b, test_3       KV service: basic, with snapshots, all"
	@echo "  make test_<name>     every test whose name contains <name> (e.g. test_backup_2b)"
	@echo "  make cargo_test_<name>              the same (the spelling of the original lab text)"
	@echo "  make proto           compile proto/*.proto (done automatically on import)"
	@echo "  make bench           benchmarks of the reference (instructors' repository only): a table,"
	@echo "                       bench/results.json"
	@echo "  make venv            create .venv and install the project (automatic)"
	@echo "  make lint            ruff and mypy, as CI runs them (settings in pyproject.toml)"
	@echo "  make clean           remove .venv and generated files"
	@echo "Variables: LOG_LEVEL=raft=debug,labrpc=info  PYTEST_ARGS='-x'  PYTHON=python3.11"
	@echo "           JOBS=2: a part's tests run two at a time (JOBS=1: one by one, for -s or --pdb)"

$(INSTALLED): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

venv: $(INSTALLED)

# The lint tools live in the same venv, installed on first use (setup.cfg's `lint` extra).
LINT_INSTALLED := $(VENV)/.lint-installed
$(LINT_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[lint]'
	@touch $@

# mypy reads the messages from the stubs protoc writes beside the compiled protos: compile first.
lint: $(LINT_INSTALLED)
	$(PY) -m labs proto >/dev/null
	$(PY) -c "import cluster.clusterpb"  # compiles cluster/admin.proto and its stub
	$(PY) -m ruff check .
	$(PY) -m mypy

# The instructors' repository has the tests of its instructor-only packages beside them; the
# student handout has neither folder, so the wildcard leaves them out there.
INSTRUCTOR_TESTS := $(wildcard instructor/tests benchmarks/tests)

test: $(INSTALLED)
	$(PYTEST) tests $(INSTRUCTOR_TESTS) $(PYTEST_ARGS)

test_others: $(INSTALLED)
	$(PYTEST) tests/framework $(PYTEST_ARGS)

test_2: $(INSTALLED)
	$(PYTEST) tests/raft $(PARALLEL) $(PYTEST_ARGS)

# A part's tests live in its own file; naming it spares every worker collecting the others.
test_2a test_2b test_2c test_2d: $(INSTALLED)
	$(PYTEST) tests/raft/test_raft_$(@:test_%=%).py --name _$(@:test_%=%) $(PARALLEL) $(PYTEST_ARGS)

test_3: $(INSTALLED)
	$(PYTEST) tests/kvraft $(PARALLEL) $(PYTEST_ARGS)

test_3a test_3b: $(INSTALLED)
	$(PYTEST) tests/kvraft/test_kvraft_$(@:test_%=%).py --name _$(@:test_%=%) $(PARALLEL) $(PYTEST_ARGS)

test_%: $(INSTALLED)
	$(PYTEST) tests --name $* $(PYTEST_ARGS)

cargo_test_%: $(INSTALLED)
	$(PYTEST) tests --name $* $(PYTEST_ARGS)

proto: $(INSTALLED)
	$(PY) -m labs proto

# The benchmarks measure the reference solution: the handout leaves benchmarks/ out.
bench: $(INSTALLED)
	@test -d benchmarks || { echo "make bench: the benchmarks are instructor-only" \
		"(benchmarks/ is not part of the student handout)" >&2; exit 2; }
	$(PY) -m labs bench

clean:
	rm -rf $(VENV) proto/_generated benchmarks/_generated tests/*/_generated tests/*/protos/_generated build *.egg-info
