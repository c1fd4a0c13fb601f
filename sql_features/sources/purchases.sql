-- Orders. `amount` is NULL for failed payments; a late correction repeats an order's event
-- time `ts` with a later `loaded_at`, which breaks the tie (CREATED TIME).
CREATE SOURCE purchases (
    purchase_id BIGINT,
    user_id     VARCHAR,
    item_id     BIGINT,
    amount      DOUBLE,
    ts          TIMESTAMP,
    loaded_at   TIMESTAMP
)
  FROM 'data/purchases'
  FORMAT PARQUET
  EVENT TIME ts
  CREATED TIME loaded_at
  DESCRIPTION 'Purchases, one row per order line';
