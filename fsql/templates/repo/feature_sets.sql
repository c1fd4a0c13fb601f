CREATE FEATURE SET starter_model (user_purchase_sum_30d, user_avg_purchase_30d,
                                  user_session_count_7d, user_country);
