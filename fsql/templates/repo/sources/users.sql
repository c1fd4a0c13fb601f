-- Profile changes, one row per change (CSV).
CREATE SOURCE users (user_id VARCHAR, country VARCHAR, plan VARCHAR,
                     signup_at TIMESTAMP, updated_at TIMESTAMP)
  FROM 'data/users'
  FORMAT CSV
  EVENT TIME updated_at;
