
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE events (user_id BIGINT, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/events' EVENT TIME ts;
CREATE FEATURE spend_30d ENTITY user WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, SUM(amount) FROM events;
CREATE FEATURE count_30d ENTITY user WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, COUNT(*) FROM events;
CREATE FEATURE max_30d ENTITY user WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, MAX(amount) FROM events;
CREATE FEATURE spend_7d ENTITY user WINDOW '7 days' EVERY '1 day'
  AS SELECT user_id, SUM(amount) FROM events;
