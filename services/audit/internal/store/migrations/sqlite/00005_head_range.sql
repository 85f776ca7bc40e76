-- The head keeps the hashes of the tree's compact range (one per set bit
-- of its size, 32 bytes each, largest subtree first): an append reads them
-- with the head it locks instead of querying audit_nodes. NULL for heads
-- written before this column, which the next append fills from the nodes.

-- +goose Up
ALTER TABLE audit_heads ADD COLUMN tree_range blob;

-- +goose Down
ALTER TABLE audit_heads DROP COLUMN tree_range;
