"""wechatpy with wxlink's access token (wechatpy 1.8.18, requests).

wxlink owns each app's token: a WeChatClient must never fetch its own (a classic fetch cuts
wxlink's token to 5 minutes). This client asks wxlink instead, and when WeChat refuses the
token (40001, 42001: wechatpy then calls fetch_access_token and retries once) it tells
wxlink, which replaces it only if it is still the current one and answers the new one.

    client = WxlinkWeChatClient("oa", WXLINK_URL, WXLINK_KEY, appid="wx...")
    client.message.send_template(openid, template_id, data)
"""
import time

import requests
from wechatpy import WeChatClient


class WxlinkWeChatClient(WeChatClient):
    def __init__(self, app, wxlink_url, wxlink_key, appid, session=None, timeout=10):
        super().__init__(appid, secret=None, session=session, timeout=timeout)
        self._wxlink = wxlink_url.rstrip("/") + "/api/v1/apps/" + app + "/access-token"
        self._auth = {"Authorization": "Bearer " + wxlink_key}

    def fetch_access_token(self):
        stale = self.session.get(self.access_token_key)
        # wechatpy calls this when WeChat refused the token (40001, 42001) or when it is in
        # its last minute; only a refusal is reported (wxlink renews ahead of expiry anyway).
        refused = stale and self.expires_at and self.expires_at - time.time() > 60
        if refused:  # replaced only if still current; answers the current token
            r = requests.post(self._wxlink + "/invalidate", json={"access_token": stale},
                              headers=self._auth, timeout=self.timeout)
        else:
            r = requests.get(self._wxlink, headers=self._auth, timeout=self.timeout)
        r.raise_for_status()
        token = r.json()  # {"access_token", "expires_at" (unix seconds)}
        expires_in = max(token["expires_at"] - int(time.time()), 1)
        self.session.set(self.access_token_key, token["access_token"], expires_in)
        self.expires_at = token["expires_at"]
        return token


if __name__ == "__main__":
    # Run against the sandbox (tests/it/recipes.rs): WXLINK_URL, WXLINK_KEY.
    import os

    base, key = os.environ["WXLINK_URL"], os.environ["WXLINK_KEY"]

    class SandboxClient(WxlinkWeChatClient):  # the sandbox's WeChat is its simulator
        API_BASE_URL = base + "/sim/cgi-bin/"

    person = requests.post(base + "/sim/_sim/people", json={}).json()
    openid = person["openids"]["wxsandbox0a000001"]
    client = SandboxClient("oa", base, key, appid="wxsandbox0a000001")
    data = {"keyword1": {"value": "339208499"}, "keyword2": {"value": "顺丰"}}
    first = client.message.send_template(openid, "sandbox_order_shipped", data)
    # Another backend reports the token failed: wxlink replaces it, WeChat refuses the old
    # one (40001) and this client recovers through wxlink.
    old = client.session.get(client.access_token_key)
    requests.post(base + "/api/v1/apps/oa/access-token/invalidate", json={"access_token": old},
                  headers={"Authorization": "Bearer " + key}).raise_for_status()
    second = client.message.send_template(openid, "sandbox_order_shipped", data)
    new = client.session.get(client.access_token_key)
    print(first["errcode"], second["errcode"], old != new)
