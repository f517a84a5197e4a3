// co-wechat-api (3.11.0) with wxlink's access token, through its getToken / saveToken hooks.
//
// wxlink owns each app's token: co-wechat-api must never fetch its own (a classic fetch
// cuts wxlink's token to 5 minutes). getToken reads wxlink's token; when WeChat refuses it
// (40001, 42001) co-wechat-api calls saveToken(null) and then getAccessToken(), which here
// reports the refused token to wxlink (replaced only if still current) and takes the answer.
//
//   const api = wxlinkWechatAPI({ app: "oa", appid: "wx...", url: WXLINK_URL, key: WXLINK_KEY });
//   await api.sendTemplate(openid, templateId, url, null, data);
const WechatAPI = require("co-wechat-api");

function wxlinkWechatAPI({ app, appid, url, key }) {
  const tokenUrl = `${url.replace(/\/$/, "")}/api/v1/apps/${app}/access-token`;
  const auth = { Authorization: `Bearer ${key}` };
  let held = null; // the AccessToken in use
  let refused = null; // the one WeChat refused, to report

  async function fromWxlink() {
    const r = refused
      ? await fetch(`${tokenUrl}/invalidate`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ access_token: refused }),
        })
      : await fetch(tokenUrl, { headers: auth });
    if (!r.ok) throw new Error(`wxlink ${r.status}: ${await r.text()}`);
    const { access_token, expires_at } = await r.json();
    refused = null;
    return new WechatAPI.AccessToken(access_token, expires_at * 1000);
  }

  const api = new WechatAPI(
    appid,
    "", // no secret here: wxlink holds it
    async () => held || (held = await fromWxlink()),
    async (token) => {
      if (token === null && held) refused = held.accessToken; // WeChat refused it
      held = token;
    },
  );
  api.getAccessToken = async function () {
    held = await fromWxlink();
    return held;
  };
  return api;
}

module.exports = { wxlinkWechatAPI };

if (require.main === module) {
  // Run against the sandbox (tests/it/recipes.rs): WXLINK_URL, WXLINK_KEY.
  (async () => {
    const base = process.env.WXLINK_URL;
    const key = process.env.WXLINK_KEY;
    const person = await (await fetch(`${base}/sim/_sim/people`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } })).json();
    const openid = person.openids.wxsandbox0a000001;
    const api = wxlinkWechatAPI({ app: "oa", appid: "wxsandbox0a000001", url: base, key });
    api.prefix = `${base}/sim/cgi-bin/`; // the sandbox's WeChat is its simulator
    const data = { keyword1: { value: "339208499" }, keyword2: { value: "顺丰" } };
    const first = await api.sendTemplate(openid, "sandbox_order_shipped", null, null, data);
    // Another backend reports the token failed: wxlink replaces it, WeChat refuses the old
    // one (40001) and this client recovers through wxlink.
    const old = (await api.getToken()).accessToken;
    const r = await fetch(`${base}/api/v1/apps/oa/access-token/invalidate`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ access_token: old }),
    });
    if (!r.ok) throw new Error(await r.text());
    const second = await api.sendTemplate(openid, "sandbox_order_shipped", null, null, data);
    const now = (await api.getToken()).accessToken;
    console.log(first.errcode, second.errcode, old !== now);
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
