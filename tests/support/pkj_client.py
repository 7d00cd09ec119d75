"""A real private_key_jwt client (Authlib) asking keygate for a token.

Usage: pkj_client.py TOKEN_URL CLIENT_ID PRIVATE_KEY_PEM_FILE ALG [ROUNDS]

Fetches ROUNDS tokens (default 1), each with a fresh client assertion, and
prints each token response as one JSON line.
"""

import json
import sys

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, OKPKey, RSAKey


def main():
    token_url, client_id, key_file, alg = sys.argv[1:5]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    with open(key_file) as f:
        pem = f.read()
    # Authlib signs with a key object of the algorithm's type (joserfc's).
    key_type = {"ES256": ECKey, "EdDSA": OKPKey}.get(alg, RSAKey)
    key = key_type.import_key(pem)
    session = OAuth2Session(
        client_id,
        key,
        token_endpoint_auth_method=PrivateKeyJWT(token_url, alg=alg),
    )
    for _ in range(rounds):
        token = session.fetch_token(token_url, grant_type="client_credentials")
        print(json.dumps(dict(token)), flush=True)


if __name__ == "__main__":
    main()
