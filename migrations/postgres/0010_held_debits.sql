-- The transactions holding money, by the customer whose wallet they hold it on: GetCustomerState
-- lists them with each wallet. Partial, so it stays as small as what is pending.
CREATE INDEX payment_transactions_held ON payment_transactions (debit_customer_id) WHERE held = 1;
