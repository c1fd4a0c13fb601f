-- Orders (Parquet). loaded_at breaks ties between rows with the same event time.
CREATE SOURCE purchases (purchase_id BIGINT, user_id VARCHAR, item_id BIGINT, amount DOUBLE,
                         ts TIMESTAMP, loaded_at TIMESTAMP)
  FROM 'data/purchases'
  FORMAT PARQUET
  EVENT TIME ts
  CREATED TIME loaded_at;
