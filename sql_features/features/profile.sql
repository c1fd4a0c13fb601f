-- Latest-value features: the value on the user's latest profile row before the tick.

CREATE FEATURE user_country
  ENTITY user
  TYPE VARCHAR
  TTL '365 days'
  DESCRIPTION 'Country on the latest profile'
AS SELECT user_id, country FROM users;

CREATE FEATURE user_plan
  ENTITY user
  DESCRIPTION 'Subscription plan on the latest profile'
AS SELECT user_id, plan FROM users;

CREATE FEATURE user_is_paying
  ENTITY user
  TYPE BOOLEAN
  DESCRIPTION 'Whether the latest plan is a paid one'
AS SELECT user_id, plan <> 'free' FROM users;
