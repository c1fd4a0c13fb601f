-- Entities: what features describe. A feature's SELECT returns the entity's key column(s).

CREATE ENTITY user
  KEY (user_id VARCHAR)
  DESCRIPTION 'A customer of the shop';

CREATE ENTITY item
  KEY (item_id BIGINT)
  DESCRIPTION 'A product in the catalogue';

-- A composite key: one row per (user, item) pair.
CREATE ENTITY user_item
  KEY (user_id VARCHAR, item_id BIGINT)
  DESCRIPTION 'A customer''s relation to one product';
