"""A Layer 7 service's rules as HAProxy ACLs, request actions and use_backend lines.

A rule's conditions of different kinds must all hold, and a list holds when any item does. Each
kind becomes one ACL named `<rule>_<kind>`; an ACL of several lines (one per header match) holds when
any line does, and a condition that names several ACLs holds when all of them do. Two rules cannot
make the same ACL name: the kinds are a fixed set, and no kind ends with '_' plus another kind.
"""

from __future__ import annotations

from ...model.config import Rule, VirtualService
from ...model.rewrite import Rewrite
from .quoting import LogFormat, Text, Word, fetch
from .tables import HEADER_MATCH
from .view import Acl, Directive

# The variable that marks a request taken by a use_service rule (see rule_actions).
RULE_VAR = "txn.pacslb_rule"


def rule_acls(rule: Rule, vs: VirtualService) -> list[Acl]:
    m = rule.match
    acls: list[Acl] = []
    if m.path_begins:
        acls.append(Acl(f"{rule.name}_path_begins", Word("path"), ("-m", "beg"), tuple(Text(p) for p in m.path_begins)))
    if m.path_ends:
        acls.append(Acl(f"{rule.name}_path_ends", Word("path"), ("-m", "end"), tuple(Text(p) for p in m.path_ends)))
    if m.host:
        host = Word(fetch("req.hdr", "host") + "," + fetch("field", 1, ":"))
        acls.append(Acl(f"{rule.name}_host", host, ("-m", "str", "-i"), tuple(Text(h) for h in m.host)))
    for header in m.header:
        if header.value is None or (header.value == "" and header.match != "exact"):
            # present; every value begins with and contains the empty text
            acls.append(Acl(f"{rule.name}_header", Word(fetch("req.hdr", header.name)), ("-m", "found")))
        elif header.value == "":
            acls.append(Acl(f"{rule.name}_header", Word(fetch("req.fhdr", header.name)), ("-m", "len", "0")))
        else:
            acls.append(
                Acl(
                    f"{rule.name}_header",
                    Word(fetch("req.fhdr", header.name)),
                    ("-m", HEADER_MATCH[header.match]),
                    (Text(header.value),),
                )
            )
    if m.sni:
        # with TLS terminated here the handshake's name is ssl_fc_sni; in tcp mode without it,
        # the name is read from the ClientHello (the frontend waits for it)
        sni = "ssl_fc_sni" if vs.tls else "req.ssl_sni"
        acls.append(Acl(f"{rule.name}_sni", Word(sni), ("-m", "str", "-i"), tuple(Text(s) for s in m.sni)))
    if m.source:
        acls.append(Acl(f"{rule.name}_source", Word("src"), (), tuple(m.source)))
    return acls


def _rule_condition(rule: Rule, vs: VirtualService) -> tuple[str, ...]:
    return tuple(dict.fromkeys(acl.name for acl in rule_acls(rule, vs)))


def rule_actions(vs: VirtualService, http: bool) -> tuple[list[Directive], list[tuple[str, str]]]:
    """The rules as request actions and use_backend lines, keeping 'first match wins'.

    HAProxy runs every http-request (tcp-request content) rule before any use_backend, so a deny or
    redirect rule would win over an earlier use_service rule that also matches. When the rules hold
    such an order, each use_service rule marks the request it takes (RULE_VAR), later rules skip marked
    requests, and use_backend follows the mark. Otherwise the rules are written as they read.
    """
    keyword = ("http-request",) if http else ("tcp-request", "content")
    seen_use_service = False
    # a rewrite changes what later conditions (and use_backend) would read: route by the mark instead
    needs_marks = http and any(rule.rewrite for rule in vs.rules)
    for rule in vs.rules:
        if rule.use_service:
            seen_use_service = True
        elif seen_use_service:
            needs_marks = True

    actions: list[Directive] = []
    use_backends: list[tuple[str, str]] = []
    marked = False  # an earlier use_service rule may have marked the request
    for rule in vs.rules:
        condition: tuple[str, ...] = _rule_condition(rule, vs)
        if marked:
            condition = ("!{", "var(" + RULE_VAR + ")", "-m", "found", "}", *condition)
        if rule.use_service:
            if needs_marks:
                taken = f"{{ var({RULE_VAR}) -m str {rule.name} }}"
                actions.append((*keyword, f"set-var({RULE_VAR})", f"str({rule.name})", "if", *condition))
                if http and rule.rewrite:
                    actions += rewrite_actions(rule.rewrite, tuple(taken.split()))
                use_backends.append((rule.use_service, taken))
                marked = True
            else:
                use_backends.append((rule.use_service, " ".join(condition)))
        elif rule.redirect:
            location = LogFormat(rule.redirect.location)
            actions.append((*keyword, "redirect", "location", location, "code", str(rule.redirect.code), "if", *condition))
        elif rule.deny:
            if http:
                actions.append((*keyword, "deny", "deny_status", str(rule.deny.status), "if", *condition))
            else:
                actions.append((*keyword, "reject", "if", *condition))
    return actions, use_backends


def prefix_regex(prefix: str) -> str:
    """A PCRE2 pattern matching `prefix` at the start of the path, the rest as group 1.

    Every character that is not a letter or digit is escaped: in PCRE2 a backslash before one always means
    the character itself, so no character of a path can become regex syntax.
    """
    return "^" + "".join(c if c.isascii() and c.isalnum() else "\\" + c for c in prefix) + "(.*)"


def rewrite_actions(rewrite: Rewrite, condition: tuple[str, ...]) -> list[Directive]:
    """The request changes of a rule's rewrite, each under `condition` (the rule took the request).

    `replace-path` matches the path without the query string and replaces the whole path with its format
    (a log-format string, so LogFormat doubles `%`); `\\1` in the format is the first group.
    """
    actions: list[Directive] = []
    if rewrite.path_prefix:
        replace = rewrite.path_prefix.replace + "\\1"
        actions.append(("http-request", "replace-path", Text(prefix_regex(rewrite.path_prefix.prefix)), LogFormat(replace)))
    if rewrite.path_regex:
        actions.append(("http-request", "replace-path", Text(rewrite.path_regex.pattern), LogFormat(rewrite.path_regex.replace)))
    if rewrite.host:
        actions.append(("http-request", "set-header", "Host", LogFormat(rewrite.host)))
    return [(*action, "if", *condition) for action in actions]
