#!/bin/bash
# fake_exo_smtp.sh: prove tests/fake/fake_exo_smtp.py behaves as Exchange
# Online does (EXCHANGE-ONLINE.md), driving it with Python's smtplib and real
# tokens from tests/fake/fake_token.py.  Usage: fake_exo_smtp.sh BUILD SOURCE
set -euo pipefail
BUILD=${1:?build dir}
SRC=${2:?source dir}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/exo-smtp.XXXXXX")
TOKEN_PID=
cleanup() {
	[ -n "$TOKEN_PID" ] && kill "$TOKEN_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

bash "$SRC/tests/fake/mkcerts.sh" "$WORK/pki" >/dev/null
mkdir -p "$WORK/state"
cat >"$WORK/state/users.json" <<JSON
{"users": {"alice@contoso.com": {"password": "alice-pw", "case": "ok"},
           "bob@contoso.com": {"password": "bob-pw", "case": "ok"}},
 "clients": {"pub-client": {"public": true, "case": "ok"},
             "app-client": {"public": false, "secret": "app-secret", "case": "ok"}},
 "mode": "normal", "expires_in": 3599, "rotate_refresh": true}
JSON

coproc TOKEN { exec /usr/bin/python3 "$SRC/tests/fake/fake_token.py" --cert "$WORK/pki/server" \
	--state "$WORK/state" --lifetime 120; }
TOKEN_PID=$TOKEN_PID
word= port=
read -r -t 20 word port <&"${TOKEN[0]}" || true
[ "$word" = PORT ] || { echo "fake_token.py did not start" >&2; exit 1; }

/usr/bin/python3 - "$SRC" "$WORK" "$port" <<'PY'
import base64, json, os, re, smtplib, socket, ssl, subprocess, sys, time
import urllib.parse, urllib.request

SRC, WORK, TOKEN_PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
PKI = os.path.join(WORK, "pki")
CTX = ssl.create_default_context(cafile=os.path.join(PKI, "ca.pem"))
TOKENS = os.path.join(WORK, "state", "tokens.json")
SENDAS = os.path.join(WORK, "sendas.json")
with open(SENDAS, "w") as f:
    json.dump({"relay@contoso.com": {"sendas": ["noreply@contoso.com"], "apps": ["app-client"],
                                     "password": "relay-pw"},
               "alice@contoso.com": {"sendas": [], "password": "alice-basic"}}, f)
servers = []
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures += 1


def token(form):
    req = urllib.request.Request(
        "https://127.0.0.1:%d/contoso.onmicrosoft.com/oauth2/v2.0/token" % TOKEN_PORT,
        data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, context=CTX, timeout=15) as r:
        return json.load(r)["access_token"]


def start(*extra, outdir=None):
    outdir = outdir or os.path.join(WORK, "out%d" % len(servers))
    os.makedirs(outdir, exist_ok=True)
    log = os.path.join(WORK, "exo%d.log" % len(servers))
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/fake/fake_exo_smtp.py"),
                          "--cert", os.path.join(PKI, "server"), "--tokens", TOKENS,
                          "--outdir", outdir, "--sendas-map", SENDAS, "--log", log,
                          "--lifetime", "90"] + list(extra), stdout=subprocess.PIPE)
    servers.append(p)
    line = p.stdout.readline().decode()
    assert line.startswith("PORT "), line
    return int(line.split()[1]), outdir, log


def blob(user, tok):
    return base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (user, tok)).encode()).decode()


def session(port, timeout=15):
    s = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    s.ehlo("client.example")
    s.starttls(context=CTX)
    s.ehlo("client.example")
    return s


def auth(s, user, tok, sasl_ir=True):
    if sasl_ir:
        return s.docmd("AUTH", "XOAUTH2 " + blob(user, tok))
    code, _ = s.docmd("AUTH", "XOAUTH2")
    if code != 334:
        return code, b""
    return s.docmd(blob(user, tok))


try:
    alice = token({"grant_type": "password", "client_id": "pub-client", "username": "alice@contoso.com",
                   "password": "alice-pw", "scope": "https://outlook.office.com/SMTP.Send offline_access"})
    alice_imap = token({"grant_type": "password", "client_id": "pub-client",
                        "username": "alice@contoso.com", "password": "alice-pw",
                        "scope": "https://outlook.office.com/IMAP.AccessAsUser.All"})
    app = token({"grant_type": "client_credentials", "client_id": "app-client",
                 "client_secret": "app-secret", "scope": "https://outlook.office365.com/.default"})
    check(len(alice) > 2000 and len(app) > 2000, "tokens from fake_token.py")

    port, out, log = start()

    # greeting and EHLO before / after TLS
    s = smtplib.SMTP("127.0.0.1", port, timeout=15)
    code, text = s.ehlo("client.example")
    check(code == 250 and "starttls" in s.esmtp_features and "auth" not in s.esmtp_features,
          "EHLO before TLS: STARTTLS, no AUTH")
    check(s.esmtp_features.get("size") == "157286400", "SIZE 157286400")
    code, _ = s.docmd("AUTH", "XOAUTH2 " + blob("alice@contoso.com", alice))
    check(code == 504, "AUTH before TLS refused")
    s.starttls(context=CTX)
    s.ehlo("client.example")
    check(s.esmtp_features.get("auth", "").split() == ["LOGIN", "XOAUTH2"]
          and "starttls" not in s.esmtp_features, "EHLO after TLS: AUTH LOGIN XOAUTH2")
    code, _ = s.docmd("MAIL", "FROM:<alice@contoso.com>")
    check(code == 530, "MAIL before AUTH: 530 5.7.57")
    code, text = auth(s, "alice@contoso.com", alice, sasl_ir=True)
    check(code == 235, "XOAUTH2 SASL-IR with a delegated token: 235")
    msg = (b"From: Alice <alice@contoso.com>\r\nTo: bob@example.org\r\nSubject: dots\r\n\r\n"
           b"line one\r\n.leading dot\r\n..two dots\r\n.\r\nlast \xc3\xbc\r\n")
    s.sendmail("alice@contoso.com", ["bob@example.org", "carol@example.org"], msg)
    s.quit()
    with open(os.path.join(out, "1.eml"), "rb") as f:
        check(f.read() == msg, "delivered bytes equal the message (dot stuffing undone)")
    with open(os.path.join(out, "1.env")) as f:
        env = f.read()
    # smtplib sends "size=N" (lower case) since SIZE is advertised
    check(env == "Version: 1\nUser: alice@contoso.com\nMail-From: alice@contoso.com\n"
          "Mail-Params: size=%d\nRcpt-To: bob@example.org\nRcpt-To: carol@example.org\n"
          "Size: %d\n" % (len(msg), len(msg)), "envelope file")

    # greeting text
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    greet = raw.recv(1000).decode()
    raw.close()
    check(re.fullmatch(r"220 [A-Z0-9]+\.outlook\.office365\.com Microsoft ESMTP MAIL Service "
                       r"ready at .+\r\n", greet) is not None, "greeting text")

    # app token, two-step AUTH, SendAs rules
    s = session(port)
    code, text = auth(s, "relay@contoso.com", app, sasl_ir=False)
    check(code == 235, "XOAUTH2 two-step with an app token for a listed mailbox: 235")
    try:
        s.sendmail("someone@contoso.com", ["bob@example.org"], b"From: relay@contoso.com\r\n\r\nx\r\n")
        check(False, "envelope SendAs denied")
    except smtplib.SMTPDataError as e:
        check(e.smtp_code == 554 and e.smtp_error.startswith(
            b"5.2.252 SendAsDenied; relay@contoso.com not allowed to send as someone@contoso.com; "
            b"STOREDRV.Submission.Exception:SendAsDeniedException"), "envelope SendAs denied")
    try:
        s.sendmail("relay@contoso.com", ["bob@example.org"], b"From: ceo@contoso.com\r\n\r\nx\r\n")
        check(False, "From header SendAs denied")
    except smtplib.SMTPDataError as e:
        check(e.smtp_code == 554 and b"not allowed to send as ceo@contoso.com" in e.smtp_error,
              "From header SendAs denied")
    s.sendmail("noreply@contoso.com", ["bob@example.org"],
               b"From: No Reply <noreply@contoso.com>\r\n\r\nx\r\n")
    check(os.path.exists(os.path.join(out, "2.eml")), "SendAs right honoured")
    s.quit()

    # refused tokens
    expired = "eyJ0eXAi.expired-token-" + "x" * 100
    with open(TOKENS) as f:
        t = json.load(f)
    t[expired] = {"user": "alice@contoso.com", "scope": "https://outlook.office.com/SMTP.Send",
                  "expires_at": int(time.time()) - 10, "client_id": "pub-client"}
    with open(TOKENS + ".t", "w") as f:
        json.dump(t, f)
    os.replace(TOKENS + ".t", TOKENS)
    for user, tok, what in (("alice@contoso.com", "not-a-token", "unknown token"),
                            ("alice@contoso.com", expired, "expired token"),
                            ("alice@contoso.com", alice_imap, "IMAP-scoped token"),
                            ("bob@contoso.com", alice, "another user's token"),
                            ("alice@contoso.com", app, "app token for an unlisted mailbox")):
        s = session(port)
        code, text = s.docmd("AUTH", "XOAUTH2 " + blob(user, tok))
        ok = code == 334 and json.loads(base64.b64decode(text))["status"] == "401"
        code, text = s.docmd("")
        check(ok and code == 535 and text.startswith(b"5.7.3 Authentication unsuccessful"),
              what + ": 334 JSON then 535 5.7.3")
        s.close()
    s = session(port)
    for bad in ("!!!", base64.b64encode(b"user=a@b\x01auth=Basic x\x01\x01").decode(),
                base64.b64encode(("user=alice@contoso.com\x01auth=Bearer " + alice).encode()).decode()):
        code, text = s.docmd("AUTH", "XOAUTH2 " + bad)
        check(code == 501 and text == b"5.5.124 Invalid XOAUTH2 auth data", "malformed blob: 501")
    s.close()

    # AUTH LOGIN per --basic-auth
    s = session(port)
    try:
        s.login("alice@contoso.com", "alice-basic")
        check(False, "basic auth disabled")
    except smtplib.SMTPAuthenticationError as e:
        check(e.smtp_code == 535 and e.smtp_error.startswith(
            b"5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
            b"Tenant."), "AUTH LOGIN, basic auth disabled: 535 5.7.139")
    s.close()
    port_off, _, _ = start("--basic-auth", "off")
    s = session(port_off)
    code, text = s.docmd("AUTH", "LOGIN " + base64.b64encode(b"alice@contoso.com").decode())
    code, text = s.docmd(base64.b64encode(b"alice-basic").decode())
    check(code == 550 and text == b"5.7.30 Basic authentication is not supported for Client "
          b"Submission", "AUTH LOGIN, basic auth off: 550 5.7.30")
    s.close()
    port_on, _, _ = start("--basic-auth", "on")
    s = session(port_on)
    code, _ = s.login("alice@contoso.com", "alice-basic")
    check(code == 235, "AUTH LOGIN, basic auth on: 235")
    s.close()

    # concurrent connections per mailbox
    held = [session(port) for _ in range(3)]
    check(all(auth(h, "alice@contoso.com", alice)[0] == 235 for h in held), "three sessions")
    s = session(port)
    code, text = auth(s, "alice@contoso.com", alice)
    check(code == 432 and text.startswith(b"4.3.2 Concurrent connections limit exceeded"),
          "fourth session: 432 4.3.2")
    held.pop().quit()
    deadline = time.monotonic() + 15
    while True:         # the server frees the slot when it sees the close
        code, text = auth(s, "alice@contoso.com", alice)
        if code == 235 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check(code == 235, "a slot frees when a session ends")
    s.close()
    for h in held:
        h.close()

    # message rate
    port_rate, _, _ = start("--rate", "2")
    s = session(port_rate)
    auth(s, "alice@contoso.com", alice)
    s.sendmail("alice@contoso.com", ["b@example.org"], b"a\r\n")
    s.sendmail("alice@contoso.com", ["b@example.org"], b"b\r\n")
    code, text = s.docmd("MAIL", "FROM:<alice@contoso.com>")
    check(code == 452 and text.startswith(b"4.3.2 "), "third message in a minute: 452 4.3.2")
    s.close()

    # scripted failures
    p421, _, _ = start("--fail", "greeting-421")
    try:
        smtplib.SMTP("127.0.0.1", p421, timeout=15)
        check(False, "greeting 421")
    except smtplib.SMTPConnectError as e:
        check(e.smtp_code == 421, "greeting 421")
    pq, outq, _ = start("--fail", "quota")
    s = session(pq)
    auth(s, "alice@contoso.com", alice)
    try:
        s.sendmail("alice@contoso.com", ["b@example.org"], b"q\r\n")
        check(False, "quota")
    except smtplib.SMTPDataError as e:
        check(e.smtp_code == 554 and b"SubmissionQuotaExceededException" in e.smtp_error, "quota 554")
    s.close()
    check(os.listdir(outq) == [], "nothing delivered on quota")
    pd, outd, _ = start("--fail", "drop-data")
    s = session(pd)
    auth(s, "alice@contoso.com", alice)
    try:
        s.sendmail("alice@contoso.com", ["b@example.org"], b"d\r\n")
        check(False, "drop mid-DATA")
    except smtplib.SMTPServerDisconnected:
        check(True, "drop mid-DATA")
    check(os.listdir(outd) == [], "nothing delivered on drop")
    psd, outsd, _ = start("--fail", "stall-data")
    s = session(psd)
    auth(s, "alice@contoso.com", alice)
    s.sock.settimeout(1)
    try:
        s.sendmail("alice@contoso.com", ["b@example.org"], b"s\r\n")
        check(False, "stall after the final dot")
    except (socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected):
        check(os.listdir(outsd) == [], "stall after the final dot, nothing delivered")
    s.close()
    ps, _, _ = start("--fail", "stall")
    try:
        smtplib.SMTP("127.0.0.1", ps, timeout=1)
        check(False, "stall: no greeting")
    except (socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected):
        check(True, "stall: no greeting")
    p1, _, _ = start("--fail", "greeting-421", "--fail-times", "1")
    try:
        smtplib.SMTP("127.0.0.1", p1, timeout=15)
    except smtplib.SMTPConnectError:
        pass
    s = session(p1)
    check(auth(s, "alice@contoso.com", alice)[0] == 235, "--fail-times 1: second connection normal")
    s.close()

    # the server's logs never hold a token
    logs = ""
    for i in range(len(servers)):
        with open(os.path.join(WORK, "exo%d.log" % i)) as f:
            logs += f.read()
    check("auth xoauth2 user=alice@contoso.com ok" in logs, "log records outcomes")
    check(all(t[40:200] not in logs for t in (alice, app, alice_imap)) and "alice-basic" not in logs,
          "logs hold no token or password")
finally:
    for p in servers:
        p.kill()
        p.wait()
sys.exit(1 if failures else 0)
PY
