"""A real server for the HA and cluster tests: HTTP/1.0, answers every GET with a name (one connection per request).

python ha_http_server.py NAME ADDRESS PORT [NODES]   # prints "ready" once it listens; ends on SIGTERM

Without NODES the answer is NAME (a node's own real server answers with the node's name). With NODES,
"10.88.0.2=lb1,10.88.0.3=lb2,...", the answer is the name of the node whose HAProxy made the connection (found by
the connection's source address), or NAME when the source is none of them: a real server shared by the nodes of
a cluster still tells the client which node took its connection.
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, ADDRESS, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
NODES = dict(pair.split("=", 1) for pair in sys.argv[4].split(",")) if len(sys.argv) > 4 else {}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = NODES.get(self.client_address[0], NAME).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the cluster tests open connections 50 at once through three nodes


server = Server((ADDRESS, PORT), Handler)
server.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("ready", flush=True)
server.serve_forever()
