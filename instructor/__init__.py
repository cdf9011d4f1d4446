"""The instructors' tools (the student handout leaves this package out): `labs handout`,
`labs grade`, `labs mutants`; docs/instructors.md explains them.

    handout.py      the student handout: solution regions replaced by stubs, checked for leaks
    grading/        the grader and its Gradescope bundle
    rubric.json     the default rubric: the graded tests, their parts and points
    mutants/        the corpus of realistic student bugs and the tool that measures the suites
                    against it
    tests/          their tests (part of `make test`, not of `make test_others`)
"""
