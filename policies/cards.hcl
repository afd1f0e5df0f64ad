# Policy of the cards service, which stores every issued PAN encrypted.
# PANs are envelope-encrypted: one AES data key, kept only wrapped by the transit key `ghostpay-pan`
# (aes256-gcm96), is unwrapped in memory and encrypts the PANs locally.
# Only cards and charges may use ghostpay-pan; neither may rotate, reconfigure or export it.

# Create the data key once, already wrapped (its plaintext never travels in that response).
path "transit/datakey/wrapped/ghostpay-pan" {
  capabilities = ["update"]
}

# Wrap (encrypt) and unwrap (decrypt) the data key or small values with ghostpay-pan.
path "transit/encrypt/ghostpay-pan" {
  capabilities = ["update"]
}

path "transit/decrypt/ghostpay-pan" {
  capabilities = ["update"]
}

# Re-encrypt a wrapped data key under the newest ghostpay-pan version after a rotation, without
# seeing the plaintext, so old versions can be retired (min_decryption_version).
path "transit/rewrap/ghostpay-pan" {
  capabilities = ["update"]
}

# Read the public versions of the JWT signing key to verify the bearer tokens of incoming requests
# (the JWKS, when auth is not reachable).
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}
