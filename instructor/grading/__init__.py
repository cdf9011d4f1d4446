"""`labs grade`: the grader for course staff.

    submission.py     directory / git repository / archive -> the student files, the rest listed
    rubric.py         which tests, in which parts, for how many points (instructor/rubric.json)
    sandbox.py        one process under limits: time, memory, output, processes
    pytest_plugin.py  loaded into each run; reports the result over a signed, inherited pipe
    grader.py         the pristine framework, the runs, the verdict of each run and test
    report.py         terminal table, results.json (Gradescope), junit.xml, report.txt, logs
    gradescope.py     the autograder bundle (`labs grade --gradescope DIR`)
    cpus.py           how many CPUs the timed tests really get
    command.py        the command line

docs/instructors.md is the user's guide, including what the grader trusts.
"""
