-- Profile changes (signup, plan upgrades, country moves), one row per change.
-- Written as CSV by generate.py to exercise FORMAT CSV.
CREATE SOURCE users (
    user_id    VARCHAR,
    country    VARCHAR,
    plan       VARCHAR,
    signup_at  TIMESTAMP,
    updated_at TIMESTAMP
)
  FROM 'data/users'
  FORMAT CSV
  EVENT TIME updated_at
  DESCRIPTION 'User profile history (latest row per user is the current profile)';
