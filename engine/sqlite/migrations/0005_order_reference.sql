-- The shop's order id a webhook names (Tazapay's reference_id, Tweed's
-- customParams.orderRef), kept on an order the webhook created before the
-- shop registered it, so that GET /v1/orders/{order_id} finds the order a
-- webhook named. The index holds only orders still unregistered: once the
-- shop registers one, order_id finds it.
ALTER TABLE orders ADD COLUMN reference TEXT;
CREATE INDEX orders_reference ON orders (reference) WHERE order_id IS NULL AND reference IS NOT NULL;
