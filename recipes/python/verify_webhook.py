"""Verifying a wxlink webhook delivery (standardwebhooks 1.0.0): over the raw body, before
parsing it; deduplicate by the webhook-id header.

    event = verify(request.get_data(), dict(request.headers), os.environ["WXLINK_WEBHOOK_SECRET"])
"""
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verify(raw_body, headers, secret):
    """The event, or None when the signature does not verify (answer 400 then)."""
    try:
        return Webhook(secret).verify(raw_body, headers)
    except WebhookVerificationError:
        return None


if __name__ == "__main__":
    # Run on a real delivery by tests/it/recipes.rs: WEBHOOK_BODY, WEBHOOK_HEADERS (JSON),
    # WEBHOOK_SECRET, OTHER_SECRET.
    import json
    import os

    headers = json.loads(os.environ["WEBHOOK_HEADERS"])
    event = verify(os.environ["WEBHOOK_BODY"], headers, os.environ["WEBHOOK_SECRET"])
    forged = verify(os.environ["WEBHOOK_BODY"], headers, os.environ["OTHER_SECRET"])
    print(event["type"], headers["webhook-id"] == event["id"], forged is None)
