-- Page views, grouped into sessions. item_id is set on item and cart pages only.
CREATE SOURCE clicks (
    user_id    VARCHAR,
    item_id    BIGINT,
    session_id VARCHAR,
    page       VARCHAR,
    ts         TIMESTAMP
)
  FROM 'data/clicks'          -- FORMAT PARQUET is the default
  EVENT TIME ts
  DESCRIPTION 'Click stream';
