-- Engagement, from the click stream.

CREATE FEATURE user_click_count_7d
  ENTITY user
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'Page views in the last 7 days'
AS SELECT user_id, COUNT(*) FROM clicks;

CREATE FEATURE user_session_count_7d
  ENTITY user
  WINDOW '7 days'
  TTL '2 days'
  DESCRIPTION 'Sessions in the last 7 days'
AS SELECT user_id, COUNT(DISTINCT session_id) FROM clicks;

-- Composite entity: the key is (user_id, item_id).
CREATE FEATURE user_item_views_30d
  ENTITY user_item
  WINDOW '30 days'
  TTL '2 days'
  DESCRIPTION 'Times a user viewed a product page in the last 30 days'
AS SELECT user_id, item_id, COUNT(*) FROM clicks WHERE page = 'item';
