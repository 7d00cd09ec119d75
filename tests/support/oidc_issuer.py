"""A small OpenID issuer for keygate's federation tests, as a real process.

Publishes /.well-known/openid-configuration and a JWKS, and mints
GitHub-Actions-shaped ID tokens (ES256) on request. Prints "listening PORT"
once ready. Its issuer is http://127.0.0.1:PORT.

  POST /mint    {"claims": {...}, "remove": [...], "header": {...},
                 "alg": "ES256"|"none"|"HS256", "key": "current"|"foreign"|"previous"}
                -> the token as text
  POST /rotate  {"keep_previous": false} -> {"kid": new kid}
  POST /mode    {"jwks": "normal"|"huge"|"slow"|"redirect"|"error", "delay": seconds}
  GET  /stats   -> {"discovery": n, "jwks": n}
"""

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.kid = uuid.uuid4().hex[:16]

    def jwk(self):
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }

    def sign(self, data):
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


STATE = {
    "current": Key(),
    "previous": None,
    "foreign": Key(),
    "mode": "normal",
    "delay": 0.0,
    "discovery": 0,
    "jwks": 0,
}
LOCK = threading.Lock()
ISSUER = ""
PORT = 0


def mint(request):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "keygate",
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app",
        "repository_owner": "acme",
        "ref": "refs/heads/main",
        "workflow": "deploy",
        "event_name": "push",
        "run_attempt": "1",
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": str(uuid.uuid4()),
    }
    claims.update(request.get("claims", {}))
    for name in request.get("remove", []):
        claims.pop(name, None)
    alg = request.get("alg", "ES256")
    with LOCK:
        key = STATE[request.get("key", "current")] or STATE["current"]
    header = {"alg": alg, "typ": "JWT"}
    if alg == "ES256":
        header["kid"] = key.kid
    header.update(request.get("header", {}))
    signing_input = (
        b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    ).encode()
    if alg == "none":
        signature = b""
    elif alg == "HS256":
        secret = request.get("secret", "shared").encode()
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    else:
        signature = key.sign(signing_input)
    return signing_input.decode() + "." + b64(signature)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json", extra=None):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        if self.path == "/.well-known/openid-configuration":
            with LOCK:
                STATE["discovery"] += 1
            self.send(200, json.dumps({"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"}))
        elif self.path == "/jwks":
            with LOCK:
                STATE["jwks"] += 1
                mode, delay = STATE["mode"], STATE["delay"]
                keys = [STATE["current"].jwk()]
                if STATE["previous"] is not None:
                    keys.append(STATE["previous"].jwk())
            if mode == "slow":
                time.sleep(delay)
                self.send(200, json.dumps({"keys": keys}))
            elif mode == "huge":
                # Several MiB, streamed without a length.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(b'{"keys": [' + json.dumps(keys[0]).encode())
                    filler = b"," + json.dumps({"kty": "oct", "k": "A" * 1000}).encode()
                    for _ in range(4000):
                        self.wfile.write(filler)
                    self.wfile.write(b"]}")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
            elif mode == "redirect":
                self.send(302, "", extra={"Location": "http://localhost:%d/jwks" % PORT})
            elif mode == "error":
                self.send(500, "{}")
            else:
                self.send(200, json.dumps({"keys": keys}))
        elif self.path == "/stats":
            with LOCK:
                self.send(200, json.dumps({"discovery": STATE["discovery"], "jwks": STATE["jwks"]}))
        else:
            self.send(404, "{}")

    def do_POST(self):
        request = self.body()
        if self.path == "/mint":
            self.send(200, mint(request), "text/plain")
        elif self.path == "/rotate":
            with LOCK:
                STATE["previous"] = STATE["current"] if request.get("keep_previous") else None
                STATE["current"] = Key()
                kid = STATE["current"].kid
            self.send(200, json.dumps({"kid": kid}))
        elif self.path == "/mode":
            with LOCK:
                STATE["mode"] = request.get("jwks", "normal")
                STATE["delay"] = float(request.get("delay", 0))
            self.send(200, "{}")
        else:
            self.send(404, "{}")


def main():
    global ISSUER, PORT
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    PORT = server.server_address[1]
    ISSUER = "http://127.0.0.1:%d" % PORT
    print("listening %d" % PORT, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
