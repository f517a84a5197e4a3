"""wxlink's backend API from Python (requests): a link ticket, a wxlink_code redeemed, a
message sent with an Idempotency-Key, its status.

    wx = Wxlink(WXLINK_URL, WXLINK_KEY)
"""
import requests


class WxlinkError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class Wxlink:
    def __init__(self, url, key, timeout=10):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = "Bearer " + key
        self.timeout = timeout

    def _call(self, method, path, **kw):
        r = self.http.request(method, self.url + path, timeout=self.timeout, **kw)
        if r.status_code >= 400:  # {"error": {"code", "message"}}
            e = r.json()["error"]
            raise WxlinkError(r.status_code, e["code"], e["message"])
        return r.json()

    def link_ticket(self, user_id, app="oa", scope="snsapi_base", return_to=None):
        """A single-use authorization link binding whoever completes it to user_id."""
        body = {"app": app, "scope": scope}
        if return_to:
            body["return_to"] = return_to
        return self._call("POST", f"/api/v1/users/{user_id}/link-tickets", json=body)["url"]

    def redeem(self, wxlink_code):
        """The identity behind the wxlink_code your return_to received (once, within minutes)."""
        return self._call("POST", "/api/v1/login-codes/redeem", json={"code": wxlink_code})

    def send(self, user_id, message, idempotency_key, wait=None):
        """Queues a message; the same key with the same message answers the same message."""
        params = {"wait": wait} if wait is not None else None
        return self._call("POST", f"/api/v1/users/{user_id}/messages", json=message,
                          params=params, headers={"Idempotency-Key": idempotency_key})

    def message(self, message_id):
        return self._call("GET", f"/api/v1/messages/{message_id}")


if __name__ == "__main__":
    # Run against the sandbox (tests/it/recipes.rs): WXLINK_URL, WXLINK_KEY.
    import os
    from urllib.parse import parse_qs, urlparse

    base = os.environ["WXLINK_URL"]
    wx = Wxlink(base, os.environ["WXLINK_KEY"])
    person = requests.post(base + "/sim/_sim/people", json={}).json()["id"]
    link = wx.link_ticket("py-7", return_to=base + "/sandbox/linked")
    # The person opens the link inside (simulated) WeChat and comes back to return_to.
    browser = requests.Session()
    browser.headers.update({"User-Agent": "Mozilla/5.0 MicroMessenger/8.0", "X-Wxsim-Person": person})
    back = browser.get(link)
    code = parse_qs(urlparse(back.url).query)["wxlink_code"][0]
    who = wx.redeem(code)
    message = {"channel": "template", "app": "oa", "template_id": "sandbox_order_shipped",
               "data": {"keyword1": "339208499", "keyword2": "顺丰"}}
    queued = wx.send("py-7", message, "order-339208499-py")
    again = wx.send("py-7", message, "order-339208499-py")
    done = wx.send("py-7", message, "order-339208499-py", wait=5)
    try:
        wx.redeem(code)
        reused = None
    except WxlinkError as e:
        reused = e.code
    print(who["user_id"], who["app"], queued["id"] == again["id"] == done["id"],
          wx.message(queued["id"])["status"], reused)
