"""The HAProxy configuration, rendered from the model: a pure function with deterministic output.

Two steps, as STYLE.md asks. Transforms turn model objects into plain view objects in HAProxy's words
(global, defaults, frontend, backend, server, acl); the templates in `templates/` only lay them out.
Free text never reaches the file unquoted: view objects carry it as `Text`, `LogFormat` or `Word`, and
the templates' `line` filter quotes each kind the way HAProxy reads it.

This module holds the entry points (`render`, `build`, `backend_view`), the Jinja environment and the
global and defaults sections; the rest lives in modules of one purpose each, none of which imports
this one:

  quoting.py   free text and how each kind is quoted
  view.py      the view objects
  env.py       HAProxyEnv, what the renderer is given beside the model
  tables.py    model values in HAProxy's words, and shared fixed values
  shared.py    addresses, timeout overrides and header rules, for frontends and backends alike
  rules.py     a service's rules as ACLs, request actions and use_backend lines
  frontend.py  the frontend of a service with listeners
  backend.py   the backend of a service with real servers

Names: a virtual service with real servers is a backend of the same name, a Layer 7 service with
listeners is a frontend of the same name, and servers are named after the real servers; the runtime
API addresses them as `<service>/<real server>`. Layer 4 services belong to nftables and are skipped.

The renderer reads no clock, environment or file (the templates aside): everything it needs comes in
through `config` and `HAProxyEnv`, and the same input gives the same bytes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from ...model.config import Config, VirtualService
from ...model.types import MARK
from ...model.waf import policies
from ...paths import StatePaths
from .. import templating
from .backend import transform_backend
from .env import HAProxyEnv
from .frontend import transform_frontend
from .quoting import LogFormat, Text, Word, fetch, logformat, quote, render_arg, render_line, word
from .section_cache import SectionCache
from .tables import LOG_TO_STREAM, MOZILLA_CIPHERSUITES, MOZILLA_INTERMEDIATE_CIPHERS, TIMEOUT_NAMES
from .view import Acl, Backend, Bind, Defaults, Directive, Frontend, Global, HAProxyConfig, Server, Skipped

# Other modules and the tests import these names from here; they stay importable from `render`.
__all__ = [
    "Acl",
    "Backend",
    "Bind",
    "Defaults",
    "Directive",
    "Frontend",
    "Global",
    "HAProxyConfig",
    "HAProxyEnv",
    "LogFormat",
    "Server",
    "Skipped",
    "Text",
    "Word",
    "backend_view",
    "build",
    "fetch",
    "logformat",
    "quote",
    "render",
    "render_arg",
    "render_line",
    "word",
]

TEMPLATES = Path(__file__).parent / "templates"

# HAProxy 2.6 runs at most 64 threads (MAX_THREADS of the Debian build).
MAX_THREADS = 64


# --- entry point ----------------------------------------------------------------------------------


def render(config: Config, env: HAProxyEnv, cache: SectionCache | None = None) -> str:
    """The whole haproxy.cfg for `config`: the same input always gives the same bytes.

    With `cache`, the sections of every service whose input did not change since the cache's last render are
    not built again but taken from it (section_cache.py says what a service's input is); the bytes are the same."""
    if cache is not None and not policies(config):
        view, texts = _build_reusing(config, env, cache)
    else:
        view = build(config, env)
        texts = [_section_text(section) for section in view.sections]
    prometheus = word(str(StatePaths(env.state_dir).haproxy_prometheus_socket)) if env.prometheus else None
    template = _environment().get_template("haproxy.cfg.j2")
    return template.render(config=view, section_texts=texts, prometheus_socket=prometheus).rstrip("\n") + "\n"


def build(config: Config, env: HAProxyEnv) -> HAProxyConfig:
    """The view objects of the whole configuration (the first step of `render`)."""
    reached_from = _reached_from(config)
    sections = [s for vs in config.virtual_services for s in _service_sections(vs, config, env, reached_from.get(vs.name, []))]
    return _finish(_head(config, env, tuple(sections)), config, env)


def _head(config: Config, env: HAProxyEnv, sections: tuple[Frontend | Backend | Skipped, ...]) -> HAProxyConfig:
    from .resolvers import transform_resolvers  # real servers named by DNS (issue 15)

    return HAProxyConfig(
        _transform_global(config, env), _transform_defaults(config), sections, resolvers=transform_resolvers(config)
    )


def _service_sections(
    vs: VirtualService, config: Config, env: HAProxyEnv, reached_from: list[VirtualService]
) -> list[Frontend | Backend | Skipped]:
    """The sections of one service, in file order: its frontend and its backend, or a comment for a Layer 4 one."""
    if vs.mode.is_layer4:
        return [Skipped(vs.name, vs.mode.value, "nftables")]
    sections: list[Frontend | Backend | Skipped] = []
    if vs.listen:
        sections.append(transform_frontend(vs, config, env))
    if vs.real_servers:
        sections.append(transform_backend(vs, config, env, reached_from))
    return sections


def _finish(view: HAProxyConfig, config: Config, env: HAProxyEnv) -> HAProxyConfig:
    """The steps after the sections are built: the WAF tier, the HA pair, a cluster node's peers."""
    from .waf import apply_waf  # the WAF tier (issue 18): requests through Apache and back

    return _with_peers(apply_waf(view, config, env), config)


def _with_peers(view: HAProxyConfig, config: Config) -> HAProxyConfig:
    from .ha import apply_cluster, apply_ha  # the HA pair (issue 7): peers, non-local binds; a cluster node's peers

    return apply_cluster(apply_ha(view, config), config)


def _build_reusing(config: Config, env: HAProxyEnv, cache: SectionCache) -> tuple[HAProxyConfig, list[str]]:
    """`build` without the services' sections, and the text of every section, reused from `cache` for the
    services whose input is unchanged. Only without a WAF policy: `apply_waf` mixes services' sections. The
    HA pair and a cluster node change each section alone (from `config.ha` and `config.cluster`, in the context)."""
    head = _head(config, env, ())
    context = (env, config.model_copy(update={"virtual_services": []}).model_dump_json(context=MARK))
    known = cache.begin(context)
    used: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
    dumps: dict[int, str] = {}  # each service is dumped once per render (they all live until it ends)

    def dump(vs: VirtualService) -> str:
        text = dumps.get(id(vs))
        if text is None:
            text = dumps[id(vs)] = vs.model_dump_json(context=MARK)
        return text

    reached_from = _reached_from(config)
    texts: list[str] = []
    hits = misses = 0
    for vs in config.virtual_services:
        reached = reached_from.get(vs.name, [])
        key = (dump(vs), tuple(dump(other) for other in reached))
        found = known.get(key)
        if found is None:
            misses += 1
            sections = _service_sections(vs, config, env, reached)
            found = tuple(_section_text(s) for s in _with_peers(_head_only(head, sections), config).sections)
        else:
            hits += 1
        if len(used) < cache.limit:
            used[key] = found
        texts.extend(found)
    cache.end(context, used, hits, misses)
    return _finish(head, config, env), texts


def _head_only(head: HAProxyConfig, sections: list[Frontend | Backend | Skipped]) -> HAProxyConfig:
    return HAProxyConfig(head.global_, head.defaults, tuple(sections))


def _section_text(section: Frontend | Backend | Skipped) -> str:
    """One section laid out by its macro (templates/macros.j2), as haproxy.cfg.j2 places it."""
    macros = _macros()
    if section.section == "frontend":
        return macros.frontend_section(section)
    if section.section == "backend":
        return macros.backend_section(section)
    return macros.skipped_section(section)


def backend_view(config: Config, env: HAProxyEnv, name: str) -> Backend | None:
    """The backend of one virtual service, as `build` makes it (the runtime API's `add server` reuses its server lines)."""
    vs = config.service(name)
    if vs is None or vs.mode.is_layer4 or not vs.real_servers:
        return None
    return transform_backend(vs, config, env, _reached_from(config).get(vs.name, []))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """The Jinja environment, made once per process: compiling the templates took about 90 ms of each render."""
    return templating.environment(TEMPLATES, {"quote": quote, "logformat": logformat, "word": word, "line": render_line})


@functools.lru_cache(maxsize=1)
def _macros():
    """The macros of templates/macros.j2, as haproxy.cfg.j2 imports them (without its context)."""
    return _environment().get_template("macros.j2").module


def _reached_from(config: Config) -> dict[str, list[VirtualService]]:
    """For each backend-only service, the services whose rules or default reach it, in file order."""
    reached: dict[str, list[VirtualService]] = {}
    for vs in config.virtual_services:
        targets = [r.use_service for r in vs.rules if r.use_service]
        if vs.default_service:
            targets.append(vs.default_service)
        for target in dict.fromkeys(targets):
            reached.setdefault(target, []).append(vs)
    return reached


# --- global and defaults --------------------------------------------------------------------------


def _transform_global(config: Config, env: HAProxyEnv) -> Global:
    settings = config.settings
    paths = StatePaths(env.state_dir)
    return Global(
        logs=(_log_target(config),),
        maxconn=settings.max_connections,
        nbthread=min(settings.threads or max(env.cpu_count, 1), MAX_THREADS),
        hard_stop_after=str(settings.hard_stop_after),
        max_reloads=settings.max_reloads,
        stats_socket=Word(str(paths.haproxy_admin_socket)),
        server_state_file=Word(str(paths.haproxy_server_state)),
        ssl_bind_ciphers=MOZILLA_INTERMEDIATE_CIPHERS,
        ssl_bind_ciphersuites=MOZILLA_CIPHERSUITES,
        ssl_bind_options="prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets",
        ssl_server_options="ssl-min-ver TLSv1.2",
        **_worker_privileges(config, env, paths),
    )


def _worker_privileges(config: Config, env: HAProxyEnv, paths: StatePaths) -> dict:
    """chroot, user and group of HAProxy's workers, and a note for each privilege a worker must keep.

    The master stays root: it reads the configuration, certificates, error pages and server-state file,
    resolves real servers' names, binds every socket, and only then forks the workers, which chroot and
    drop to `env.user` (haproxy.c). What a worker does itself afterwards decides what it may lose.
    """
    notes: list[str] = []
    chroot = env.chroot
    if chroot and config.settings.log.target.startswith("/"):
        # a worker sends each log line to the syslog socket by its path, which it would look up inside the chroot
        chroot = False
        notes.append("no chroot: the workers send their log to a Unix socket by its path")
    user, group = env.user, env.group
    transparent = [vs.name for vs in config.virtual_services if vs.transparent and not vs.mode.is_layer4 and vs.real_servers]
    if (user or group) and transparent:
        # `usesrc clientip` sets IP_TRANSPARENT on every connection to a real server: CAP_NET_ADMIN, which
        # a worker of HAProxy 2.6 cannot keep once it drops root (2.6 knows no `setcap`)
        user = group = None
        notes.append(f"the workers stay root: transparent proxying ({', '.join(transparent)}) needs CAP_NET_ADMIN")
    return {
        "chroot": Word(str(paths.haproxy_chroot)) if chroot else None,
        "user": Word(user) if user else None,
        "group": Word(group) if group else None,
        "notes": tuple(notes),
    }


def _log_target(config: Config) -> Directive:
    """'stdout' (or 'stderr') writes raw lines to the stream; a path or HOST:PORT is a syslog server."""
    log = config.settings.log
    if log.target in LOG_TO_STREAM:
        return ("log", log.target, "format", "raw", log.facility, log.level)
    return ("log", Word(log.target), log.facility, log.level)


def _transform_defaults(config: Config) -> Defaults:
    timeouts = config.settings.timeouts
    return Defaults(
        retries=config.settings.retries,
        timeouts=tuple((TIMEOUT_NAMES[name], str(getattr(timeouts, name))) for name in TIMEOUT_NAMES),
    )
