"""The WebUI: server-rendered pages (Jinja2) over the management API's authentication.

`mount_web(app)` adds `web_router` and STATIC_DIR (at /static) to the management app (pacslb.api.app);
the composition root (pacslb.appliance) does it, so the API knows nothing of the WebUI. Pages:

  /login, /logout              the login form (throttled by the AuthService), the end of a session
  /                            dashboard: every virtual service and real server, live (a fragment every 2 s),
                               with drain / halt / online buttons for operators and admins
  /services[/NAME[/...]]       virtual services, health checks, real servers and rules: forms whose
                               validation problems show beside their fields
  /revisions[/ID]              history, what each revision changed, rollback
  /certificates                certificate files with their expiry; admins upload, make (self-signed, CSR),
                               assign and delete them
  /graphs                      requests, sessions and errors per virtual service (metrics history)
  /log                         the end of HAProxy's log, live
  /cluster                     the cluster: nodes, health, the revision each runs, drained, VIPs
  /gslb                        GSLB: per name, which sites are answered to which client networks and why
  /backup                      download a backup, upload one to restore (admins)
  /ha                          the HA pair: both nodes, VRRP state, last sync, split brain; promote/demote (admins)
  /alerts                      alert receivers with their counters, the last alerts; a test alert (admins)
  /account                     change my password (a one-time password first of all), my API keys
  /users                       users, roles, password resets, login blocks, every API key (admins)
  /audit                       the audit log, filtered by user, object and time (admins)

The metrics sampler that feeds /graphs is pacslb.web.history.Sampler.
"""

from fastapi import APIRouter

from .context import STATIC_DIR, TEMPLATES_DIR

web_router = APIRouter(include_in_schema=False)


def _include() -> None:
    from . import (
        account,
        alerts,
        audit,
        backup,
        certificates,
        cluster,
        gslb,
        ha,
        pages,
        persistence,
        revisions,
        services,
        users,
        verify,
        waf,
    )

    web_router.include_router(pages.router)
    web_router.include_router(gslb.router)  # GSLB (issue 19)
    web_router.include_router(cluster.router)  # the cluster (issue 20)
    web_router.include_router(services.router)
    web_router.include_router(revisions.router)
    web_router.include_router(backup.router)
    web_router.include_router(waf.router)  # the WAF tier (issue 18)
    web_router.include_router(verify.router)
    web_router.include_router(certificates.router)  # upload, self-signed, CSR, assign, delete (issue 16)
    web_router.include_router(ha.router)  # the HA pair (issue 16)
    web_router.include_router(alerts.router)  # alert receivers, test alert (issue 16)
    web_router.include_router(persistence.router)  # clear a persistence table (issue 15)
    web_router.include_router(account.router)  # issue 16: account, users, audit
    web_router.include_router(users.router)
    web_router.include_router(audit.router)


_include()


def mount_web(app) -> None:
    """The WebUI's pages and static files on the management app, and its flash messages' store."""
    from collections import OrderedDict

    from fastapi.staticfiles import StaticFiles

    app.state.web_flash = OrderedDict()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(web_router)
    from .errorpage import install_error_page

    install_error_page(app)  # a browser's failed page request gets a page, not the API's JSON


__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "mount_web", "web_router"]
