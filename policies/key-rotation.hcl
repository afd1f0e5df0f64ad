# Policy of the key-rotation CronJob (`ghostpay keys rotate`, its own ServiceAccount).
# It adds key versions and retires old ones; it can neither sign nor encrypt or decrypt, and its
# config updates are limited to the version floors, so it cannot make a key exportable or deletable.

# Read both keys: latest_version, min_decryption_version, min_encryption_version, and the creation
# time of each version (to know when the grace period of a retired version is over).
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}

path "transit/keys/ghostpay-pan" {
  capabilities = ["read"]
}

# Add a new version (publish before use: the JWKS shows it before auth signs with it).
path "transit/keys/ghostpay-jwt/rotate" {
  capabilities = ["update"]
}

path "transit/keys/ghostpay-pan/rotate" {
  capabilities = ["update"]
}

# Move the version floors: min_encryption_version picks the signing / encrypting version,
# min_decryption_version retires versions after the grace period. No other key setting.
path "transit/keys/ghostpay-jwt/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
    "min_encryption_version" = []
  }
}

path "transit/keys/ghostpay-pan/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
    "min_encryption_version" = []
  }
}

# Delete the retired versions for good (below min_available_version).
path "transit/keys/ghostpay-jwt/trim" {
  capabilities = ["update"]
}

path "transit/keys/ghostpay-pan/trim" {
  capabilities = ["update"]
}
