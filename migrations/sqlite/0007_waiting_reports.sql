-- Delivery reports still waiting for their message (a report can beat the send's own
-- answer into the store): the outbox looks for them after every batch of sends.
CREATE INDEX push_delivery_reports_waiting ON push_delivery_reports (reported_at)
    WHERE applied_at IS NULL;
