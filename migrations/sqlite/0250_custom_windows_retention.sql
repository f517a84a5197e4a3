-- Customer-service windows closed longer than the pushes' retention are pruned (a person
-- who never writes again is not remembered forever); this keeps that delete an index scan.
CREATE INDEX custom_windows_open_until ON custom_windows (open_until);
