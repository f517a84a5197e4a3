"""Stock wechatpy 1.8.18 against `wxlink sim` (run by tests/it/peers.rs).

Reads the simulator's URL and the test's apps, people and codes from the environment,
drives wechatpy's own calls and prints what came back as one JSON object. WeChat's
refusals must surface as wechatpy's own `WeChatClientException` with WeChat's errcode.
"""
import json
import os

import requests
from urllib.parse import parse_qs, urlparse

SIM = os.environ["WXLINK_SIM"]

# drop-in: begin
from wechatpy import WeChatClient, WeChatOAuth
from wechatpy.client.api import WeChatWxa

# SIM = "http://127.0.0.1:9090"   # where `wxlink sim` listens


class SimWxa(WeChatWxa):
    API_BASE_URL = SIM + "/"                 # jscode2session, subscribe sends


class SimClient(WeChatClient):
    API_BASE_URL = SIM + "/cgi-bin/"         # template sends and every other cgi-bin call
    wxa = SimWxa()

    def fetch_access_token(self):            # wechatpy names the token URL in full
        return self._fetch_access_token(
            url=SIM + "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


class SimOAuth(WeChatOAuth):
    API_BASE_URL = SIM + "/"                 # sns/oauth2/access_token, sns/userinfo, ...
    OAUTH_BASE_URL = SIM + "/connect/"       # the authorize link
# drop-in: end

from wechatpy.exceptions import WeChatClientException, WeChatOAuthException

env = os.environ
out = {}


def refused(call):
    """WeChat's errcode, from the exception wechatpy raises for it."""
    try:
        call()
    except WeChatClientException as e:
        return {"errcode": e.errcode, "class": type(e).__name__}
    return None


oa = SimClient(env["OA_APPID"], env["OA_SECRET"])
mp = SimClient(env["MP_APPID"], env["MP_SECRET"])

out["token"] = oa.access_token
out["template"] = oa.message.send_template(
    env["OA_OPENID"], env["TEMPLATE_ID"], {"keyword1": {"value": "339208499"}, "keyword2": {"value": "顺丰"}}
)
out["subscribe"] = mp.wxa.send_subscribe_message(
    env["MP_OPENID"], env["SUB_TEMPLATE_ID"], {"thing1": {"value": "已发货"}}, page="pages/index"
)
# The Official Account's subscribe notification: wechatpy posts it to message/subscribe/bizsend.
out["oa_subscribe"] = oa.message.send_subscribe_message(
    env["OA_OPENID"], env["OA_SUB_TEMPLATE_ID"], {"thing1": {"value": "已发货"}},
    page="https://peer.example.com/orders/1",
)
out["session"] = mp.wxa.code_to_session(env["JS_CODE"])

oauth = SimOAuth(env["OA_APPID"], env["OA_SECRET"], "https://peer.example.com/cb", "snsapi_userinfo", "peer1")
out["authorize_url"] = oauth.authorize_url
# What WeChat's browser does with the link: the simulator's person consents at once.
back = requests.get(
    oauth.authorize_url,
    headers={"X-Wxsim-Person": env["PERSON"], "X-Wxsim-Consent": "allow"},
    allow_redirects=False,
)
query = parse_qs(urlparse(back.headers["Location"]).query)
code = query["code"][0]
out["state"] = query["state"][0]
grant = oauth.fetch_access_token(code)
out["web_openid"] = grant["openid"]
out["user"] = oauth.get_user_info()
out["check"] = oauth.check_access_token()
out["refreshed_openid"] = oauth.refresh_access_token(grant["refresh_token"])["openid"]

out["errors"] = {
    "code_reused": refused(lambda: oauth.fetch_access_token(code)),
    "js_code_reused": refused(lambda: mp.wxa.code_to_session(env["JS_CODE"])),
    "unknown_template": refused(lambda: oa.message.send_template(env["OA_OPENID"], "nope", {"keyword1": {"value": "x"}})),
    "no_subscription_left": refused(
        lambda: mp.wxa.send_subscribe_message(env["MP_OPENID"], env["SUB_TEMPLATE_ID"], {"thing1": {"value": "已发货"}})
    ),
    "oa_no_subscription_left": refused(
        lambda: oa.message.send_subscribe_message(env["OA_OPENID"], env["OA_SUB_TEMPLATE_ID"], {"thing1": {"value": "已发货"}})
    ),
    "oa_field_rule": refused(
        lambda: oa.message.send_subscribe_message(env["OA_OPENID"], env["OA_SUB_TEMPLATE_ID"], {"thing1": {"value": "x" * 21}})
    ),
    "wrong_secret": refused(lambda: SimClient(env["OA_APPID"], "wrong").access_token),
    "unknown_web_token": refused(lambda: oauth.get_user_info(access_token="nope")),
}
print(json.dumps(out, ensure_ascii=False))
