-- Feature sets: named, ordered lists of features a model trains and serves on.

CREATE FEATURE SET fraud_model_v1 (
    user_purchase_sum_30d,
    user_purchase_count_7d,
    user_avg_purchase_30d,
    user_max_purchase_30d,
    user_distinct_items_30d,
    user_session_count_7d,
    user_country
)
  DESCRIPTION 'Inputs of the first fraud model';
