"""`python -m instructor.grading ARGS` is `labs grade ARGS`, without the rest of the labs command
line: what the Gradescope bundle runs, from a copy of just the grader."""

import argparse

from instructor.grading.command import add_grade_arguments, grade_command

parser = argparse.ArgumentParser(prog="labs grade", description="Grade a submission; see "
                                 "docs/instructors.md.")
add_grade_arguments(parser)
raise SystemExit(grade_command(parser.parse_args()))
