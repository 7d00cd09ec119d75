"""Checks tests/support/oidc_provider.mjs end to end, with the standard library.

  KEYGATE_TEST_OIDC_PROVIDER=.../node_modules/oidc-provider \
    python3 tests/support/oidc_provider_smoke.py

Starts the provider, reads discovery and the JWKS, then signs in as each
account: authorization request (PKCE S256, state, nonce), the sign-in form,
the redirect to the client (not followed), the code exchanged with
client_secret_basic (client_secret_post for a second client), the ID
token's claims; a second exchange of a code must fail with invalid_grant.
Also: an unknown login, the cancel button, a missing PKCE challenge, and a
second sign-in in the same browser session (no form then). Prints what it
saw; exits non-zero on the first failure.
"""

import base64
import hashlib
import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REDIRECT = "http://127.0.0.1:9/cb"
CLIENTS = [
    {"client_id": "keygate", "client_secret": "s3cret", "redirect_uris": [REDIRECT]},
    {"client_id": "post", "client_secret": "p0st", "redirect_uris": [REDIRECT],
     "token_endpoint_auth_method": "client_secret_post"},
]
ACCOUNTS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice"},
    "unverified": {"email": "unverified@example.com", "email_verified": False, "name": "Un Verified"},
    "outsider": {"email": "outsider@other.test", "email_verified": True, "name": "Outsider"},
    "noemail": {"name": "No Email"},
}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """A cookie jar; answers (status, headers, body) and never follows redirects."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())

    def request(self, url, data=None, headers=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, headers=headers or {})
        try:
            with self.opener.open(req) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read().decode()

    def follow(self, url, data=None):
        """Request, then follow redirects until a page or the client's redirect URI."""
        status, headers, body = self.request(url, data)
        while status in (302, 303):
            url = urllib.parse.urljoin(url, headers["Location"])
            if url.startswith(REDIRECT):
                return url, None
            status, headers, body = self.request(url)
        check(status == 200, f"expected a page at {url}, got {status}: {body[:300]}")
        return url, body


def check(condition, message):
    if not condition:
        sys.exit(f"FAIL: {message}")


def form(page):
    """The sign-in form's action and field names."""
    match = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page, re.S)
    check(match, f"no form in page: {page[:500]}")
    return match.group(1), re.findall(r'name="([^"]+)"', match.group(2))


def authorize(issuer, browser, client="keygate", challenge=True):
    verifier = b64url(secrets.token_bytes(32))
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": client, "redirect_uri": REDIRECT,
              "scope": "openid email profile", "state": state, "nonce": nonce}
    if challenge:
        params["code_challenge"] = b64url(hashlib.sha256(verifier.encode()).digest())
        params["code_challenge_method"] = "S256"
    url, page = browser.follow(f"{issuer}/auth?{urllib.parse.urlencode(params)}")
    return url, page, verifier, state, nonce


def redirect_params(url):
    check(url.startswith(REDIRECT + "?"), f"not a redirect to the client: {url}")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def exchange(issuer, code, verifier, client="keygate", secret="s3cret", basic=True):
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": REDIRECT, "code_verifier": verifier}
    headers = {}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()
    else:
        data.update(client_id=client, client_secret=secret)
    status, _, body = Browser().request(f"{issuer}/token", data, headers)
    return status, json.loads(body)


def sign_in(issuer, login, client="keygate", secret="s3cret", basic=True):
    browser = Browser()
    url, page, verifier, state, nonce = authorize(issuer, browser, client)
    action, fields = form(page)
    check(fields == ["login"], f"sign-in fields {fields}")
    url, page = browser.follow(action, {"login": login})
    check(page is None, f"no redirect after sign-in: {page and page[:500]}")
    got = redirect_params(url)
    check(got.get("state") == state and got.get("iss") == issuer and "code" in got,
          f"redirect {url}")
    status, tokens = exchange(issuer, got["code"], verifier, client, secret, basic)
    check(status == 200 and "id_token" in tokens, f"token: {status} {tokens}")
    header, payload, _ = tokens["id_token"].split(".")
    header, claims = json.loads(unb64url(header)), json.loads(unb64url(payload))
    check(header["alg"] == "RS256", f"header {header}")
    check(claims["iss"] == issuer and claims["aud"] == client and claims["nonce"] == nonce
          and claims["sub"] == login, f"claims {claims}")
    expected = ACCOUNTS[login]
    for name in ("email", "email_verified", "name"):
        check(claims.get(name) == expected.get(name), f"{login}: {name} {claims.get(name)!r}")
    status, again = exchange(issuer, got["code"], verifier, client, secret, basic)
    check(status == 400 and again.get("error") == "invalid_grant", f"second exchange: {status} {again}")
    return browser, header, claims, tokens


def main():
    env = dict(os.environ)
    check(env.get("KEYGATE_TEST_OIDC_PROVIDER"), "set KEYGATE_TEST_OIDC_PROVIDER")
    config = json.dumps({"clients": CLIENTS, "accounts": ACCOUNTS})
    started = time.monotonic()
    proc = subprocess.Popen(["node", os.path.join(HERE, "oidc_provider.mjs"), config],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        print(f"start-up {time.monotonic() - started:.2f} s: {line.strip()}")
        check(line.startswith("listening http://127.0.0.1:"), f"first line {line!r}")
        issuer = line.split()[1]

        status, _, body = Browser().request(f"{issuer}/.well-known/openid-configuration")
        discovery = json.loads(body)
        check(status == 200 and discovery["issuer"] == issuer, f"discovery {status} {body[:300]}")
        status, _, body = Browser().request(discovery["jwks_uri"])
        keys = json.loads(body)["keys"]
        check(status == 200 and [k["alg"] for k in keys] == ["RS256"], f"jwks {body[:300]}")
        print("discovery and JWKS: ok")

        for login in ACCOUNTS:
            browser, header, claims, tokens = sign_in(issuer, login)
            print(f"{login}: header {header}\n  claims {claims}\n  token response keys {sorted(tokens)}")
        sign_in(issuer, "alice", "post", "p0st", basic=False)
        print("client_secret_post: ok")

        # The same browser signs in again without a form (its session).
        browser, *_ = sign_in(issuer, "alice")
        url, page, *_ = authorize(issuer, browser)
        check(page is None and "code" in redirect_params(url), f"second sign-in: {url} {page}")
        print("second sign-in in the same session: redirected at once")

        browser = Browser()
        url, page, *_ = authorize(issuer, browser)
        action, _ = form(page)
        _, page = browser.follow(action, {"login": "mallory"})
        check('<p role="alert">unknown login: mallory</p>' in page, f"unknown login: {page}")
        url, _ = browser.follow(action + "/abort", {})
        got = redirect_params(url)
        check(got.get("error") == "access_denied", f"cancel: {url}")
        print(f"unknown login: form again; cancel: {got}")

        url, page, *_ = authorize(issuer, Browser(), challenge=False)
        got = redirect_params(url)
        check(got.get("error") == "invalid_request", f"without PKCE: {url}")
        print(f"without PKCE: {got}")
        print("all ok")
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
