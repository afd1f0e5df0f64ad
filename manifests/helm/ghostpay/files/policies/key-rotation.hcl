# Policy of the key-rotation CronJob (`ghostpay keys rotate`, its own ServiceAccount): exactly the calls of
# VaultKeys.rotate and public_keys (services/ghostpay/core/keys/vault.py), nothing else.
# It adds versions to both keys and retires old versions of the JWT signing key only. PAN key versions are
# never retired (losing one loses every PAN wrapped by it), so on ghostpay-pan it may only add a version: it
# can neither move its version floors nor trim it. It can neither sign nor encrypt or decrypt, and its config
# updates are limited to the JWT key's version floors, so it cannot make a key exportable or deletable.

# Read the JWT key: its versions, their public keys and creation times (to know when the grace period of a
# superseded version is over), and min_decryption_version (which versions are still published).
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}

# Add a new version to each key (the JWKS shows a new JWT version before auth signs with it; cards rewraps
# its data keys under a new PAN version at its next key refresh).
path "transit/keys/ghostpay-jwt/rotate" {
  capabilities = ["update"]
}

path "transit/keys/ghostpay-pan/rotate" {
  capabilities = ["update"]
}

# Retire JWT versions past their grace period: move both version floors (trim needs both set). No other setting.
path "transit/keys/ghostpay-jwt/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
    "min_encryption_version" = []
  }
}

# Delete the retired JWT versions for good (below min_available_version).
path "transit/keys/ghostpay-jwt/trim" {
  capabilities = ["update"]
}
