// wxlink's backend API from Node.js (18+, global fetch): a link ticket, a wxlink_code
// redeemed, a message sent with an Idempotency-Key, its status.
//
//   const wx = new Wxlink(WXLINK_URL, WXLINK_KEY);
class WxlinkError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

class Wxlink {
  constructor(url, key) {
    this.url = url.replace(/\/$/, "");
    this.key = key;
  }

  async call(method, path, body, headers = {}) {
    const r = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${this.key}`, "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await r.json();
    if (!r.ok) throw new WxlinkError(r.status, answer.error.code, answer.error.message); // {"error":{"code","message"}}
    return answer;
  }

  // A single-use authorization link binding whoever completes it to userId.
  async linkTicket(userId, { app = "oa", scope = "snsapi_base", returnTo } = {}) {
    const body = { app, scope, ...(returnTo ? { return_to: returnTo } : {}) };
    return (await this.call("POST", `/api/v1/users/${encodeURIComponent(userId)}/link-tickets`, body)).url;
  }

  // The identity behind the wxlink_code your return_to received (once, within minutes).
  redeem(wxlinkCode) {
    return this.call("POST", "/api/v1/login-codes/redeem", { code: wxlinkCode });
  }

  // Queues a message; the same key with the same message answers the same message.
  send(userId, message, idempotencyKey, { wait } = {}) {
    const query = wait === undefined ? "" : `?wait=${wait}`;
    return this.call("POST", `/api/v1/users/${encodeURIComponent(userId)}/messages${query}`, message, {
      "Idempotency-Key": idempotencyKey,
    });
  }

  message(id) {
    return this.call("GET", `/api/v1/messages/${id}`);
  }
}

module.exports = { Wxlink, WxlinkError };

if (require.main === module) {
  // Run against the sandbox (tests/it/recipes.rs): WXLINK_URL, WXLINK_KEY.
  // The person opens the link inside (simulated) WeChat: redirects followed by hand, with
  // cookies, until return_to.
  async function openInWeChat(url, person) {
    const cookies = new Map();
    for (let i = 0; i < 10 && !url.includes("wxlink_code="); i++) {
      const r = await fetch(url, {
        redirect: "manual",
        headers: {
          "User-Agent": "Mozilla/5.0 MicroMessenger/8.0",
          "X-Wxsim-Person": person,
          cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        },
      });
      for (const c of r.headers.getSetCookie()) {
        const [pair] = c.split(";");
        const at = pair.indexOf("=");
        cookies.set(pair.slice(0, at), pair.slice(at + 1));
      }
      url = new URL(r.headers.get("location"), url).toString();
    }
    return new URL(url);
  }

  (async () => {
    const base = process.env.WXLINK_URL;
    const wx = new Wxlink(base, process.env.WXLINK_KEY);
    const person = await (await fetch(`${base}/sim/_sim/people`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } })).json();
    const link = await wx.linkTicket("js-7", { returnTo: `${base}/sandbox/linked` });
    const back = await openInWeChat(link, person.id);
    const code = back.searchParams.get("wxlink_code");
    const who = await wx.redeem(code);
    const message = {
      channel: "template",
      app: "oa",
      template_id: "sandbox_order_shipped",
      data: { keyword1: "339208499", keyword2: "顺丰" },
    };
    const queued = await wx.send("js-7", message, "order-339208499-js");
    const again = await wx.send("js-7", message, "order-339208499-js");
    const done = await wx.send("js-7", message, "order-339208499-js", { wait: 5 });
    const reused = await wx.redeem(code).then(() => null, (e) => e.code);
    const status = (await wx.message(queued.id)).status;
    console.log(who.user_id, who.app, queued.id === again.id && again.id === done.id, status, reused);
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
