-- Features of a user. Edit, then run `fsql plan` to see what changes.

CREATE FEATURE user_purchase_sum_30d
  ENTITY user
  TYPE DOUBLE
  WINDOW '30 days'
  TTL '2 days'
  DESCRIPTION 'Money spent in the last 30 days'
AS SELECT user_id, SUM(amount) FROM purchases WHERE amount > 0;

CREATE FEATURE user_purchase_count_30d
  ENTITY user
  WINDOW '30 days'
  TTL '2 days'
  DESCRIPTION 'Paid orders in the last 30 days'
AS SELECT user_id, COUNT(amount) FROM purchases WHERE amount > 0;

CREATE FEATURE user_avg_purchase_30d
  ENTITY user
  DESCRIPTION 'Average paid order value over 30 days (a derived feature)'
AS SELECT user_id, user_purchase_sum_30d / NULLIF(user_purchase_count_30d, 0) FROM user;

CREATE FEATURE user_session_count_7d
  ENTITY user
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'Sessions in the last 7 days'
AS SELECT user_id, COUNT(DISTINCT session_id) FROM clicks;

CREATE FEATURE user_country
  ENTITY user
  DESCRIPTION 'Country on the latest profile'
AS SELECT user_id, country FROM users;
