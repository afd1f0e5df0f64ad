-- The PAN look-up (HMAC) key is kept in this table, wrapped like the data keys (no longer in the key store), so
-- the Vault backend needs no key material beyond transit. The cards service makes it on first start; at most
-- one ever exists: every PAN hash depends on it. (No upgrade path from the earlier key store format.)
ALTER TABLE data_keys ADD COLUMN purpose text NOT NULL DEFAULT 'pan' CHECK (purpose IN ('pan', 'lookup'));
CREATE UNIQUE INDEX data_keys_one_lookup_key ON data_keys (purpose) WHERE purpose = 'lookup';
