// Stock wechat-oauth 1.5.0 and co-wechat-api 3.11.0 against `wxlink sim` (run by
// tests/it/peers.rs). Reads the simulator's URL and the test's apps, person and templates
// from the environment, walks the whole web authorization and a template send, and prints
// what came back as one JSON object.
const http = require("http");
const { promisify } = require("util");
const SIM = process.env.WXLINK_SIM;
const env = process.env;

// drop-in: begin
const OAuth = require("wechat-oauth");
const WechatAPI = require("co-wechat-api");
// const SIM = "http://127.0.0.1:9090";   // where `wxlink sim` listens

// wechat-oauth names WeChat's hosts in full in every call: rewrite them on the way out.
function simOAuth(appid, secret) {
  const oauth = new OAuth(appid, secret);
  const request = oauth.request;
  oauth.request = function (url, opts, callback) {
    return request.call(this, url.replace("https://api.weixin.qq.com", SIM), opts, callback);
  };
  const authorizeURL = oauth.getAuthorizeURL;
  oauth.getAuthorizeURL = function (...args) {
    return authorizeURL.apply(this, args).replace("https://open.weixin.qq.com", SIM);
  };
  return oauth;
}

// co-wechat-api keeps its bases in fields.
function simAPI(appid, secret, getToken, saveToken) {
  const api = new WechatAPI(appid, secret, getToken, saveToken);
  api.prefix = SIM + "/cgi-bin/";
  api.snsPrefix = SIM + "/sns/";
  api.wxaPrefix = SIM + "/wxa/";
  return api;
}
// drop-in: end

// What WeChat's browser does with the link: the simulator's person consents at once.
function follow(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      url,
      { headers: { "X-Wxsim-Person": env.PERSON, "X-Wxsim-Consent": "allow" } },
      (res) => {
        res.resume();
        resolve(new URL(res.headers.location));
      },
    );
    req.on("error", reject);
  });
}

async function refused(call) {
  try {
    await call();
  } catch (e) {
    return { name: e.name, code: e.code };
  }
  return null;
}

(async () => {
  const out = {};
  const oauth = simOAuth(env.OA_APPID, env.OA_SECRET);
  const getAccessToken = promisify(oauth.getAccessToken.bind(oauth));
  const getUser = promisify(oauth.getUser.bind(oauth));
  const verifyToken = promisify(oauth.verifyToken.bind(oauth));

  out.authorize_url = oauth.getAuthorizeURL("https://peer.example.com/cb", "peer2", "snsapi_userinfo");
  const back = await follow(out.authorize_url);
  const code = back.searchParams.get("code");
  out.state = back.searchParams.get("state");
  const token = await getAccessToken(code);
  out.openid = token.data.openid;
  out.scope = token.data.scope;
  out.user = await getUser({ openid: token.data.openid, lang: "zh_CN" });
  out.verified = await verifyToken(token.data.openid, token.data.access_token);
  out.code_reused = await refused(() => getAccessToken(code));

  // co-wechat-api with its token kept outside (its getToken / saveToken hooks).
  let stored = null;
  const saves = [];
  const api = simAPI(
    env.OA_APPID,
    env.OA_SECRET,
    async () => stored,
    async (t) => {
      saves.push(t ? "token" : "null");
      stored = t;
    },
  );
  const sent = await api.sendTemplate(env.OA_OPENID, env.TEMPLATE_ID, null, null, {
    keyword1: { value: "339208499" },
    keyword2: { value: "顺丰" },
  });
  out.template = { errcode: sent.errcode, msgid: sent.msgid.toString() };
  out.saves = saves;
  out.unknown_template = await refused(() =>
    api.sendTemplate(env.OA_OPENID, "nope", null, null, { keyword1: { value: "x" } }),
  );
  out.wrong_secret = await refused(() => simAPI(env.OA_APPID, "wrong").getAccessToken());
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
