#!/usr/bin/env python3
"""Writes the public JWKS files for the test keys in this directory.

Reads the PEM private keys with the `openssl` CLI only (no Python crypto
library), takes the public numbers from the DER encodings, and writes
base64url (no padding) JWK members, as RFC 7517/7518/8037 say.
"""
import base64, json, subprocess

def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def pub_der(pem: str) -> bytes:
    return subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout

def rsa_jwk(pem: str, kid: str) -> dict:
    out = subprocess.run(["openssl", "rsa", "-in", pem, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout
    modulus = bytes.fromhex(out.strip().split("=", 1)[1])
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64u(modulus), "e": "AQAB"}

def ec_jwk(pem: str, kid: str) -> dict:
    point = pub_der(pem)[-65:]  # uncompressed point: 0x04 || x || y
    assert point[0] == 4
    return {"kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
            "x": b64u(point[1:33]), "y": b64u(point[33:65])}

def ed_jwk(pem: str, kid: str) -> dict:
    return {"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
            "x": b64u(pub_der(pem)[-32:])}

def write(path: str, keys: list) -> None:
    with open(path, "w") as f:
        json.dump({"keys": keys}, f, indent=2)
        f.write("\n")

write("spire.jwks.json", [ec_jwk("ec-signer.pem", "spire-ec-1"), ed_jwk("ed25519-signer.pem", "spire-ed-1")])
write("oidc.jwks.json", [rsa_jwk("rsa-signer.pem", "oidc-rsa-1")])
# A JWKS whose only key is unusable (a symmetric key): loading it must fail.
write("unusable.jwks.json", [{"kty": "oct", "kid": "hmac-1", "k": b64u(b"not a public key")}])
