-- What the pruner ([retention]) looks rows up by: each batch reads the oldest few through
-- an index instead of scanning the table.
CREATE INDEX oauth_exchanges_created ON oauth_exchanges (created_at);
CREATE INDEX login_codes_expires ON login_codes (expires_at);
CREATE INDEX link_tickets_expires ON link_tickets (expires_at);
CREATE INDEX web_tokens_refresh_expires ON web_tokens (refresh_expires_at);
CREATE INDEX messages_finished ON messages (updated_ms)
    WHERE status IN ('sent', 'delivered', 'failed', 'rejected');
CREATE INDEX push_delivery_reports_reported ON push_delivery_reports (reported_at);
