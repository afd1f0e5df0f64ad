-- GhostPay schema, version 1. Correctness lives here: single use, idempotency and the outbox are enforced
-- by constraints and conditional updates, never by a lock in a Python process.

CREATE TABLE clients (
    client_id   text PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'merchant', 'user')),
    user_id     text,
    secret_hash text NOT NULL,                        -- argon2id; the secret itself is never stored
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'user' OR user_id IS NOT NULL)
);

-- PAN data keys, each wrapped by the key store's key-encryption key (envelope encryption).
CREATE TABLE data_keys (
    key_id      text PRIMARY KEY,
    wrapped_key bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cards (
    card_id        text PRIMARY KEY,
    merchant_id    text NOT NULL,
    user_id        text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'used', 'closed')),
    amount         bigint NOT NULL CHECK (amount > 0),
    currency       char(3) NOT NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    used_at        timestamptz,
    exp_month      smallint NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year       smallint NOT NULL,
    last4          char(4) NOT NULL,
    pan_ciphertext bytea NOT NULL,                    -- AES-GCM under data key `data_key_id`, AAD = card_id
    data_key_id    text NOT NULL REFERENCES data_keys (key_id),
    pan_hash       bytea NOT NULL UNIQUE              -- HMAC-SHA256 with the key store's lookup key
);
CREATE INDEX cards_by_created ON cards (created_at DESC, card_id DESC);
CREATE INDEX cards_by_merchant ON cards (merchant_id, created_at DESC, card_id DESC);
CREATE INDEX cards_by_user ON cards (user_id, created_at DESC, card_id DESC);

CREATE TABLE charges (
    charge_id    text PRIMARY KEY,
    card_id      text NOT NULL REFERENCES cards (card_id),
    merchant_id  text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    status       text NOT NULL CHECK (status IN ('approved', 'declined')),
    decline_code text CHECK ((status = 'declined') = (decline_code IS NOT NULL)),
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- The last line of defence for single use: a second approval cannot even be written.
CREATE UNIQUE INDEX charges_one_approval_per_card ON charges (card_id) WHERE status = 'approved';
CREATE INDEX charges_by_card ON charges (card_id, created_at DESC, charge_id DESC);
CREATE INDEX charges_by_merchant ON charges (merchant_id, created_at DESC, charge_id DESC);
CREATE INDEX charges_by_created ON charges (created_at DESC, charge_id DESC);

CREATE TABLE idempotency_keys (
    owner_id     text NOT NULL,                       -- the calling client
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    charge_id    text NOT NULL REFERENCES charges (charge_id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, key)
);

-- Events written in the same transaction as the card or charge they describe; analytics drains them.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    event_type text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE analytics_counters (
    merchant_id text NOT NULL,
    metric      text NOT NULL,                        -- cards_issued | charges | volume | decline_reasons
    dimension   text NOT NULL,                        -- '' | approved/declined | currency | decline code
    value       bigint NOT NULL,
    PRIMARY KEY (merchant_id, metric, dimension)
);

-- One charge attempt in one round trip. Outcomes: created | replayed | key_reused | in_flight | not_found.
-- p_merchant_id NULL means an admin, who may charge any card.
CREATE FUNCTION ghostpay_charge(
    p_charge_id text, p_card_id text, p_merchant_id text, p_amount bigint, p_currency text,
    p_owner_id text, p_idempotency_key text, p_request_hash bytea
) RETURNS TABLE (
    outcome text, charge_id text, card_id text, merchant_id text, amount bigint, currency text,
    status text, decline_code text, created_at timestamptz
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_prior    idempotency_keys%ROWTYPE;
    v_card     cards%ROWTYPE;
    v_merchant text;
    v_status   text := 'approved';
    v_code     text;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        -- A finished request is replayed without waiting; an unfinished one holds this lock until it commits,
        -- so a second request with the key is told 409 at once rather than queueing behind it.
        FOR attempt IN 1..2 LOOP
            SELECT * INTO v_prior FROM idempotency_keys k
             WHERE k.owner_id = p_owner_id AND k.key = p_idempotency_key;
            IF FOUND THEN
                RETURN QUERY SELECT
                    CASE WHEN v_prior.request_hash = p_request_hash THEN 'replayed' ELSE 'key_reused' END,
                    c.charge_id, c.card_id, c.merchant_id, c.amount, c.currency::text, c.status, c.decline_code,
                    c.created_at
                    FROM charges c WHERE c.charge_id = v_prior.charge_id;
                RETURN;
            END IF;
            EXIT WHEN attempt = 2;
            IF NOT pg_try_advisory_xact_lock(hashtextextended(p_owner_id || ':' || p_idempotency_key, 7)) THEN
                RETURN QUERY SELECT 'in_flight', NULL, NULL, NULL, NULL::bigint, NULL, NULL, NULL, NULL::timestamptz;
                RETURN;
            END IF;
            -- Locked: look again, in case the holder committed between our first look and the lock.
        END LOOP;
    END IF;

    -- The single-use rule: only one transaction can move the card from active to used.
    UPDATE cards c SET status = 'used', used_at = now()
     WHERE c.card_id = p_card_id AND (p_merchant_id IS NULL OR c.merchant_id = p_merchant_id)
       AND c.status = 'active' AND c.expires_at > now() AND c.currency = p_currency AND c.amount >= p_amount
    RETURNING c.merchant_id INTO v_merchant;

    IF NOT FOUND THEN
        SELECT * INTO v_card FROM cards c
         WHERE c.card_id = p_card_id AND (p_merchant_id IS NULL OR c.merchant_id = p_merchant_id);
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'not_found', NULL, NULL, NULL, NULL::bigint, NULL, NULL, NULL, NULL::timestamptz;
            RETURN;
        END IF;
        v_merchant := v_card.merchant_id;
        v_status := 'declined';
        v_code := CASE
            WHEN v_card.status = 'used' THEN 'card_used'
            WHEN v_card.status = 'closed' THEN 'card_closed'
            WHEN v_card.expires_at <= now() THEN 'card_expired'
            WHEN v_card.currency <> p_currency THEN 'currency_mismatch'
            ELSE 'amount_exceeds_limit' END;
    END IF;

    INSERT INTO charges (charge_id, card_id, merchant_id, amount, currency, status, decline_code)
    VALUES (p_charge_id, p_card_id, v_merchant, p_amount, p_currency, v_status, v_code);
    INSERT INTO outbox (event_type, payload) VALUES ('charge', jsonb_build_object(
        'charge_id', p_charge_id, 'merchant_id', v_merchant, 'status', v_status,
        'amount', p_amount, 'currency', p_currency, 'decline_code', v_code));
    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (owner_id, key, request_hash, charge_id)
        VALUES (p_owner_id, p_idempotency_key, p_request_hash, p_charge_id);
    END IF;

    RETURN QUERY SELECT 'created', p_charge_id, p_card_id, v_merchant, p_amount, p_currency, v_status, v_code, now();
END;
$$;
