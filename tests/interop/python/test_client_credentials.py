"""Interop test: Portcullis's OAuth 2.0 client-credentials grant, driven by off-the-shelf Python
clients. authlib fetches tokens (client_secret_basic, client_secret_post, and private_key_jwt with
an ES256 key from `cryptography`, RFC 7523) and PyJWT checks them as RFC 9068 JWT access tokens
against the published JWKS, as a resource server would.

Needs PORTCULLIS_URL (the server's public URL) and PORTCULLIS_API_KEY (an operator admin key);
run by tests/interop/python/run.sh. Prints one line on success, exits non-zero on any failure.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import traceback
import uuid

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

AUDIENCE = "https://api.example.com"
SCOPE = "orders:read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KID = "interop-python-es256"


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


def generate_key(kid):
    """A fresh EC P-256 key pair from `cryptography`: (private key PEM, the key as a joserfc JWK)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, ECKey.import_key(pem, {"kid": kid})


def oauth_settings(jwks):
    return {
        "grant_types": ["client_credentials"],
        "scopes": [SCOPE],
        "resources": [AUDIENCE],
        "jwks": jwks,
    }


def create_key_client(base, api_key, public_jwk):
    """A service principal set up as a private_key_jwt client with one registered public key."""
    sp = admin_call(base, api_key, "POST", "/v1/service-principals", {"name": "interop-python-jwt"}, 201)
    client_id = sp["id"]
    path = f"/v1/service-principals/{client_id}/oauth-client"
    settings = admin_call(base, api_key, "PUT", path, oauth_settings([public_jwk]), 200)
    check(settings.get("jwks") == [public_jwk], f"registered jwks {settings.get('jwks')!r}")
    return client_id


def fetch_token(token_endpoint, client_id, client_secret, auth_method):
    with OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method=auth_method
    ) as session:
        return session.fetch_token(token_endpoint, grant_type="client_credentials", scope=SCOPE)


def fetch_token_private_key_jwt(token_endpoint, client_id, key):
    """A token by authlib's own private_key_jwt: `key` (a joserfc ECKey; authlib imports a PEM as an
    RSA key only) stands in for the client secret. authlib signs assertions valid for an hour unless
    given an exp, and Portcullis takes them for at most 10 minutes; and authlib 1.9 stores the jti
    it draws in the claims dict it was given, so one PrivateKeyJWT reused would replay it: a new
    one per token."""
    auth = PrivateKeyJWT(
        token_endpoint,
        alg="ES256",
        headers={"kid": key.kid},
        claims={"exp": int(time.time()) + 300},
    )
    with OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt") as session:
        session.register_client_auth_method(auth)
        return session.fetch_token(token_endpoint, grant_type="client_credentials", scope=SCOPE)


def assertion(private_pem, kid, client_id, audience, lifetime=300):
    """A client assertion (RFC 7523 §3) signed with PyJWT."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, private_pem, algorithm="ES256", headers={"kid": kid})


def post_assertion(token_endpoint, client_assertion, **extra):
    return requests.post(
        token_endpoint,
        data={
            "grant_type": "client_credentials",
            "scope": SCOPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
            **extra,
        },
        timeout=10,
    )


def check_refused(response, label, status, error, description=None):
    check(
        response.status_code == status,
        f"{label}: expected {status}, got {response.status_code}: {response.text}",
    )
    body = response.json()
    check(body.get("error") == error, f"{label}: error {body.get('error')!r}, not {error}")
    if description is not None:
        check(
            description in body.get("error_description", ""),
            f"{label}: error_description {body.get('error_description')!r} lacks {description!r}",
        )


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


def check_access_token(label, token, jwks_client, issuer, client_id):
    """The checks every token the server issues must pass; returns the access token."""
    check(token.get("token_type", "").lower() == "bearer", f"{label}: token_type {token.get('token_type')!r}")
    access_token = token["access_token"]
    header = jwt.get_unverified_header(access_token)
    check(header.get("typ") == "at+jwt", f"{label}: header typ {header.get('typ')!r}, not at+jwt")
    check(header.get("alg") == "ES256", f"{label}: header alg {header.get('alg')!r}, not ES256")
    try:
        claims = validate(access_token, jwks_client, issuer)
    except jwt.PyJWTError as e:
        raise Failure(f"{label}: PyJWT rejected the server's token: {e!r}") from e
    check(claims["client_id"] == client_id, f"{label}: client_id claim {claims['client_id']!r}")
    check(claims["sub"] == client_id, f"{label}: sub claim {claims['sub']!r}")
    check(claims["scope"] == SCOPE, f"{label}: scope claim {claims['scope']!r}")
    return access_token


def run(base, api_key):
    client_id, client_secret = create_client(base, api_key)

    response = requests.get(f"{base}/t/operator/.well-known/openid-configuration", timeout=10)
    check(response.status_code == 200, f"discovery: HTTP {response.status_code}: {response.text}")
    metadata = response.json()
    issuer = base + "/t/operator"
    check(metadata.get("issuer") == issuer, f"discovery issuer {metadata.get('issuer')!r} != {issuer!r}")
    token_endpoint, jwks_uri = metadata["token_endpoint"], metadata["jwks_uri"]
    for method in ("client_secret_basic", "client_secret_post", "private_key_jwt"):
        check(
            method in metadata.get("token_endpoint_auth_methods_supported", []),
            f"discovery does not list {method}",
        )
    jwks_client = jwt.PyJWKClient(jwks_uri)

    tokens = []
    for method in ("client_secret_basic", "client_secret_post"):
        token = fetch_token(token_endpoint, client_id, client_secret, method)
        tokens.append(check_access_token(method, token, jwks_client, issuer, client_id))
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

    key_client_id = run_private_key_jwt(base, api_key, token_endpoint, jwks_client, issuer)
    return client_id, key_client_id


def run_private_key_jwt(base, api_key, token_endpoint, jwks_client, issuer):
    """private_key_jwt (RFC 7523): a client registers only its public key and signs assertions."""
    private_pem, key = generate_key(KID)
    public_jwk = key.as_dict(private=False)
    check("d" not in public_jwk and public_jwk.get("kid") == KID, f"public JWK {public_jwk!r}")
    client_id = create_key_client(base, api_key, public_jwk)

    # authlib's own private_key_jwt, twice: each assertion carries a fresh jti.
    access_tokens = []
    for _ in range(2):
        try:
            token = fetch_token_private_key_jwt(token_endpoint, client_id, key)
        except OAuthError as e:
            raise Failure(f"private_key_jwt: authlib got {e.error!r}: {e.description}") from e
        access_tokens.append(check_access_token("private_key_jwt", token, jwks_client, issuer, client_id))
    check(access_tokens[0] != access_tokens[1], "private_key_jwt: the same token twice")

    # The same assertion twice: taken once, then refused as a replay.
    replayed = assertion(private_pem, KID, client_id, token_endpoint)
    first = post_assertion(token_endpoint, replayed, client_id=client_id)
    check(first.status_code == 200, f"assertion: expected 200, got {first.status_code}: {first.text}")
    check_access_token("PyJWT assertion", first.json(), jwks_client, issuer, client_id)
    check_refused(
        post_assertion(token_endpoint, replayed, client_id=client_id),
        "replayed assertion",
        401,
        "invalid_client",
        "replayed",
    )

    # Signed by a key the client never registered: under a kid of its own, and posing as the
    # registered key's kid.
    stranger_pem, _ = generate_key("interop-python-stranger")
    for kid in ("interop-python-stranger", KID):
        check_refused(
            post_assertion(token_endpoint, assertion(stranger_pem, kid, client_id, token_endpoint)),
            f"assertion by an unregistered key (kid {kid})",
            401,
            "invalid_client",
        )

    # Longer-lived than 10 minutes (authlib's default is an hour), and a secret alongside.
    check_refused(
        post_assertion(token_endpoint, assertion(private_pem, KID, client_id, token_endpoint, 3600)),
        "hour-long assertion",
        401,
        "invalid_client",
        "10 minutes",
    )
    check_refused(
        post_assertion(
            token_endpoint,
            assertion(private_pem, KID, client_id, token_endpoint),
            client_id=client_id,
            client_secret="x",
        ),
        "assertion and client_secret",
        400,
        "invalid_request",
    )

    # A JWK with its private member "d" is refused, and the registered public key stays.
    path = f"/v1/service-principals/{client_id}/oauth-client"
    private_jwk = key.as_dict(private=True)
    check("d" in private_jwk, "the private JWK has no d")
    refusal = admin_call(base, api_key, "PUT", path, oauth_settings([private_jwk]), 422)
    check(refusal.get("field") == "jwks", f"private JWK: refused for {refusal.get('field')!r}, not jwks")
    settings = admin_call(base, api_key, "GET", path, None, 200)
    check(settings.get("jwks") == [public_jwk], f"after the refused PUT, jwks {settings.get('jwks')!r}")

    return client_id


def main():
    base = os.environ.get("PORTCULLIS_URL", "").rstrip("/")
    api_key = os.environ.get("PORTCULLIS_API_KEY", "")
    if not base or not api_key:
        print("FAIL: set PORTCULLIS_URL and PORTCULLIS_API_KEY", file=sys.stderr)
        return 2
    try:
        client_id, key_client_id = run(base, api_key)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print("FAIL: unexpected error (above)", file=sys.stderr)
        return 1
    print(
        f"interop (python): OK: authlib client_credentials (client_secret_basic, client_secret_post) "
        f"for {client_id} and private_key_jwt (ES256 key from cryptography) for {key_client_id}; "
        f"PyJWT verified ES256 at+jwt tokens against the JWKS; wrong secret, altered payload, "
        f"alg none and HS256 rejected; replayed assertion, unregistered key, hour-long assertion, "
        f"assertion with a secret and a private JWK refused"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
