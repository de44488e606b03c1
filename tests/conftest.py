"""Options, fixtures and hooks shared by every test directory.

Skips under CI: when the environment variable CI is "true", a test that ends skipped fails the run
instead of passing silently (a missing binary, Debian package, Python package or root privileges
must not hide a whole directory of tests). The skipped test is reported as failed (or as an error,
when a fixture skipped it), with the skip's reason; a module skipped whole at collection is listed at
the end of the run, whose exit status is then 1.

A deliberate skip, one that is not about something missing on the machine, says so: its reason
starts with "deliberate:" (DELIBERATE_SKIP), e.g. `pytest.skip("deliberate: only meaningful on ...")`.
Those stay skips under CI. Expected failures (xfail) are not skips and are left alone.
Outside CI nothing changes: skips are skips, listed by `-ra`.
"""

from __future__ import annotations

import os

import pytest

DELIBERATE_SKIP = "deliberate:"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected files of golden tests (tests/golden/) from the current output; review the diff",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when pytest runs with --update-golden: golden tests write their expectations instead of comparing."""
    return bool(request.config.getoption("--update-golden"))


# --- skips fail the run under CI ---------------------------------------------------------------------


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _skip_reason(longrepr: object) -> str:
    # a skip's longrepr is (file, line, "Skipped: reason")
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not _under_ci() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report.longrepr)
    if reason.startswith(DELIBERATE_SKIP):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true (install what is missing, or mark the skip '{DELIBERATE_SKIP}'): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    _fail_skip(report)
    return report


_COLLECT_SKIPS = pytest.StashKey[list]()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module skipped whole at collection (pytest.importorskip at module level...): under CI it is
    recorded, listed at the end, and the run's exit status becomes 1 (a failed collection would stop it)."""
    report = yield
    if _under_ci() and report.skipped and not _skip_reason(report.longrepr).startswith(DELIBERATE_SKIP):
        collector.config.stash.setdefault(_COLLECT_SKIPS, []).append(f"{report.nodeid}: {_skip_reason(report.longrepr)}")
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = config.stash.get(_COLLECT_SKIPS, [])
    if skipped:
        terminalreporter.section("skipped at collection under CI=true: the run fails", sep="=", red=True)
        for line in skipped:
            terminalreporter.line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(_COLLECT_SKIPS, []) and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
