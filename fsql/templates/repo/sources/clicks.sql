-- Page views (Parquet).
CREATE SOURCE clicks (user_id VARCHAR, item_id BIGINT, session_id VARCHAR, page VARCHAR,
                      ts TIMESTAMP)
  FROM 'data/clicks'
  EVENT TIME ts;
