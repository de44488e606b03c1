"""Print the entries of requirements.lock that pacslb needs at run time (its dependencies, transitively),
with their hashes: the Debian package's virtual environment gets these and not the test tools.

    python runtime_lock.py requirements.lock > runtime.lock

The dependency tree is read from the metadata of the developer's virtual environment (the interpreter
running this script), where the lock is installed; markers are evaluated for this machine.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def runtime_closure(root: str = "pacslb") -> set[str]:
    """The normalised names of the distributions `root` needs without extras, itself excluded."""
    seen: set[str] = set()
    todo = [(root, ())]
    while todo:
        name, extras = todo.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            sys.exit(f"error: {name} is not installed in {sys.prefix}: run make venv first")
        for line in dist.requires or []:
            req = Requirement(line)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in environments):
                continue
            key = _name(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, tuple(req.extras)))
    return seen - {_name(root)}


def entries(lock_text: str) -> dict[str, str]:
    """The lock's entries by normalised name: the requirement line with its --hash continuation lines."""
    found: dict[str, str] = {}
    current: list[str] = []
    for line in lock_text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = [line]
            found[_name(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0])] = ""
            key = next(reversed(found))
        elif line.strip().startswith("--hash") and current:
            current.append(line)
        else:
            continue
        found[key] = "\n".join(current)
    return found


def main() -> None:
    lock = entries(open(sys.argv[1], encoding="utf-8").read())
    wanted = runtime_closure()
    missing = sorted(wanted - lock.keys())
    if missing:
        sys.exit(f"error: requirements.lock has no entry for {', '.join(missing)}: run make lock")
    print("\n".join(lock[name].rstrip(" \\") for name in sorted(wanted)))


if __name__ == "__main__":
    main()
