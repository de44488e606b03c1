"""What the tests of bench/ share: a bench script loaded as a module, a script run as a smoke test in a process of
its own (stopped by its PID whatever happens), and the namespaces a run left behind."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_bench(script: str) -> ModuleType:
    """bench/SCRIPT loaded as the module pacslb_bench_<its stem>, registered in sys.modules (dataclasses look their
    module up by name); the script puts bench/ on sys.path itself, so its `lib` imports too."""
    path = REPO / "bench" / script
    spec = importlib.util.spec_from_file_location(f"pacslb_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_bench(script: str, args: list[str], timeout: float, terminate: bool = False) -> tuple[subprocess.Popen, str, str]:
    """bench/SCRIPT ARGS run with this Python, its output read, within `timeout` s: (the process, stdout, stderr).
    If it is still running after (a timeout, an interrupt), it is stopped by its PID: SIGTERM first with
    `terminate` (the script unwinds its own teardown on it), SIGKILL otherwise or if that took over 60 s."""
    run = subprocess.Popen([sys.executable, str(REPO / "bench" / script), *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = run.communicate(timeout=timeout)
    finally:
        if run.poll() is None:
            if terminate:
                run.terminate()
                try:
                    run.wait(60)
                except subprocess.TimeoutExpired:
                    pass
            if run.poll() is None:
                run.kill()  # the bed's own teardown did not get to run
                run.wait(30)
    return run, out, err


def namespaces_of(prefix: str) -> list[str]:
    """The network namespaces whose name starts with `prefix` (a run's, e.g. pacslb-bench-<its pid>-)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]
