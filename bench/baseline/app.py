"""The peer wxlink is measured against: what a team writes without it.

Flask + wechatpy + SQLite under gunicorn. It keeps its own openid map and sends each
template message synchronously to WeChat (the simulator) inside the request, answering
only when WeChat has answered. It speaks the two routes of wxlink's API that the send
benchmark's load generator (examples/send_load.rs) uses, so the same load drives both.

Environment: BASELINE_DB (SQLite file), BASELINE_SIM (simulator base URL),
BASELINE_APPID, BASELINE_SECRET.
"""

import os
import sqlite3
import threading

from flask import Flask, g, jsonify, request
from wechatpy import WeChatClient

SIM = os.environ.get("BASELINE_SIM", "http://127.0.0.1:19090")
DB = os.environ.get("BASELINE_DB", "baseline.db")


class SimClient(WeChatClient):
    """wechatpy pointed at the simulator (wechatpy names the token URL in full)."""

    API_BASE_URL = SIM + "/cgi-bin/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=SIM + "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


# One client per worker process: wechatpy keeps the token in the process's memory, as
# most deployments do.
client = SimClient(os.environ.get("BASELINE_APPID", "wxbench000000001"),
                   os.environ.get("BASELINE_SECRET", "bench-secret"))
app = Flask(__name__)
_schema_lock = threading.Lock()


def db():
    if "db" not in g:
        g.db = sqlite3.connect(DB, timeout=30, isolation_level=None)
        g.db.execute("PRAGMA journal_mode=WAL")
        g.db.execute("PRAGMA synchronous=NORMAL")
    return g.db


@app.teardown_appcontext
def close(_exc):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init():
    with _schema_lock:
        conn = sqlite3.connect(DB, timeout=30)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS identities (user_id TEXT PRIMARY KEY, openid TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, template_id TEXT NOT NULL,
                status TEXT NOT NULL, msgid INTEGER, errcode INTEGER);
            """
        )
        conn.close()


init()


@app.put("/api/v1/users/<user_id>/identities/<app_id>/<openid>")
def bind(user_id, app_id, openid):
    db().execute("INSERT OR REPLACE INTO identities (user_id, openid) VALUES (?, ?)", (user_id, openid))
    return jsonify({"user_id": user_id, "openid": openid})


@app.post("/api/v1/users/<user_id>/messages")
def send(user_id):
    body = request.get_json(force=True)
    conn = db()
    row = conn.execute("SELECT openid FROM identities WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return jsonify({"code": "unknown_user", "message": f"no openid for {user_id}"}), 404
    data = {k: {"value": v} for k, v in body.get("data", {}).items()}
    cur = conn.execute(
        "INSERT INTO messages (user_id, template_id, status) VALUES (?, ?, 'sending')",
        (user_id, body["template_id"]),
    )
    mid = cur.lastrowid
    try:
        res = client.message.send_template(row[0], body["template_id"], data, url=body.get("url"))
    except Exception as e:  # wechatpy raises WeChatClientException on errcode != 0
        conn.execute("UPDATE messages SET status = 'failed', errcode = ? WHERE id = ?",
                     (getattr(e, "errcode", -1), mid))
        return jsonify({"code": "wechat_error", "message": str(e)}), 502
    conn.execute("UPDATE messages SET status = 'sent', msgid = ? WHERE id = ?", (res.get("msgid"), mid))
    return jsonify({"id": mid, "status": "sent"}), 202


@app.get("/livez")
def livez():
    return "ok"
