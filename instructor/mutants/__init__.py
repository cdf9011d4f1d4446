"""The mutant corpus and `labs mutants` (instructor-only; not part of the student handout).

A mutant is a small, realistic student bug written as exact search/replace edits of the
reference solution (`corpus/<id>.mutant`, format in instructor/mutants/mutant.py). `labs mutants`
applies each one to a scratch copy of the repository, runs the lab suites that should catch it
and writes the kill matrix (instructor/mutants/runner.py). docs/instructors.md explains both.
"""

from instructor.mutants.mutant import (
    CORPUS_DIR,
    PARTS,
    ApplyError,
    Edit,
    Mutant,
    MutantFormatError,
    apply_mutant,
    apply_to_text,
    load_corpus,
    parse_mutant,
)

__all__ = [
    "CORPUS_DIR", "PARTS", "ApplyError", "Edit", "Mutant", "MutantFormatError", "apply_mutant",
    "apply_to_text", "load_corpus", "parse_mutant",
]
