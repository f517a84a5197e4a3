-- bizsend answers no msgid: an Official Account subscribe notification learns it from its
-- subscribe_msg_sent_event, matched to the oldest send of that template to that person
-- still without one. This keeps that look an index search.
CREATE INDEX messages_awaiting_msgid ON messages (app, openid, template_id, id)
    WHERE channel = 'oa_subscribe' AND msgid IS NULL;
