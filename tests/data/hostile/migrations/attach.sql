ATTACH DATABASE 'data/infra/monk.db' AS o;
UPDATE o.tenants SET status = 'suspended';
