// Verifying a wxlink webhook delivery (standardwebhooks 1.1.1): over the raw body, before
// parsing it; deduplicate by the webhook-id header.
//
//   app.post("/wxlink-events", express.raw({ type: "application/json" }), (req, res) => {
//     const event = verify(req.body.toString("utf8"), req.headers, process.env.WXLINK_WEBHOOK_SECRET);
//     if (!event) return res.status(400).send("bad signature");
//     ...
//   });
const { Webhook } = require("standardwebhooks");

// The event, or null when the signature does not verify (answer 400 then).
function verify(rawBody, headers, secret) {
  try {
    return new Webhook(secret).verify(rawBody, headers);
  } catch (e) {
    return null;
  }
}

module.exports = { verify };

if (require.main === module) {
  // Run on a real delivery by tests/it/recipes.rs: WEBHOOK_BODY, WEBHOOK_HEADERS (JSON),
  // WEBHOOK_SECRET, OTHER_SECRET.
  const headers = JSON.parse(process.env.WEBHOOK_HEADERS);
  const event = verify(process.env.WEBHOOK_BODY, headers, process.env.WEBHOOK_SECRET);
  const forged = verify(process.env.WEBHOOK_BODY, headers, process.env.OTHER_SECRET);
  console.log(event.type, headers["webhook-id"] === event.id, forged === null);
}
