-- Spending behaviour of a user, from the purchases source.

CREATE FEATURE user_purchase_sum_7d
  ENTITY user
  TYPE DOUBLE
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'Money spent in the last 7 days (failed payments excluded)'
AS SELECT user_id, SUM(amount) FROM purchases WHERE amount > 0;

CREATE FEATURE user_purchase_sum_30d
  ENTITY user
  TYPE DOUBLE
  WINDOW '30 days'
  EVERY '1 day'
  TTL '2 days'
  DESCRIPTION 'Money spent in the last 30 days (failed payments excluded)'
AS SELECT user_id, SUM(amount) FROM purchases WHERE amount > 0;

CREATE FEATURE user_purchase_count_7d
  ENTITY user
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'Orders placed in the last 7 days, including failed payments'
AS SELECT user_id, COUNT(*) FROM purchases;

CREATE FEATURE user_purchase_count_30d
  ENTITY user
  TYPE BIGINT
  WINDOW '30 days'
  TTL '2 days'
  DESCRIPTION 'Paid orders in the last 30 days'
AS SELECT user_id, COUNT(amount) FROM purchases WHERE amount > 0;

CREATE FEATURE user_max_purchase_30d
  ENTITY user
  WINDOW INTERVAL '30 days'
  TTL '2 days'
  DESCRIPTION 'Largest single purchase in the last 30 days'
AS SELECT user_id, MAX(amount) FROM purchases;

CREATE FEATURE user_avg_amount_7d
  ENTITY user
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'Average order value over 7 days (AVG skips NULL amounts)'
AS SELECT user_id, AVG(amount) FROM purchases;

CREATE FEATURE user_distinct_items_30d
  ENTITY user
  WINDOW '30 days'
  TTL '2 days'
  DESCRIPTION 'Different products bought in the last 30 days'
AS SELECT user_id, COUNT(DISTINCT item_id) FROM purchases;

-- Lifetime features: no WINDOW means all history before the tick.
CREATE FEATURE user_lifetime_purchase_count
  ENTITY user
  DESCRIPTION 'Orders ever placed'
AS SELECT user_id, COUNT(*) FROM purchases;

-- Offline only: used for training, never served online.
CREATE FEATURE user_lifetime_spend
  ENTITY user
  TYPE DOUBLE
  ONLINE FALSE
  DESCRIPTION 'Money ever spent'
AS SELECT user_id, SUM(amount) FROM purchases;

CREATE FEATURE item_purchase_count_7d
  ENTITY item
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'How often a product sold in the last 7 days'
AS SELECT item_id, COUNT(*) FROM purchases;
