# Policy of the auth service, which issues the JWTs.
# The private signing key never leaves Vault: auth sends the JWS signing input to transit and gets
# the signature back, and builds its JWKS from the key's public versions (one `kid` per version).
# Verifying a token needs no Vault call (verifiers use the JWKS), so there is no transit/verify here.

# Sign JWTs with the newest version of the RSA-2048 key (or the one named by `key_version`).
path "transit/sign/ghostpay-jwt" {
  capabilities = ["update"]
}

# Read the key's public versions to publish the JWKS, and its latest_version / min_decryption_version
# to know which `kid`s are live.
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}
