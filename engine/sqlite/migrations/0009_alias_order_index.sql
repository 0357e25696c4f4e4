-- A merge moves every alias of the orders it folds into the one kept, and
-- the audit looks for orders no alias names: both find aliases by order,
-- which without this index meant reading the whole table each time.
CREATE INDEX order_aliases_order ON order_aliases (order_ref);
