# Policy of the cards service, which stores every issued PAN encrypted.
# PANs are envelope-encrypted: one AES data key (and one look-up key), kept in the `data_keys` table only
# wrapped by the transit key `ghostpay-pan` (aes256-gcm96), is unwrapped in memory at start-up and encrypts
# the PANs locally. Cards is the only workload that uses ghostpay-pan (charges never reads a PAN); it may
# neither rotate, reconfigure, trim nor export it. Exactly the calls of VaultKeys.wrap / unwrap / rewrap and
# public_keys (services/ghostpay/core/keys/vault.py), nothing else.

# Wrap a data key (made locally) on the first start, when `data_keys` has none yet.
path "transit/encrypt/ghostpay-pan" {
  capabilities = ["update"]
}

# Unwrap the stored data keys at start-up.
path "transit/decrypt/ghostpay-pan" {
  capabilities = ["update"]
}

# After every key refresh, re-encrypt each stored data key under the newest ghostpay-pan version without
# seeing its plaintext, so none depends on an old version. (Old versions are kept all the same: GhostPay never
# retires a PAN key version.)
path "transit/rewrap/ghostpay-pan" {
  capabilities = ["update"]
}

# Read the public versions of the JWT signing key to verify the bearer tokens of incoming requests
# (the JWKS, when auth is not reachable).
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}
