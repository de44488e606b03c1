"""A runner of the OWASP CRS regression corpus (ftw YAML, Apache-2.0) against pacslb's WAF, sans framework.

  load_cases(root, files=None) -> [Case]        every enabled test of the corpus (or of the rule files named)
  Runner(host, port, error_log).run(case)       sends each stage's request to the VIP, finds the lines the WAF
                                                logged for it (a marker request after it closes the window) and
                                                judges the stage's output: log_contains, no_log_contains, status,
                                                response_contains, expect_error -> Result
  rule_levels(crs_rules_dir) -> {id: level}     each CRS rule's paranoia level, from its tags
  known_reason(result, levels, paranoia)        why a failing test is expected to fail through pacslb's WAF

The corpus is written for ModSecurity in DetectionOnly at paranoia 4 behind no proxy; pacslb runs it in block mode at
paranoia 1 behind HAProxy, which is the point (what an administrator gets), and the reasons say what that changes.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CORPUS = Path("/work/shared/waf/crs-v3.3.4-regression/tests")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")


@dataclass(frozen=True)
class Stage:
    request: bytes
    output: dict


@dataclass(frozen=True)
class Case:
    rule_file: str  # REQUEST-942-APPLICATION-ATTACK-SQLI
    name: str  # 942100-1
    stages: tuple[Stage, ...]


@dataclass
class Result:
    case: Case
    passed: bool
    why: str = ""
    statuses: list[int | None] = field(default_factory=list)
    logged_ids: set[str] = field(default_factory=set)


def _request(stage_input: dict) -> bytes:
    if stage_input.get("encoded_request"):
        return base64.b64decode(stage_input["encoded_request"])
    if stage_input.get("raw_request"):
        raw = stage_input["raw_request"]
        return raw.encode("latin-1", "replace") if isinstance(raw, str) else bytes(raw)
    method = str(stage_input.get("method", "GET"))
    uri = str(stage_input.get("uri", "/"))
    version = str(stage_input.get("version", "HTTP/1.1"))
    headers = dict(stage_input.get("headers") or {})
    data = stage_input.get("data")
    if isinstance(data, list):
        data = "\r\n".join(str(d) for d in data)
    body = b"" if data is None else str(data).encode("latin-1", "replace")
    if body and not stage_input.get("stop_magic"):
        # as ftw does ("magic"): a body gets its length, and a form's content type when it names none
        if not any(k.lower() == "content-length" for k in headers):
            headers["Content-Length"] = str(len(body))
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    line = f"{method} {uri} {version}".rstrip() if version else f"{method} {uri}"
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1", "replace") + body


def load_cases(root: Path = CORPUS, files: list[str] | None = None) -> list[Case]:
    """The enabled tests of the corpus, in file order (only those of `files`, names like '942100', when given)."""
    cases = []
    for path in sorted(root.glob("*/*.yaml")):
        if files is not None and path.stem not in files:
            continue
        doc = yaml.safe_load(path.read_text(errors="replace"))
        if not doc or not doc.get("meta", {}).get("enabled", True):
            continue
        for test in doc.get("tests") or []:
            stages = tuple(Stage(_request(s["stage"]["input"]), s["stage"].get("output") or {}) for s in test.get("stages") or [])
            cases.append(Case(path.parent.name, str(test.get("test_title", path.stem)), stages))
    return cases


def rule_levels(rules: Path = CRS_RULES) -> dict[str, int]:
    """{rule id: paranoia level} from the CRS rule files' `tag:'paranoia-level/N'`."""
    levels: dict[str, int] = {}
    for path in rules.glob("*.conf"):
        for block in re.split(r"\n(?=SecRule|SecAction)", path.read_text(errors="replace")):
            rule = re.search(r"id:(\d+)", block)
            level = re.search(r"paranoia-level/(\d)", block)
            if rule and level:
                levels[rule.group(1)] = int(level.group(1))
    return levels


def _read_response(sock: socket.socket, timeout: float) -> tuple[int | None, bytes]:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        data = head + b"\r\n\r\n" + body
    except (TimeoutError, OSError):
        pass
    status = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", data)
    return (int(status.group(1)) if status else None), data


class Runner:
    """Sends the corpus's requests to a VIP, one at a time, and reads what the WAF logged for each."""

    def __init__(self, host: str, port: int, error_log: Path, timeout: float = 3.0) -> None:
        self.host, self.port, self.error_log, self.timeout = host, port, error_log, timeout
        self._marker = 0

    def _log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def _send(self, request: bytes) -> tuple[int | None, bytes, str | None]:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.sendall(request)
                status, response = _read_response(sock, self.timeout)
                return status, response, None
        except OSError as exc:
            return None, b"", str(exc)

    def _window(self, offset: int) -> str:
        """The WAF's log from `offset` up to a marker request sent now (ModSecurity logs each request as it ends)."""
        self._marker += 1
        tag = f"pacslb-crs-marker-{self._marker}"
        self._send(f"GET /{tag}?x=%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\r\nHost: localhost\r\n"
                   "User-Agent: pacslb-crs\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            end = text.find(tag)
            if end >= 0:
                return text[: text.rfind("\n", 0, end) + 1]
            time.sleep(0.01)
        raise AssertionError(f"the marker {tag} never reached {self.error_log}")

    def run(self, case: Case) -> Result:
        result = Result(case, True)
        for stage in case.stages:
            offset = self._log_size()
            status, response, error = self._send(stage.request)
            log = self._window(offset)
            result.statuses.append(status)
            result.logged_ids |= set(re.findall(r'\[id "(\d+)"\]', log))
            why = _judge(stage.output, status, response, error, log)
            if why:
                result.passed, result.why = False, why
                break
        return result


def _judge(output: dict, status: int | None, response: bytes, error: str | None, log: str) -> str:
    """'' when the stage passes, else what differs."""
    if "log_contains" in output and not re.search(output["log_contains"], log):
        return f"log lacks {output['log_contains']}"
    if "no_log_contains" in output and re.search(output["no_log_contains"], log):
        return f"log has {output['no_log_contains']}"
    if "status" in output:
        wanted = output["status"] if isinstance(output["status"], list) else [output["status"]]
        if status not in wanted:
            return f"status {status}, expected {wanted}"
    if "response_contains" in output and not re.search(output["response_contains"].encode(), response):
        return f"response lacks {output['response_contains']}"
    if output.get("expect_error") and status is not None and error is None:
        return f"expected a connection error, got {status}"
    return ""


def expected_rule(case: Case) -> str | None:
    """The rule id a case's log_contains or no_log_contains names."""
    for stage in case.stages:
        for key in ("log_contains", "no_log_contains"):
            found = re.search(r"(\d{6})", str(stage.output.get(key, "")))
            if found:
                return found.group(1)
    return None


def known_reason(result: Result, levels: dict[str, int], paranoia: int = 1) -> str:
    """Why a failure is expected through pacslb's WAF in block mode at `paranoia`, or '' when it is not understood."""
    rule = expected_rule(result.case)
    if rule and levels.get(rule, 1) > paranoia and result.why.startswith("log lacks"):
        return f"paranoia: rule {rule} is at paranoia level {levels[rule]}, the policy runs at {paranoia}"
    if result.logged_ids & {"200002", "200003", "200004"}:
        return "block mode: ModSecurity refused the body (multipart strict check, LF line ends) before the rule's phase ran"
    if (result.why.startswith(("log lacks", "status 400", "expected a connection error")) and 400 in result.statuses
            and not result.logged_ids):  # fmt: skip
        return "HAProxy: HAProxy refuses the malformed request (400) before it reaches the WAF"
    if result.why.startswith("log lacks") and result.logged_ids & {"949110", "920100", "920270", "920280", "920290"}:
        return "block mode: the request was blocked (or refused as malformed) before the rule's phase ran"
    if result.why.startswith("log lacks") and not result.logged_ids:
        return "HAProxy: the request reaches the WAF normalised by HAProxy (HTTP/1.1, lower-case header names), so the rule sees nothing to match"
    if result.why.startswith("log has"):
        return "HAProxy: the rule fires on what HAProxy adds or changes (HTTP/1.1, Connection, X-Forwarded-For)"
    return ""
