"""Interop test: Portcullis's OAuth 2.0 client-credentials grant, driven by off-the-shelf Python
clients. authlib fetches tokens (client_secret_basic and client_secret_post) and PyJWT checks them
as RFC 9068 JWT access tokens against the published JWKS, as a resource server would.

Needs PORTCULLIS_URL (the server's public URL) and PORTCULLIS_API_KEY (an operator admin key);
run by tests/interop/python/run.sh. Prints one line on success, exits non-zero on any failure.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import traceback

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

AUDIENCE = "https://api.example.com"
SCOPE = "orders:read"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url_json(part: str):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def admin_call(base, api_key, method, path, body, expected):
    response = requests.request(
        method,
        base + path,
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    check(
        response.status_code == expected,
        f"{method} {path}: expected {expected}, got {response.status_code}: {response.text}",
    )
    return response.json()


def create_client(base, api_key):
    """A service principal set up as a client-credentials client: (client_id, client_secret)."""
    sp = admin_call(base, api_key, "POST", "/v1/service-principals", {"name": "interop-python"}, 201)
    client_id = sp["id"]
    admin_call(
        base,
        api_key,
        "PUT",
        f"/v1/service-principals/{client_id}/oauth-client",
        {
            "grant_types": ["client_credentials"],
            "scopes": ["orders:read", "orders:write"],
            "resources": [AUDIENCE],
            "access_token_seconds": 300,
        },
        200,
    )
    key = admin_call(base, api_key, "POST", f"/v1/service-principals/{client_id}/api-keys", {}, 201)
    return client_id, key["secret"]


def fetch_token(token_endpoint, client_id, client_secret, auth_method):
    with OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method=auth_method
    ) as session:
        return session.fetch_token(token_endpoint, grant_type="client_credentials", scope=SCOPE)


def validate(token, jwks_client, issuer):
    """PyJWT's checks of an access token, as a resource server makes them; returns the claims."""
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "jti"]},
    )


def run(base, api_key):
    client_id, client_secret = create_client(base, api_key)

    response = requests.get(f"{base}/t/operator/.well-known/openid-configuration", timeout=10)
    check(response.status_code == 200, f"discovery: HTTP {response.status_code}: {response.text}")
    metadata = response.json()
    issuer = base + "/t/operator"
    check(metadata.get("issuer") == issuer, f"discovery issuer {metadata.get('issuer')!r} != {issuer!r}")
    token_endpoint, jwks_uri = metadata["token_endpoint"], metadata["jwks_uri"]
    for method in ("client_secret_basic", "client_secret_post"):
        check(
            method in metadata.get("token_endpoint_auth_methods_supported", []),
            f"discovery does not list {method}",
        )
    jwks_client = jwt.PyJWKClient(jwks_uri)

    tokens = []
    for method in ("client_secret_basic", "client_secret_post"):
        token = fetch_token(token_endpoint, client_id, client_secret, method)
        check(token.get("token_type", "").lower() == "bearer", f"{method}: token_type {token.get('token_type')!r}")
        access_token = token["access_token"]
        header = jwt.get_unverified_header(access_token)
        check(header.get("typ") == "at+jwt", f"{method}: header typ {header.get('typ')!r}, not at+jwt")
        check(header.get("alg") == "ES256", f"{method}: header alg {header.get('alg')!r}, not ES256")
        try:
            claims = validate(access_token, jwks_client, issuer)
        except jwt.PyJWTError as e:
            raise Failure(f"{method}: PyJWT rejected the server's token: {e!r}") from e
        check(claims["client_id"] == client_id, f"{method}: client_id claim {claims['client_id']!r}")
        check(claims["sub"] == client_id, f"{method}: sub claim {claims['sub']!r}")
        check(claims["scope"] == SCOPE, f"{method}: scope claim {claims['scope']!r}")
        tokens.append(access_token)
    check(
        unb64url_json(tokens[0].split(".")[1])["jti"] != unb64url_json(tokens[1].split(".")[1])["jti"],
        "two tokens share a jti",
    )

    # A wrong secret: authlib surfaces the RFC 6749 §5.2 error.
    try:
        fetch_token(token_endpoint, client_id, client_secret + "x", "client_secret_basic")
        raise Failure("a wrong client secret got a token")
    except OAuthError as e:
        check(e.error == "invalid_client", f"wrong secret: error {e.error!r}, not invalid_client")

    # A token whose payload was altered (scope widened), signature kept.
    header_part, payload_part, signature_part = tokens[0].split(".")
    payload = unb64url_json(payload_part)
    payload["scope"] = "orders:read orders:write"
    tampered = ".".join([header_part, b64url_json(payload), signature_part])
    try:
        validate(tampered, jwks_client, issuer)
        raise Failure("PyJWT accepted a token with an altered payload")
    except jwt.InvalidSignatureError:
        pass

    # Re-signed with alg none, and with HS256 keyed by the public JWK (algorithm confusion): a
    # verifier that pins ES256, as the server's tokens allow, refuses both.
    original = unb64url_json(header_part)
    jwks = requests.get(jwks_uri, timeout=10).json()
    jwk = next(k for k in jwks["keys"] if k.get("kid") == original["kid"])
    jwk_bytes = json.dumps(jwk).encode()
    public_key = jwks_client.get_signing_key(original["kid"]).key
    for alg in ("none", "HS256"):
        head = b64url_json({**original, "alg": alg})
        signing_input = f"{head}.{payload_part}"
        signature = (
            b64url(hmac.new(jwk_bytes, signing_input.encode(), hashlib.sha256).digest())
            if alg == "HS256"
            else ""
        )
        try:
            jwt.decode(
                f"{signing_input}.{signature}",
                public_key,
                algorithms=["ES256"],
                audience=AUDIENCE,
                issuer=issuer,
            )
            raise Failure(f"PyJWT accepted a token re-signed with alg {alg}")
        except jwt.InvalidAlgorithmError:
            pass

    return client_id


def main():
    base = os.environ.get("PORTCULLIS_URL", "").rstrip("/")
    api_key = os.environ.get("PORTCULLIS_API_KEY", "")
    if not base or not api_key:
        print("FAIL: set PORTCULLIS_URL and PORTCULLIS_API_KEY", file=sys.stderr)
        return 2
    try:
        client_id = run(base, api_key)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAIL: unexpected error (above)", file=sys.stderr)
        return 1
    print(
        f"interop (python): OK: authlib client_credentials (client_secret_basic, client_secret_post) "
        f"for {client_id}; PyJWT verified ES256 at+jwt tokens against the JWKS; wrong secret, "
        f"altered payload, alg none and HS256 rejected"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
