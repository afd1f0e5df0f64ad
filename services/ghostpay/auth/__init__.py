"""The auth service: client credentials, access tokens, the JWKS, and admin bootstrap."""
