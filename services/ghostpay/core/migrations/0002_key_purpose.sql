-- The PAN look-up (HMAC) key moves out of the key store into this table, wrapped like the data keys, so the
-- Vault backend needs no key material of its own beyond transit. At most one look-up key ever exists: every
-- PAN hash depends on it.
ALTER TABLE data_keys ADD COLUMN purpose text NOT NULL DEFAULT 'pan' CHECK (purpose IN ('pan', 'lookup'));
CREATE UNIQUE INDEX data_keys_one_lookup_key ON data_keys (purpose) WHERE purpose = 'lookup';
