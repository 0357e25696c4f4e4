-- The provider ids each event named, as a JSON array, its checkout id
-- first: the checkout rule ties ids together through the events that name
-- several. NULL for the events stored before, which that rule takes on
-- trust.
ALTER TABLE events ADD COLUMN ids TEXT;
-- The provider ids the shop registered for the order (its checkout id and
-- other_ids, over every registration call), as a JSON array; NULL until it
-- registers. Orders registered before keep every id they are known by,
-- since which of them the shop named is no longer known: taking them all
-- raises no checkout_mismatch the shop did not cause.
ALTER TABLE orders ADD COLUMN registered_ids TEXT;
UPDATE orders SET registered_ids = (SELECT json_group_array(external_id) FROM order_aliases WHERE order_ref = orders.id)
	WHERE order_id IS NOT NULL;
