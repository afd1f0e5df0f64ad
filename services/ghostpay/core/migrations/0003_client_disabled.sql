-- A disabled client (DELETE /auth/clients/{id}) keeps its row, so its id is never reused and its history stays
-- readable; `disabled_at` is the durable record. The auth service re-seeds the Redis revocation markers from the
-- recently disabled rows (the partial index keeps that look-up small).
ALTER TABLE clients ADD COLUMN disabled_at timestamptz;
CREATE INDEX clients_disabled_at ON clients (disabled_at) WHERE disabled_at IS NOT NULL;
