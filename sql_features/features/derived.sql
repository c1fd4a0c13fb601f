-- Derived features read other features of the same entity as columns of the entity.

CREATE FEATURE user_avg_purchase_30d
  ENTITY user
  TYPE DOUBLE
  TTL '2 days'
  DESCRIPTION 'Average paid order value over 30 days'
AS SELECT user_id, user_purchase_sum_30d / NULLIF(user_purchase_count_30d, 0) FROM user;

CREATE FEATURE user_purchases_per_session_7d
  ENTITY user
  TTL '2 days'
  DESCRIPTION 'Orders per session over 7 days (a conversion proxy)'
AS SELECT user_id,
          CAST(user_purchase_count_7d AS DOUBLE) / NULLIF(user_session_count_7d, 0)
   FROM user;
