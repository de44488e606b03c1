"""The WebUI: server-rendered pages (Jinja2) over the management API's authentication.

`web_router` is included by the management app (pacslb.api.app), which also mounts STATIC_DIR at
/static. Pages:

  /login, /logout              the login form (throttled by the AuthService), the end of a session
  /                            dashboard: every virtual service and real server, live (a fragment every 2 s),
                               with drain / halt / online buttons for operators and admins
  /services[/NAME[/...]]       virtual services, health checks, real servers and rules: forms whose
                               validation problems show beside their fields
  /revisions[/ID]              history, what each revision changed, rollback
  /certificates                certificate files with their expiry
  /graphs                      requests, sessions and errors per virtual service (metrics history)
  /log                         the end of HAProxy's log, live

The metrics sampler that feeds /graphs is the subsystem pacslb.web.history:factory.
"""

from fastapi import APIRouter

from .context import STATIC_DIR, TEMPLATES_DIR

web_router = APIRouter(include_in_schema=False)


def _include() -> None:
    from . import pages, revisions, services

    web_router.include_router(pages.router)
    web_router.include_router(services.router)
    web_router.include_router(revisions.router)


_include()

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "web_router"]
