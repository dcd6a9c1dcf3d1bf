#!/usr/bin/python3
"""fake_token.py: a fake Microsoft identity platform token endpoint for tests.

Usage:
    fake_token.py --cert PKI/server --state DIR [--lifetime SECONDS]

Serves HTTPS on 127.0.0.1, port 0 (ephemeral), with PKI/server.pem and
PKI/server.key (tests/fake/mkcerts.sh), and prints "PORT <n>" as its first
stdout line.  Exits by itself after --lifetime seconds (default 60).  Python 3
stdlib only.

Endpoints (any tenant; the tenant is logged):
    POST /<tenant>/oauth2/v2.0/token        grant_type password, client_credentials,
                                            refresh_token, urn:ietf:params:oauth:grant-type:device_code
    POST /<tenant>/oauth2/v2.0/devicecode   client_id, scope

Files in the --state DIR:
  users.json     written by the test, re-read on every request:
      {"users":   {"alice@contoso.com": {"password": "...", "case": "ok"}},
       "clients": {"<client_id>": {"public": true, "secret": "...", "case": "ok"}},
       "mode": "normal", "expires_in": 3599, "rotate_refresh": true,
       "device_interval": 5, "device_expires_in": 900}
    user "case": ok | 50126 | 50034 | 50053 | 50055 | 50056 | 50057 | 50072 |
                 50074 | 50076 | 50079 | 53003: anything but "ok" is answered
                 with that AADSTS error whatever the password.  An unknown user
                 gets 50034, a wrong password 50126.
    client "case": ok | 700016 | 7000218 | 65001.  A client that is not
                 "public" gets 7000218 on the password/device grants without
                 a client_secret; a wrong client_secret gets 7000215.
    client "certificate": a PEM file: the client may authenticate with a
                 client assertion (client_assertion_type jwt-bearer, RFC
                 7523) signed by that certificate's key, as Entra checks it:
                 header alg PS256 or RS256, typ JWT, x5t#S256 (or x5t) the
                 certificate's thumbprint, else AADSTS700027 ("key was not
                 found"); the signature verified with the certificate's
                 public key (openssl dgst -verify), else AADSTS700027;
                 claims aud = this token endpoint's URL, iss = sub =
                 client_id (else AADSTS700021), exp in the future and
                 nbf not in the future (else AADSTS700024), a jti never
                 seen before (else AADSTS700027).  All invalid_client, 401.
    "mode": normal | 429 (with "Retry-After: 7") | 500 | 503 |
            slow (answers after the lifetime: longer than any client timeout) |
            truncated (Content-Length larger than the bytes sent, then close) |
            html (200 with an HTML page) | garbage (200 with random bytes) |
            huge (200 with a 70 KB JSON body) |
            redirect (302 to an http:// URL on a dead port).
    Refresh tokens are issued when the scope holds "offline_access" (or
    always for the refresh_token grant).
  device.json    optional, the scripted device code states, one consumed per
                 poll: ["authorization_pending", "slow_down", "ok"], or
                 {"user": "bob@contoso.com", "states": [...]}.  States:
                 authorization_pending, slow_down, authorization_declined,
                 expired_token, ok.  An empty or missing list means "ok".
  tokens.json    written by this server (temp + rename), every access token
                 issued: {"<access_token>": {"user": "<upn or client id>",
                 "scope": "...", "expires_at": <epoch>, "client_id": "..."}}.
                 Fake IMAP/SMTP servers check presented tokens against it.
  refresh.json   written by this server: issued refresh tokens and their state.
  requests.log   one JSON object per line per request: {"endpoint", "tenant",
                 "content_type", "accept", "user_agent", "form": {...}} with
                 form["password"] replaced by the SHA-256 hex of its bytes.

Error answers have the shape Entra ID sends: error, error_description
("AADSTS<n>: <text> Trace ID: ... Correlation ID: ... Timestamp: ..."),
error_codes [n], timestamp, trace_id, correlation_id, error_uri; HTTP 400,
or 401 for invalid_client.
"""

import argparse
import base64
import binascii
import hashlib
import http.server
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

AADSTS = {
    50126: ("invalid_grant", "Error validating credentials due to invalid username or password."),
    50034: ("invalid_grant", "The user account {{EUII Hidden}} does not exist in the contoso.com "
            "directory. To sign into this application, the account must be added to the directory."),
    50056: ("invalid_grant", "Invalid or null password: password does not exist in the directory "
            "for this user."),
    50053: ("invalid_grant", "The account is locked, you've tried to sign in too many times with "
            "an incorrect user ID or password."),
    50055: ("invalid_grant", "The password is expired."),
    50057: ("invalid_grant", "The user account is disabled."),
    50072: ("interaction_required", "Due to a configuration change made by your administrator, "
            "or because you moved to a new location, you must enroll in multi-factor "
            "authentication to access '00000002-0000-0ff1-ce00-000000000000'."),
    50074: ("interaction_required", "Strong Authentication is required."),
    50076: ("interaction_required", "Due to a configuration change made by your administrator, "
            "or because you moved to a new location, you must use multi-factor authentication "
            "to access '00000002-0000-0ff1-ce00-000000000000'."),
    50079: ("interaction_required", "Due to a configuration change made by your administrator, "
            "or because you moved to a new location, you must enroll in multi-factor "
            "authentication to access '00000002-0000-0ff1-ce00-000000000000'."),
    53003: ("invalid_grant", "Access has been blocked by Conditional Access policies. The access "
            "policy does not allow token issuance."),
    65001: ("invalid_grant", "The user or administrator has not consented to use the application "
            "with ID '{client}' named 'o365-unix'. Send an interactive authorization request "
            "for this user and resource."),
    700016: ("unauthorized_client", "Application with identifier '{client}' was not found in the "
             "directory 'contoso'. This can happen if the application has not been installed by "
             "the administrator of the tenant or consented to by any user in the tenant. You "
             "may have sent your authentication request to the wrong tenant."),
    7000218: ("invalid_client", "The request body must contain the following parameter: "
              "'client_assertion' or 'client_secret'."),
    7000215: ("invalid_client", "Invalid client secret provided. Ensure the secret being sent in "
              "the request is the client secret value, not the client secret ID, for a secret "
              "added to app '{client}'."),
    700027: ("invalid_client", "Client assertion failed signature validation. [Reason - {reason}] "
             "Thumbprint of key used by client: '{thumb}'."),
    700024: ("invalid_client", "Client assertion is not within its valid time range. Current "
             "time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}."),
    700021: ("invalid_client", "Client assertion application identifier doesn't match "
             "'client_id' parameter."),
    700082: ("invalid_grant", "The refresh token has expired due to inactivity. The token was "
             "issued on 2025-01-01T00:00:00.0000000Z and was inactive for 90.00:00:00."),
    900144: ("invalid_request", "The request body must contain the following parameter: '{param}'."),
    70016: ("authorization_pending", "OAuth 2.0 device flow error. Authorization is pending. "
            "Continue polling."),
    70000: ("authorization_declined", "The user denied the authorization request."),
    70020: ("expired_token", "The provided value for the input parameter 'device_code' is not "
            "valid. This device code has expired."),
    90055: ("temporarily_unavailable", "The server is temporarily too busy to handle the request. "
            "Please try again later."),
    90033: ("temporarily_unavailable", "A transient error has occurred. Please try again."),
}
DEVICE_STATES = {
    "authorization_pending": 70016,
    "slow_down": 70016,
    "authorization_declined": 70000,
    "expired_token": 70020,
}
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
MAX_BODY = 1 << 20


class State:
    """The --state directory, guarded by one lock (the server is threaded)."""

    def __init__(self, path, deadline):
        self.path = path
        self.deadline = deadline
        self.lock = threading.Lock()
        self.device_codes = {}
        self.jtis = set()         # client assertion ids seen

    def file(self, name):
        return os.path.join(self.path, name)

    def load(self, name, default):
        try:
            with open(self.file(name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return default

    def save(self, name, obj):
        tmp = self.file(".%s.%d.tmp" % (name, threading.get_ident()))
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.file(name))

    def log_request(self, entry):
        with self.lock, open(self.file("requests.log"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_enc(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def long_token():
    # JWT-shaped and Entra-sized (2-3 KB): header.payload.signature, URL-safe
    return "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(1800) + "." + \
        secrets.token_urlsafe(256)


def token_scope(scope):
    return " ".join(s for s in scope.split() if s not in ("offline_access", "openid", "profile"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-token/1"
    sys_version = ""

    def setup(self):
        self.request.settimeout(10)
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):  # quiet: tests read requests.log
        pass

    # ---- answers ----

    def send_json(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store, no-cache")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_error_code(self, code, status=None, headers=(), error=None, **fmt):
        default_error, text = AADSTS[code]
        error = error or default_error
        text = text.format(client=fmt.get("client", ""), param=fmt.get("param", ""),
                           reason=fmt.get("reason", ""), thumb=fmt.get("thumb", ""),
                           now=fmt.get("now", ""), nbf=fmt.get("nbf", ""), exp=fmt.get("exp", ""))
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        if status is None:
            status = 401 if error == "invalid_client" else 400
        self.send_json(status, {
            "error": error,
            "error_description": "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s"
                                 % (code, text, trace, corr, ts),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": "https://login.microsoftonline.com/error?code=%d" % code,
        }, headers)

    def send_raw(self, status, ctype, body, length=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    # ---- request ----

    def do_GET(self):
        self.send_raw(405, "text/plain", b"POST only\n")

    def do_POST(self):
        st = self.server.state
        parts = self.path.split("?")[0].split("/")
        # "", tenant, "oauth2", "v2.0", endpoint
        if len(parts) != 5 or parts[2:4] != ["oauth2", "v2.0"] or \
                parts[4] not in ("token", "devicecode"):
            self.send_raw(404, "text/plain", b"not found\n")
            return
        tenant, endpoint = parts[1], parts[4]
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            self.send_raw(413, "text/plain", b"too large\n")
            return
        raw = self.rfile.read(n)
        form, form_error = {}, None
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("ascii"), keep_blank_values=True,
                                           strict_parsing=bool(raw), encoding="utf-8",
                                           errors="surrogateescape")
            for k, v in pairs:
                if k in form:
                    raise ValueError("duplicate field " + k)
                form[k] = v
        except (ValueError, UnicodeDecodeError) as e:
            form_error = str(e)
        logged = dict(form)
        if "password" in logged:
            logged["password"] = hashlib.sha256(
                form["password"].encode("utf-8", "surrogateescape")).hexdigest()
        st.log_request({"endpoint": endpoint, "tenant": tenant,
                        "content_type": self.headers.get("Content-Type"),
                        "accept": self.headers.get("Accept"),
                        "user_agent": self.headers.get("User-Agent"),
                        "form": logged, "form_error": form_error})

        with st.lock:
            conf = st.load("users.json", {})
        mode = conf.get("mode", "normal")
        if mode == "429":
            self.send_error_code(90055, status=429, headers=[("Retry-After", "7")])
            return
        if mode in ("500", "503"):
            self.send_error_code(90033, status=int(mode))
            return
        if mode == "slow":
            while time.monotonic() < st.deadline:
                time.sleep(0.2)
            self.close_connection = True
            return
        if mode == "truncated":
            self.close_connection = True
            self.send_raw(200, "application/json; charset=utf-8",
                          b'{"token_type":"Bearer","scope":"x","expires_in":3599,"access_tok',
                          length=4000)
            self.wfile.flush()
            return
        if mode == "html":
            self.send_raw(200, "text/html; charset=utf-8",
                          b"<html><head><title>Sign in</title></head><body>Proxy login</body></html>")
            return
        if mode == "garbage":
            self.send_raw(200, "application/json", os.urandom(300))
            return
        if mode == "huge":
            self.send_raw(200, "application/json", b'{"pad":"' + b"x" * (70 * 1024) + b'"}')
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/" + "/".join(parts[1:]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if form_error is not None:
            self.send_json(400, {"error": "invalid_request",
                                 "error_description": "AADSTS900144: bad form: " + form_error,
                                 "error_codes": [900144]})
            return
        if endpoint == "devicecode":
            self.devicecode(conf, form)
        else:
            self.token(conf, form)

    def client_check(self, conf, form, need_public):
        """None if the client may go on, else the answer was sent."""
        cid = form.get("client_id", "")
        client = conf.get("clients", {}).get(cid)
        if client is None:
            self.send_error_code(700016, client=cid)
            return False
        case = str(client.get("case", "ok"))
        if case != "ok":
            self.send_error_code(int(case), client=cid)
            return False
        if "client_assertion" in form or "client_assertion_type" in form:
            return self.assertion_check(client, form, cid)
        if "client_secret" in form:
            if form["client_secret"] != client.get("secret"):
                self.send_error_code(7000215, client=cid)
                return False
        elif need_public and not client.get("public", False):
            self.send_error_code(7000218, client=cid)
            return False
        return True

    def assertion_check(self, client, form, cid):
        """RFC 7523 2.2 as Entra checks it; True if good, else the answer was sent."""
        def refuse(code, **kw):
            self.send_error_code(code, client=cid, **kw)
            return False

        if form.get("client_assertion_type") != \
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or \
                not form.get("client_assertion"):
            return refuse(900144, param="client_assertion")
        if "client_secret" in form:
            return refuse(7000215)
        parts = form["client_assertion"].split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            header = json.loads(b64url(parts[0]))
            claims = json.loads(b64url(parts[1]))
            sig = b64url(parts[2])
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError("not JSON objects")
        except (ValueError, binascii.Error) as e:
            return refuse(700027, reason="malformed JWT: %s" % e, thumb="")
        cert = client.get("certificate")
        if not cert:
            return refuse(700027, reason="The key was not found.", thumb="")
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                             capture_output=True, check=True).stdout
        s256 = b64url_enc(hashlib.sha256(der).digest())
        s1 = b64url_enc(hashlib.sha1(der).digest())
        thumb = header.get("x5t#S256") or header.get("x5t") or ""
        if header.get("typ") != "JWT" or header.get("alg") not in ("PS256", "RS256") or \
                (header.get("x5t#S256") != s256 and header.get("x5t") != s1):
            return refuse(700027, reason="The key was not found.", thumb=thumb)
        if not self.signature_ok(cert, header["alg"], (parts[0] + "." + parts[1]).encode(),
                                 sig):
            return refuse(700027, reason="The signature is invalid.", thumb=thumb)
        aud = "https://%s%s" % (self.headers.get("Host", ""), self.path.split("?")[0])
        if claims.get("aud") != aud:
            return refuse(700027, reason="The audience %r is not %r." % (claims.get("aud"), aud),
                          thumb=thumb)
        if claims.get("iss") != cid or claims.get("sub") != cid:
            return refuse(700021)
        now = int(time.time())
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(nbf, int) or not isinstance(exp, int) or nbf > now + 300 or exp <= now:
            return refuse(700024, now=now, nbf=nbf, exp=exp)
        st = self.server.state
        jti = claims.get("jti")
        with st.lock:
            replay = not jti or jti in st.jtis
            st.jtis.add(jti)
        if replay:
            return refuse(700027, reason="The jti was used before.", thumb=thumb)
        return True

    def signature_ok(self, cert, alg, data, sig):
        """Verify with the certificate's public key through openssl(1)."""
        d = tempfile.mkdtemp(dir=self.server.state.path)
        try:
            pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                                 capture_output=True, check=True).stdout
            for name, blob in (("pub.pem", pub), ("data", data), ("sig", sig)):
                with open(os.path.join(d, name), "wb") as f:
                    f.write(blob)
            cmd = ["openssl", "dgst", "-sha256", "-verify", os.path.join(d, "pub.pem"),
                   "-signature", os.path.join(d, "sig")]
            if alg == "PS256":
                cmd[3:3] = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]
            cmd.append(os.path.join(d, "data"))
            return subprocess.run(cmd, capture_output=True).returncode == 0
        finally:
            for name in ("pub.pem", "data", "sig"):
                try:
                    os.unlink(os.path.join(d, name))
                except FileNotFoundError:
                    pass
            os.rmdir(d)

    def devicecode(self, conf, form):
        if not self.client_check(conf, form, need_public=True):
            return
        if not form.get("scope"):
            self.send_error_code(900144, param="scope")
            return
        code = "DAQABAAEAAAD" + secrets.token_urlsafe(300)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        st = self.server.state
        with st.lock:
            st.device_codes[code] = {"client_id": form["client_id"], "scope": form["scope"]}
        self.send_json(200, {
            "device_code": code,
            "user_code": user_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": conf.get("device_expires_in", 900),
            "interval": conf.get("device_interval", 5),
            "message": "To sign in, use a web browser to open the page "
                       "https://microsoft.com/devicelogin and enter the code %s to authenticate."
                       % user_code,
        })

    def issue(self, conf, user, client_id, scope, with_refresh):
        st = self.server.state
        lifetime = int(conf.get("expires_in", 3599))
        at = long_token()
        ans = {"token_type": "Bearer", "scope": token_scope(scope), "expires_in": lifetime,
               "ext_expires_in": lifetime, "access_token": at}
        with st.lock:
            tokens = st.load("tokens.json", {})
            tokens[at] = {"user": user, "scope": token_scope(scope),
                          "expires_at": int(time.time()) + lifetime, "client_id": client_id}
            st.save("tokens.json", tokens)
            if with_refresh:
                rt = "0.AXoA" + secrets.token_urlsafe(1200)
                refresh = st.load("refresh.json", {})
                refresh[rt] = {"user": user, "client_id": client_id, "scope": scope,
                               "expires_at": int(time.time()) + 90 * 86400, "used": False}
                st.save("refresh.json", refresh)
                ans["refresh_token"] = rt
        self.send_json(200, ans)

    def token(self, conf, form):
        grant = form.get("grant_type")
        if grant not in ("password", "client_credentials", "refresh_token", GRANT_DEVICE):
            self.send_json(400, {"error": "unsupported_grant_type",
                                 "error_description": "AADSTS70003: The app requested an "
                                 "unsupported grant type.", "error_codes": [70003]})
            return
        if not self.client_check(conf, form, need_public=grant in ("password", GRANT_DEVICE)):
            return
        if grant == "client_credentials" and "client_secret" not in form and \
                "client_assertion" not in form:
            self.send_error_code(7000218, client=form["client_id"])
            return
        scope = form.get("scope", "")
        if not scope:
            self.send_error_code(900144, param="scope")
            return
        cid = form["client_id"]
        offline = "offline_access" in scope.split()
        if grant == "password":
            for p in ("username", "password"):
                if not form.get(p):
                    self.send_error_code(900144, param=p)
                    return
            user = conf.get("users", {}).get(form["username"])
            if user is None:
                self.send_error_code(50034)
                return
            case = str(user.get("case", "ok"))
            if case != "ok":
                self.send_error_code(int(case), client=cid)
                return
            if form["password"] != user.get("password"):
                self.send_error_code(50126)
                return
            self.issue(conf, form["username"], cid, scope, offline)
        elif grant == "client_credentials":
            self.issue(conf, cid, cid, scope, False)
        elif grant == "refresh_token":
            self.refresh(conf, form, cid, scope)
        else:
            self.device_poll(conf, form, cid, scope, offline)

    def refresh(self, conf, form, cid, scope):
        st = self.server.state
        rt = form.get("refresh_token", "")
        rotate = conf.get("rotate_refresh", True)
        with st.lock:
            refresh = st.load("refresh.json", {})
            ent = refresh.get(rt)
            ok = ent is not None and ent["client_id"] == cid and \
                ent["expires_at"] > time.time() and not (rotate and ent["used"])
            if ok and rotate:
                ent["used"] = True
                st.save("refresh.json", refresh)
        if not ok:
            self.send_error_code(700082)
            return
        self.issue(conf, ent["user"], cid, scope, rotate)

    def device_poll(self, conf, form, cid, scope, offline):
        st = self.server.state
        code = form.get("device_code", "")
        with st.lock:
            known = st.device_codes.get(code)
            script = st.load("device.json", [])
            user = "device@contoso.com"
            if isinstance(script, dict):
                user = script.get("user", user)
                states = script.get("states", [])
            else:
                states = script
            state = states.pop(0) if states else "ok"
            if isinstance(script, dict):
                script["states"] = states
            else:
                script = states
            if known is not None:
                st.save("device.json", script)
        if known is None or known["client_id"] != cid:
            self.send_error_code(70000, error="invalid_grant")
            return
        if state != "ok":
            code_n = DEVICE_STATES[state]
            if state == "slow_down":
                self.send_json(400, {"error": "slow_down",
                                     "error_description": "AADSTS70016: slow down polling",
                                     "error_codes": [70016]})
                return
            self.send_error_code(code_n)
            return
        with st.lock:
            del st.device_codes[code]
        self.issue(conf, user, cid, known["scope"], offline or
                   "offline_access" in known["scope"].split())


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # clients that refuse our certificate, or hang up: not our business
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", required=True, help="PKI/server: uses .pem and .key")
    ap.add_argument("--state", required=True, help="the state directory")
    ap.add_argument("--lifetime", type=float, default=60.0)
    a = ap.parse_args()

    deadline = time.monotonic() + a.lifetime
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert + ".pem", a.cert + ".key")
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = State(a.state, deadline)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    print("PORT %d" % srv.server_address[1], flush=True)

    def die():
        os._exit(0)
    t = threading.Timer(a.lifetime, die)
    t.daemon = True
    t.start()
    srv.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
