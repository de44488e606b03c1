"""The management REST API (HTTPS, /api/v1) with users, roles, sessions, API keys and the audit log.

auth.py      who is asking: sessions (cookie + CSRF), API keys, roles, login throttling, audit
app.py       create_management_app(controller): the FastAPI app (and the WebUI's routes when present)
server.py    the subsystem that serves it over HTTPS inside the controller's event loop
"""

API_V1 = "/api/v1"
