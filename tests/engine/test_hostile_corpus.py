"""A hostile corpus built from the True PACS template (issue 13): a fixed-seed generator mutates the template
(values replaced by hostile ones, keys and items dropped or doubled, unknown keys, named files that are
devices, FIFOs or huge, the YAML text itself cut or garbled). Every input is either valid, and then renders
a haproxy.cfg that the real `haproxy -c` accepts, or refused with problems that each name where (a field
path, or a line of the YAML); never an exception. Bounded: CORPUS inputs, seeded, so a failure replays."""

from __future__ import annotations

import copy
import hashlib
import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pacslb.engines.haproxy.render import HAProxyEnv, render
from pacslb.model import load_text, validate_data
from pacslb.pki import self_signed
from pacslb.templates.true_pacs import render_true_pacs

pytestmark = [pytest.mark.engine, pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")]

SEED = int(os.environ.get("PACSLB_CORPUS_SEED", "13"))  # 13, the number, in CI; set it to explore
CORPUS = 180  # inputs in all: data mutations, then text mutations
TIME_BOUND = 120.0  # seconds the corpus may take on the shared CI machine

# What a hostile or careless writer puts in a field: wrong types, out of range, injections, huge, deep.
HOSTILE_VALUES: list[Any] = [
    None, "", " ", -1, 0, 2**63, 1.5, True, [], {}, "x" * 5000, "a\nb", "a\x00b", "tab\there", "é\u202egnp.exe",
    "../../etc/shadow", "/dev/zero", "/proc/self/environ", "0.0.0.0", "::", "999.1.1.1", "65536", "1-65535", "8000-7999",
    "${jndi:ldap://x}", "' OR 1=1 --", '"; quit', "\\", "%s%s%s", "{{ 7*7 }}", "*", "&a", "~", "yes", "0x1F", "1e9",
    ["nested", ["deeper"]], {"unknown": "key"}, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]  # fmt: skip
FILE_FIELDS = {"certificates", "ca_file", "page", "script", "certificate", "peer_certificate"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The template's folder: its placeholder certificate, and hostile files beside it."""
    folder = tmp_path_factory.mktemp("hostile-corpus")
    issued = self_signed("pacs.example")
    for cert in _certificates(yaml.safe_load(render_true_pacs())):
        (folder / cert).parent.mkdir(parents=True, exist_ok=True)
        (folder / cert).write_bytes(issued.cert_pem + issued.key_pem)
    os.mkfifo(folder / "fifo.pem")
    (folder / "huge.pem").write_bytes(issued.cert_pem + b"#" * (2 * 1024 * 1024))
    (folder / "zero.pem").symlink_to("/dev/zero")
    (folder / "dir.pem").mkdir()
    return folder


def _certificates(data: dict) -> list[str]:
    return [c for vs in data["virtual_services"] for c in (vs.get("tls") or {}).get("certificates", [])]


def _slots(node: Any, path: tuple = ()) -> list[tuple]:
    """Every place in the data: (path to it) for each mapping key and list item, depth first."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*path, key))
        found += _slots(value, (*path, key))
    return found


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def mutate(template: dict, rng: random.Random) -> tuple[str, dict]:
    """One mutation of the template: what was done (to replay and report), and the data."""
    data = copy.deepcopy(template)
    slot = rng.choice(_slots(data))
    parent, key = _parent(data, slot), slot[-1]
    kind = rng.choice(["value", "value", "value", "drop", "double", "unknown", "file", "swap"])
    where = "/".join(str(k) for k in slot)
    if kind == "value":
        parent[key] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        return f"{where} = {parent[key]!r:.60}", data
    if kind == "drop":
        del parent[key]
        return f"drop {where}", data
    if kind == "double" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))  # a second item with the same name
        return f"double {where}", data
    if kind == "unknown" and isinstance(parent[key], dict):
        parent[key][rng.choice(["nmae", "Name", "extra", "port ", "évil"])] = 1
        return f"unknown key in {where}", data
    if kind == "file":
        vs = rng.choice([v for v in data["virtual_services"] if v.get("tls")])
        hostile = rng.choice(["fifo.pem", "huge.pem", "zero.pem", "dir.pem", "/dev/zero", "missing.pem", "/etc/shadow"])
        vs["tls"]["certificates"] = [hostile]
        return f"{vs['name']} certificate {hostile}", data
    if kind == "swap":
        a, b = rng.sample(range(len(data["virtual_services"])), 2)
        services = data["virtual_services"]
        services[a]["name"], services[b]["name"] = services[b]["name"], services[a]["name"]
        return f"swap names of services {a} and {b}", data
    parent[key] = "" if not isinstance(parent[key], str) else parent[key] * 3
    return f"{where} stretched", data


def mutate_text(text: str, rng: random.Random) -> tuple[str, str]:
    """One mutation of the YAML text itself."""
    lines = text.splitlines()
    i = rng.randrange(len(lines))
    kind = rng.choice(["cut", "tab", "dedent", "double", "anchor", "bracket"])
    if kind == "cut":
        return f"cut at line {i + 1}", "\n".join(lines[:i]) + "\n" + lines[i][: len(lines[i]) // 2]
    if kind == "tab":
        lines[i] = "\t" + lines[i]
    elif kind == "dedent":
        lines[i] = lines[i].lstrip()
    elif kind == "double":
        lines.insert(i, lines[i])
    elif kind == "anchor":
        lines[i] = lines[i] + " &x" if ":" in lines[i] else "*x"
    else:
        lines[i] = lines[i].replace(":", ": [", 1)
    return f"{kind} line {i + 1}", "\n".join(lines) + "\n"


WHOLE_DOCUMENT = "the configuration must be a mapping"  # a text cut to its comments: the root itself is wrong


def _explained(problems: list, text_level: bool) -> list[str]:
    """The problems that do not say where: a field path, or for a YAML text a line (or the whole document)."""
    return [
        str(p) for p in problems
        if p.severity == "error" and not p.path and not (text_level and ("line " in p.message or WHOLE_DOCUMENT in p.message))
    ]  # fmt: skip


def test_every_mutation_of_true_pacs_is_valid_and_passes_haproxy_c_or_is_refused_naming_where(site: Path):
    template_text = render_true_pacs()
    template = yaml.safe_load(template_text)
    rng = random.Random(SEED)
    env = HAProxyEnv(state_dir=site / "state", base_dir=site, cpu_count=2)
    checked: set[str] = set()  # haproxy -c once per distinct rendering
    counts = {"valid": 0, "refused": 0, "haproxy -c": 0}
    started = time.monotonic()
    for n in range(CORPUS):
        text_level = n >= CORPUS * 3 // 4
        try:
            if text_level:
                what, text = mutate_text(template_text, rng)
                loaded = load_text(text, base_dir=site)
            else:
                what, data = mutate(template, rng)
                loaded = validate_data(data, base_dir=site)
        except Exception as exc:  # noqa: BLE001 (the point of the corpus: name the input that let an exception escape)
            pytest.fail(f"input {n} ({what}) raised {exc!r}")
        if not loaded.ok:
            counts["refused"] += 1
            assert loaded.problems, f"input {n} ({what}) refused without a problem"
            assert _explained(loaded.problems, text_level) == [], f"input {n} ({what}): problems that name no field"
            assert all("\n" not in str(p) and len(str(p)) < 2000 for p in loaded.problems), f"input {n} ({what})"
            continue
        counts["valid"] += 1
        cfg = render(loaded.config, env)
        digest = hashlib.sha256(cfg.encode()).hexdigest()
        if digest in checked:
            continue
        checked.add(digest)
        path = site / "haproxy.cfg"
        path.write_text(cfg)
        result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
        counts["haproxy -c"] += 1
        assert result.returncode == 0, f"input {n} ({what}) is valid but haproxy -c refused it:\n{result.stderr[-2000:]}"
    elapsed = time.monotonic() - started
    print(f"hostile corpus: {CORPUS} inputs, {counts} in {elapsed:.1f}s")
    assert counts["valid"] > 10 and counts["refused"] > 50, counts  # both sides of the property are exercised
    assert elapsed < TIME_BOUND, f"the corpus took {elapsed:.0f}s"
