-- What features describe: a feature's SELECT returns the entity's key column(s).
CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';
