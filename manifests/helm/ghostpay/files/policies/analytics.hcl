# Policy of the analytics service. It only verifies the bearer tokens of incoming requests; it never
# signs and never sees a PAN.

# Read the public versions of the JWT signing key (the JWKS, when auth is not reachable).
path "transit/keys/ghostpay-jwt" {
  capabilities = ["read"]
}
