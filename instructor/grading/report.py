"""What `labs grade` writes: a table on the terminal, and in the output directory

* `results.json`: Gradescope's format (top-level score, execution_time, output, tests with name,
  number, score, max_score, status, tags, output);
* `junit.xml`: one testsuite per part, one testcase per test, for CI dashboards;
* `report.txt`: the table and the notes, as plain text, for the course staff;
* `logs/`: the output of every failed run.
"""

from __future__ import annotations

import io
import json
import re
import statistics
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

from rich.console import Console
from rich.table import Table

from instructor.grading.grader import GradeReport, RunOutcome, TestOutcome

__all__ = ["gradescope_results", "junit_xml", "render_table", "summary_lines", "write_reports",
           "save_failed_log"]

OUTPUT_TAIL_BYTES = 8 << 10   # of a failed run's log, shown in results.json and junit.xml
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _points(value: Fraction) -> float:
    return round(float(value), 4)


def _fmt_points(value: Fraction) -> str:
    return f"{float(value):.2f}".rstrip("0").rstrip(".")


def _runs_text(outcome: TestOutcome) -> str:
    passed = sum(run.passed for run in outcome.runs)
    text = f"{passed}/{len(outcome.runs)}"
    return text if len(outcome.runs) == outcome.planned else f"{text} of {outcome.planned}"


def _time_text(outcome: TestOutcome) -> str:
    times = [run.seconds for run in outcome.runs]
    if not times:
        return "-"
    if len(times) == 1:
        return f"{times[0]:.1f} s"
    return f"{statistics.mean(times):.1f} ± {statistics.stdev(times):.1f} s"


def _tail(text: str, limit: int = OUTPUT_TAIL_BYTES) -> str:
    data = text.encode(errors="replace")
    if len(data) <= limit:
        return text
    return "[... earlier output cut ...]\n" + data[-limit:].decode(errors="replace")


def student_output(outcome: TestOutcome) -> str:
    """The text a student sees for one test."""
    lines = [f"Runs passed: {_runs_text(outcome)} (a test scores only if every run passes); "
             f"time per run: {_time_text(outcome)}."]
    if outcome.passed:
        return lines[0]
    lines.append(f"Failed: {outcome.reason}.")
    failed = outcome.first_failure
    if failed is not None and failed.log:
        lines += ["", f"Output of run {failed.run} (the end of it):", _tail(failed.log)]
    return "\n".join(lines)


def summary_lines(report: GradeReport) -> list[str]:
    options = report.options
    lines = [f"{report.rubric.title}: {_fmt_points(report.score)} / "
             f"{_fmt_points(report.max_score)} points, "
             f"{sum(t.passed for t in report.tests)} of {len(report.tests)} tests passed."]
    gib = options.limits.memory_bytes / (1 << 30)
    lines.append(f"Each test ran up to {options.runs} time(s), each in a fresh process, limits "
                 f"{options.limits.timeout:g} s and {gib:g} GiB; "
                 f"{options.jobs} at a time; {report.cpus.cpus:g} CPU(s) available "
                 f"({report.cpus.how}); {report.seconds:.0f} s in all.")
    lines += report.warnings
    lines += report.submission.summary_lines()
    return lines


def render_table(report: GradeReport) -> Table:
    table = Table(title=report.rubric.title, title_justify="left")
    for column, justify in (("Part", "left"), ("Test", "left"), ("Runs", "right"),
                            ("Time", "right"), ("Score", "right"), ("Result", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for outcome in report.tests:
        result = "[green]passed[/]" if outcome.passed else f"[red]failed[/] {outcome.reason}"
        score = f"{_fmt_points(outcome.score)}/{_fmt_points(outcome.test.max_score)}"
        table.add_row(outcome.test.part, outcome.test.name, _runs_text(outcome),
                      _time_text(outcome), score, result)
    table.add_section()
    table.add_row("", "[bold]total[/]", "", f"{report.seconds:.0f} s",
                  f"[bold]{_fmt_points(report.score)}/{_fmt_points(report.max_score)}[/]", "")
    return table


def gradescope_results(report: GradeReport) -> dict:
    """results.json, in Gradescope's format."""
    tests = []
    for outcome in report.tests:
        tests.append({
            "name": f"{outcome.test.part} {outcome.test.name}",
            "number": outcome.test.number,
            "score": _points(outcome.score),
            "max_score": _points(outcome.test.max_score),
            "status": "passed" if outcome.passed else "failed",
            "tags": [outcome.test.part],
            "output": student_output(outcome),
        })
    return {
        "score": _points(report.score),
        "execution_time": round(report.seconds, 1),
        "output": "\n".join(summary_lines(report)),
        "tests": tests,
        "extra_data": {
            "cpus": report.cpus.cpus,
            "runs_per_test": report.options.runs,
            "ignored_files": report.submission.ignored,
        },
    }


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def junit_xml(report: GradeReport) -> bytes:
    root = ET.Element("testsuites", name=_xml_text(report.rubric.title),
                      tests=str(len(report.tests)),
                      failures=str(sum(not t.passed for t in report.tests)),
                      time=f"{report.seconds:.1f}")
    by_part: dict[str, list[TestOutcome]] = {}
    for outcome in report.tests:
        by_part.setdefault(outcome.test.part, []).append(outcome)
    for part, outcomes in by_part.items():
        suite = ET.SubElement(root, "testsuite", name=part, tests=str(len(outcomes)),
                              failures=str(sum(not o.passed for o in outcomes)), errors="0",
                              time=f"{sum(r.seconds for o in outcomes for r in o.runs):.1f}")
        for outcome in outcomes:
            case = ET.SubElement(
                suite, "testcase", name=outcome.test.name,
                classname=outcome.test.file.removesuffix(".py").replace("/", "."),
                time=f"{sum(r.seconds for r in outcome.runs):.1f}")
            if not outcome.passed:
                failure = ET.SubElement(case, "failure", message=_xml_text(outcome.reason))
                failed = outcome.first_failure
                failure.text = _xml_text(_tail(failed.log) if failed else outcome.reason)
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text(f"score {_fmt_points(outcome.score)}/"
                                 f"{_fmt_points(outcome.test.max_score)}; runs passed "
                                 f"{_runs_text(outcome)}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def save_failed_log(out_dir: Path, outcome: TestOutcome, run: RunOutcome) -> None:
    """Write a failed run's output to out_dir/logs/; remember the file in the run."""
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{outcome.test.name}.run{run.run}.log"
    path.write_text(f"# {outcome.test.nodeid}, run {run.run}: {run.reason}\n{run.log}",
                    errors="replace")
    run.log_file = str(path)


def write_reports(report: GradeReport, out_dir: Path) -> None:
    """results.json, junit.xml and report.txt in out_dir (each replaced atomically, so a
    reader, or Gradescope after a timeout, never sees half a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console(file=io.StringIO(), width=140, color_system=None, force_terminal=False)
    console.print(render_table(report))
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False)
    if report.flags:
        console.print("Worth a look in the student files (not evidence of anything):", markup=False)
        for flag in report.flags:
            console.print(f"  {flag}", markup=False, highlight=False)
    files = {
        "results.json": json.dumps(gradescope_results(report), indent=2).encode(),
        "junit.xml": junit_xml(report),
        "report.txt": console.file.getvalue().encode(),  # type: ignore[attr-defined]
    }
    for name, data in files.items():
        partial = out_dir / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(out_dir / name)
