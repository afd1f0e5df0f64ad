# Policy of the charges service. It only verifies the bearer tokens of incoming requests: a charge names its
# card by id, never by PAN, so charges never loads a PAN data key and has no right on ghostpay-pan.
# Exactly the call of VaultKeys.public_keys (services/ghostpay/core/keys/vault.py), nothing else.

# Read the public versions of the JWT signing key (the JWKS, when auth is not reachable).
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}
