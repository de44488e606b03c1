"""A real server for the HA tests: HTTP/1.0, answers every GET with its own name (one connection per request).

python ha_http_server.py NAME ADDRESS PORT      # prints "ready" once it listens; ends on SIGTERM
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, ADDRESS, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = NAME.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((ADDRESS, PORT), Handler)
server.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("ready", flush=True)
server.serve_forever()
