"""A webhook receiver for keygate's tests that checks every delivery with
the reference verifier of Standard Webhooks (the `standardwebhooks` package
from PyPI), not with anything of keygate's.

    python3 webhook_receiver.py SECRETS_FILE

It listens on a free loopback port and prints `listening PORT` once bound.
SECRETS_FILE holds a JSON object {"/path": "whsec_..."}, read at each
request (the test writes it once its endpoints, and their secrets, exist).
A POST that verifies with its path's secret is answered 204, any other 400;
before the answer, one JSON line goes to stdout:
{"path", "id", "verified": true, "type"} or {"path", "id", "verified":
false, "error"}.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

SECRETS_FILE = sys.argv[1]
PRINTING = threading.Lock()


def report(record):
    with PRINTING:
        print(json.dumps(record), flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name: value for name, value in self.headers.items()}
        record = {"path": self.path, "id": self.headers.get("webhook-id", "")}
        try:
            with open(SECRETS_FILE, encoding="utf-8") as f:
                secret = json.load(f)[self.path]
            payload = Webhook(secret).verify(body, headers)
            record.update(verified=True, type=payload["type"])
            status = 204
        except Exception as error:  # the verifier's refusal, or no secret
            record.update(verified=False, error=f"{type(error).__name__}: {error}")
            status = 400
        report(record)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
report_line = f"listening {server.server_address[1]}"
with PRINTING:
    print(report_line, flush=True)
server.serve_forever()
