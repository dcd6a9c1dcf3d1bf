#!/usr/bin/python3
"""fake_exo_smtp.py: a fake Exchange Online SMTP submission server (smtp.office365.com:587).

Usage:
    fake_exo_smtp.py --cert PKI/server --tokens STATE/tokens.json --outdir DIR
                     [--sendas-map FILE] [--basic-auth disabled|off|on]
                     [--max-conn 3] [--rate 30] [--minute 60] [--idle-timeout S]
                     [--fail MODE] [--fail-times N]
                     [--hostname NAME] [--host 127.0.0.1] [--log FILE]
                     [--token-sessions] [--revoke-after N] [--data-delay SECONDS]
                     [--lifetime SECONDS]

Listens on --host (default 127.0.0.1), port 0 (ephemeral), prints "PORT <n>"
as its first stdout line, serves connections in threads, and exits by itself
after --lifetime seconds (default 60).  Python 3 stdlib only.  Behaves as
/work/shared/EXCHANGE-ONLINE.md describes:

  greeting   220 <hostname>.outlook.office365.com Microsoft ESMTP MAIL Service
             ready at <date>   (--hostname default "SN4PR0501CA0001")
  EHLO       before TLS: SIZE 157286400, PIPELINING, DSN, ENHANCEDSTATUSCODES,
             STARTTLS, 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8, no AUTH;
             after STARTTLS (220 2.0.0 SMTP server ready; TLS 1.2 minimum,
             --cert PKI/server.pem/.key): the same without STARTTLS, plus
             "AUTH LOGIN XOAUTH2".  Bytes pipelined after STARTTLS end the
             connection (command injection).
  XOAUTH2    "AUTH XOAUTH2 <blob>" (SASL-IR) or "AUTH XOAUTH2", "334 ", blob.
             blob = base64("user=" U ^A "auth=Bearer " T ^A ^A).  Malformed:
             "501 5.5.124 Invalid XOAUTH2 auth data".  T is looked up in
             --tokens (fake_token.py's tokens.json, re-read on every AUTH):
             it must exist, be unexpired, have an SMTP scope, and be for U:
               delegated token ("user" is a UPN): scope holds
                 https://outlook.office.com/SMTP.Send and user == U;
               app token ("user" is the client id): scope holds
                 https://outlook.office365.com/.default and the sendas map
                 lists the client id under U's "apps".
             Otherwise: "334 <base64 of a JSON error>", and after the client's
             (empty) line "535 5.7.3 Authentication unsuccessful".
             Success: "235 2.7.0 Authentication successful".
  AUTH LOGIN --basic-auth disabled (default): after user and password,
             "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication
             is disabled for the Tenant. ..."; off: "550 5.7.30 Basic
             authentication is not supported for Client Submission"; on: the
             password from the sendas map, 235 or "535 5.7.3 ...".
  MAIL       before AUTH: "530 5.7.57 Client not authenticated to send mail".
  SendAs     at the end of DATA (or BDAT LAST), when the envelope sender or
             the From header address is neither U nor in U's "sendas" list:
             "554 5.2.252 SendAsDenied; U not allowed to send as F;
             STOREDRV.Submission.Exception:SendAsDeniedException; ..."
  Limits     per mailbox U:
             more than --max-conn (3) authenticated sessions at once: the AUTH
               is answered "432 4.3.2 Concurrent connections limit exceeded.
               ..." (the session stays unauthenticated);
             more than --rate (30) messages accepted in the last --minute (60)
               seconds, counted from their MAIL FROM (tests shorten the minute
               with O365_TEST_MINUTE): MAIL
               FROM is answered "452 4.3.2 Message submission rate for this
               client has exceeded the configured limit" (temporary; the
               choice documented for the "excess may be refused" case).
  Idle       with --idle-timeout S (default 0: none), a session that sends
             nothing for S seconds gets "421 4.4.2 Connection dropped due to
             idle timeout" and is closed (Exchange Online drops idle
             sessions; the exact time is not published).
  Delivery   "250 2.0.0 OK <id> [Hostname=...]"; the message is written to
             --outdir/<n>.eml exactly as received after removing the dot
             stuffing (CRLF line ends as sent), then <n>.env; n counts from 1
             over the server's life.  <n>.env lines:
                 Version: 1
                 User: <U>
                 Mail-From: <address>
                 Mail-Params: <parameters after the address, or empty>
                 Rcpt-To: <address>        (one line per recipient)
                 Size: <bytes of the .eml>
             Both are written to a temp name and renamed: a test polling for
             <n>.env sees complete files.

--sendas-map FILE (JSON, re-read on every use):
    {"relay@contoso.com": {"sendas": ["noreply@contoso.com"],
                           "apps": ["<client id>"], "password": "pw"}}
--fail MODE (the first --fail-times connections, default all):
    greeting-421  "421 4.3.2 Service not available, closing transmission channel"
                  as the greeting, then close
    stall         accept and never send a byte (until the client or the
                  lifetime ends)
    drop-data     close the connection after the first line of DATA, no reply
    stall-data    read the whole message but never answer the final dot
    quota         answer the final dot with "554 5.2.0 STOREDRV.Submission.
                  Exception:SubmissionQuotaExceededException; ..."
--token-sessions: a session lives as long as the token it authenticated with,
    like Exchange Online's IMAP ("* BYE Session invalidated -
    AccessTokenExpired"): once that token has expired (tokens.json) or was
    revoked, the session's next command is answered "421 4.7.0 Session
    invalidated - AccessTokenExpired" and the connection closed.
--revoke-after N: when the N-th message of the server's life is delivered,
    the token of that session is revoked: AUTH with it gets 535 5.7.3
    (logged "revoked"), and with --token-sessions the session ends.
--data-delay SECONDS: wait this long before answering the final dot (a slow
    server: a queue run then spans a known minimum time).
--log FILE: one line per event ("conn 3 open 2" (2: connections open now,
    this one included), "conn 3 C: MAIL FROM:<...>", "conn 3 auth xoauth2
    user=U ok|bad-token|expired|...", "conn 3 deliver 2 at 12.345" (the
    monotonic time its MAIL FROM was accepted: what the rate counts), "conn 3
    close");
    AUTH blobs, passwords and tokens never appear in it.
"""

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import socket
import ssl
import sys
import threading
import time

MAX_LINE = 65536             # AUTH blobs run 2-4 KB; anything this long is hostile
MAX_MESSAGE = 157286400      # SIZE advertised
MAX_RCPT = 500
APP_SCOPE = "https://outlook.office365.com/.default"
SMTP_SCOPE = "https://outlook.office.com/SMTP.Send"
EHLO_KEYWORDS = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS",
                 "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
DIAG = ("[Hostname=SN4PR0501MB0001.namprd05.prod.outlook.com]")


class Closed(Exception):
    """The connection ends (client gone, or we hang up)."""


class Shared:
    """State over all connections, guarded by one lock."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.sessions = {}        # mailbox -> authenticated sessions now
        self.sent = {}            # mailbox -> [monotonic times of accepted messages]
        self.msg_no = 0
        self.conn_no = 0
        self.open = 0             # connections open now
        self.revoked = set()      # tokens refused from now on
        self.logf = open(args.log, "a", encoding="utf-8") if args.log else None

    def log(self, text):
        if self.logf is not None:
            with self.lock:
                self.logf.write(text + "\n")
                self.logf.flush()

    def sendas_map(self):
        if not self.args.sendas_map:
            return {}
        with open(self.args.sendas_map, encoding="utf-8") as f:
            return json.load(f)

    def tokens(self):
        try:
            with open(self.args.tokens, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def addr_of(arg):
    """'<a@b> SIZE=1' -> ('a@b', 'SIZE=1'), None if malformed."""
    m = re.fullmatch(r"\s*<([^<>\s]*)>\s*(.*)", arg)
    if not m:
        return None
    return m.group(1), m.group(2)


def from_header(msg):
    """The address in the From header of msg (bytes), or None."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines, cur = [], None
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and cur is not None:
            cur += line
            continue
        if cur is not None:
            lines.append(cur)
        cur = line
    if cur is not None:
        lines.append(cur)
    for line in lines:
        if line.lower().startswith("from:"):
            value = line[5:]
            m = re.search(r"<([^<>]*)>", value)
            return (m.group(1) if m else value).strip()
    return None


class Session:
    def __init__(self, sock, shared, conn_no, failing):
        self.sock = sock
        self.sh = shared
        self.args = shared.args
        self.no = conn_no
        self.fail = self.args.fail if failing else None
        self.buf = b""
        self.tls = False
        self.helo = False
        self.user = None          # authenticated mailbox
        self.token = None         # the XOAUTH2 token it authenticated with
        self.counted = None       # mailbox whose session slot we hold
        self.reset_tx()

    def reset_tx(self):
        self.mail_from = None
        self.mail_params = ""
        self.mail_at = 0.0
        self.rcpts = []
        self.bdat = None

    def log(self, text):
        self.sh.log("conn %d %s" % (self.no, text))

    # ---- I/O

    def send(self, line):
        try:
            self.sock.sendall(line.encode("utf-8") + b"\r\n")
        except OSError:
            raise Closed()

    def fill(self):
        try:
            if self.args.idle_timeout > 0:
                self.sock.settimeout(self.args.idle_timeout)
            data = self.sock.recv(65536)
        except socket.timeout:
            self.log("idle timeout")
            self.send("421 4.4.2 Connection dropped due to idle timeout")
            raise Closed()
        except (OSError, ssl.SSLError):
            raise Closed()
        if not data:
            raise Closed()
        self.buf += data

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                if line.endswith(b"\r"):
                    line = line[:-1]
                return line
            if len(self.buf) > MAX_LINE:
                self.send("500 5.5.6 Line too long")
                raise Closed()
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def stall(self):
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        raise Closed()

    # ---- the session

    def run(self):
        with self.sh.lock:
            self.sh.open += 1
            now_open = self.sh.open
        self.log("open %d" % now_open)
        if self.fail == "stall":
            self.stall()
        if self.fail == "greeting-421":
            self.send("421 4.3.2 Service not available, closing transmission channel")
            raise Closed()
        now = datetime.datetime.now(datetime.timezone.utc)
        self.send("220 %s.outlook.office365.com Microsoft ESMTP MAIL Service ready at %s"
                  % (self.args.hostname, now.strftime("%a, %d %b %Y %H:%M:%S +0000")))
        while True:
            raw = self.readline()
            line = raw.decode("utf-8", "replace")
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb) + 1:] if " " in line else ""
            self.log("C: " + (line if verb != "AUTH" else "AUTH " + arg.split(" ")[0]
                              + (" <secret>" if " " in arg else "")))
            if self.args.token_sessions and self.token is not None:
                why = self.token_gone()
                if why is not None:
                    self.log("session invalidated: token %s" % why)
                    self.send("421 4.7.0 Session invalidated - AccessTokenExpired %s" % DIAG)
                    raise Closed()
            handler = getattr(self, "cmd_" + verb, None) if verb.isalpha() else None
            if handler is None:
                self.send("500 5.3.3 Unrecognized command '%s'" % verb[:20])
                continue
            handler(arg)

    def cmd_EHLO(self, arg):
        if not arg.strip():
            self.send("501 5.5.4 Invalid domain name")
            return
        kw = [k for k in EHLO_KEYWORDS if not (self.tls and k == "STARTTLS")]
        if self.tls:
            kw.insert(kw.index("8BITMIME"), "AUTH LOGIN XOAUTH2")
        lines = ["%s.outlook.office365.com Hello [127.0.0.1]" % self.args.hostname] + kw
        for i, text in enumerate(lines):
            self.send("250%s%s" % ("-" if i < len(lines) - 1 else " ", text))
        self.helo = True
        self.reset_tx()

    def cmd_HELO(self, arg):
        self.send("250 %s.outlook.office365.com Hello [127.0.0.1]" % self.args.hostname)
        self.helo = True
        self.reset_tx()

    def cmd_NOOP(self, arg):
        self.send("250 2.0.0 OK")

    def cmd_RSET(self, arg):
        self.reset_tx()
        self.send("250 2.0.0 Resetting")

    def cmd_QUIT(self, arg):
        self.send("221 2.0.0 Service closing transmission channel")
        raise Closed()

    def cmd_STARTTLS(self, arg):
        if self.tls:
            self.send("503 5.5.1 Already in TLS")
            return
        self.send("220 2.0.0 SMTP server ready")
        if self.buf:
            self.log("bytes pipelined after STARTTLS: hanging up")
            raise Closed()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.args.cert + ".pem", self.args.cert + ".key")
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log("tls-fail %s" % e)
            raise Closed()
        self.log("tls %s" % self.sock.version())
        self.tls = True
        self.helo = False
        self.user = None
        self.reset_tx()

    # ---- AUTH

    def cmd_AUTH(self, arg):
        parts = arg.split(" ")
        mech = parts[0].upper()
        if not self.tls or mech not in ("XOAUTH2", "LOGIN"):
            self.send("504 5.7.4 Unrecognized authentication type")
            return
        if self.user is not None:
            self.send("503 5.5.2 Already authenticated")
            return
        if mech == "LOGIN":
            self.auth_login(parts[1] if len(parts) > 1 else None)
            return
        if len(parts) > 1:
            blob = parts[1]
        else:
            self.send("334 ")
            blob = self.readline().decode("ascii", "replace")
        try:
            raw = base64.b64decode(blob.encode("ascii"), validate=True)
            m = re.fullmatch(rb"user=([^\x01]+)\x01auth=Bearer ([^\x01 ]+)\x01\x01", raw)
        except (binascii.Error, ValueError):
            m = None
        if m is None:
            self.log("auth xoauth2 malformed")
            self.send("501 5.5.124 Invalid XOAUTH2 auth data")
            return
        user = m.group(1).decode("utf-8", "replace")
        token = m.group(2).decode("ascii", "replace")
        why = self.check_token(user, token)
        if why is not None:
            self.log("auth xoauth2 user=%s %s" % (user, why))
            err = json.dumps({"status": "401", "schemes": "bearer",
                              "scope": SMTP_SCOPE}).encode()
            self.send("334 " + base64.b64encode(err).decode())
            self.readline()           # the client's empty answer (or "*")
            self.send("535 5.7.3 Authentication unsuccessful [%s]" % DIAG[1:-1])
            return
        if self.authenticated(user, "xoauth2"):
            self.token = token

    def token_gone(self):
        """Why the session's token no longer holds, or None."""
        with self.sh.lock:
            if self.token in self.sh.revoked:
                return "revoked"
        ent = self.sh.tokens().get(self.token)
        if ent is None or ent.get("expires_at", 0) <= time.time():
            return "expired"
        return None

    def check_token(self, user, token):
        with self.sh.lock:
            if token in self.sh.revoked:
                return "revoked"
        ent = self.sh.tokens().get(token)
        if ent is None:
            return "bad-token"
        if ent.get("expires_at", 0) <= time.time():
            return "expired"
        scopes = ent.get("scope", "").split()
        who = ent.get("user", "")
        if "@" in who:
            if SMTP_SCOPE not in scopes:
                return "wrong-scope"
            if who.lower() != user.lower():
                return "wrong-user"
        else:
            if APP_SCOPE not in scopes:
                return "wrong-scope"
            box = self.sh.sendas_map().get(user.lower(), {})
            if who not in box.get("apps", []):
                return "app-not-allowed"
        return None

    def auth_login(self, initial):
        def b64q(text):
            return "334 " + base64.b64encode(text.encode()).decode()
        if initial is None:
            self.send(b64q("Username:"))
            initial = self.readline().decode("ascii", "replace")
        self.send(b64q("Password:"))
        pw_line = self.readline().decode("ascii", "replace")
        try:
            user = base64.b64decode(initial, validate=True).decode("utf-8", "replace")
            pw = base64.b64decode(pw_line, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            self.send("501 5.5.2 Cannot Decode response")
            return
        mode = self.args.basic_auth
        self.log("auth login user=%s mode=%s" % (user, mode))
        if mode == "off":
            self.send("550 5.7.30 Basic authentication is not supported for Client Submission")
        elif mode == "disabled":
            self.send("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
                      "disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for "
                      "more information. %s" % DIAG)
        else:
            box = self.sh.sendas_map().get(user.lower())
            if box is None or box.get("password") is None or box["password"] != pw:
                self.send("535 5.7.3 Authentication unsuccessful %s" % DIAG)
            else:
                self.authenticated(user, "login")

    def authenticated(self, user, mech):
        box = user.lower()
        with self.sh.lock:
            n = self.sh.sessions.get(box, 0)
            full = n >= self.args.max_conn
            if not full:
                self.sh.sessions[box] = n + 1
        if full:
            self.log("auth %s user=%s concurrent-limit" % (mech, user))
            self.send("432 4.3.2 Concurrent connections limit exceeded. Visit "
                      "https://aka.ms/concurrent_sending for more information. %s" % DIAG)
            return False
        self.counted = box
        self.user = user
        self.log("auth %s user=%s ok" % (mech, user))
        self.send("235 2.7.0 Authentication successful")
        return True

    def release(self):
        if self.counted is not None:
            with self.sh.lock:
                self.sh.sessions[self.counted] -= 1
            self.counted = None

    # ---- the transaction

    def cmd_MAIL(self, arg):
        if not self.helo:
            self.send("503 5.5.2 Send hello first")
            return
        if self.user is None:
            self.send("530 5.7.57 Client not authenticated to send mail. %s" % DIAG)
            return
        if self.mail_from is not None:
            self.send("503 5.5.2 Sender already specified")
            return
        if not arg.upper().startswith("FROM:") or addr_of(arg[5:]) is None:
            self.send("501 5.5.4 Invalid arguments")
            return
        box = self.user.lower()
        now = time.monotonic()
        with self.sh.lock:
            recent = [t for t in self.sh.sent.get(box, []) if now - t < self.args.minute]
            self.sh.sent[box] = recent
            over = len(recent) >= self.args.rate
        if over:
            self.send("452 4.3.2 Message submission rate for this client has exceeded the "
                      "configured limit")
            return
        self.mail_from, self.mail_params = addr_of(arg[5:])
        self.mail_at = now
        self.send("250 2.1.0 Sender OK")

    def cmd_RCPT(self, arg):
        if self.mail_from is None:
            self.send("503 5.5.2 Need mail command")
            return
        if not arg.upper().startswith("TO:") or addr_of(arg[3:]) is None \
                or not addr_of(arg[3:])[0]:
            self.send("501 5.5.4 Invalid arguments")
            return
        if len(self.rcpts) >= MAX_RCPT:
            self.send("452 4.5.3 Too many recipients")
            return
        if addr_of(arg[3:])[0].lower() in self.args.defer_rcpt:
            self.send("451 4.7.500 Server busy. Please try again later from [127.0.0.1]. "
                      "(S77714) [SN4PR0501CA0001.namprd05.prod.outlook.com]")
            return
        self.rcpts.append(addr_of(arg[3:])[0])
        self.send("250 2.1.5 Recipient OK")

    def cmd_DATA(self, arg):
        if self.mail_from is None or not self.rcpts:
            self.send("503 5.5.2 Need rcpt command")
            return
        self.send("354 Start mail input; end with <CRLF>.<CRLF>")
        out, first, size = [], True, 0
        while True:
            i = self.buf.find(b"\r\n")
            while i < 0:
                if len(self.buf) > MAX_LINE:
                    self.send("500 5.5.6 Line too long")
                    raise Closed()
                self.fill()
                i = self.buf.find(b"\r\n")
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            if first and self.fail == "drop-data":
                self.log("drop-data: hanging up")
                raise Closed()
            first = False
            if line == b".":
                break
            if line.startswith(b"."):
                line = line[1:]           # RFC 5321 4.5.2
            size += len(line) + 2
            if size > MAX_MESSAGE:
                self.send("552 5.3.4 Message size exceeds fixed maximum message size")
                raise Closed()
            out.append(line + b"\r\n")
        self.finish(b"".join(out))

    def cmd_BDAT(self, arg):
        m = re.fullmatch(r"(\d+)( LAST)?", arg.strip(), re.I)
        if not m:
            self.send("501 5.5.4 Invalid arguments")
            return
        chunk = self.read_exact(int(m.group(1)))
        if self.mail_from is None or not self.rcpts:
            self.send("503 5.5.2 Need rcpt command")
            return
        self.bdat = (self.bdat or b"") + chunk
        if m.group(2):
            data, self.bdat = self.bdat, None
            self.finish(data)
        else:
            self.send("250 2.0.0 %d bytes received" % len(chunk))

    def finish(self, msg):
        if self.fail == "stall-data":
            self.stall()
        if self.args.data_delay > 0:
            time.sleep(self.args.data_delay)
        if self.fail == "quota":
            self.send("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; "
                      "Failed to process message due to a permanent exception with message "
                      "Cannot submit message. %s" % DIAG)
            self.reset_tx()
            return
        allowed = {self.user.lower()} | {a.lower() for a in
                                         self.sh.sendas_map().get(self.user.lower(), {})
                                         .get("sendas", [])}
        hdr = from_header(msg)
        for sender in (self.mail_from, hdr):
            if sender is not None and sender.lower() not in allowed:
                self.log("sendas-denied from=%s" % sender)
                self.send("554 5.2.252 SendAsDenied; %s not allowed to send as %s; "
                          "STOREDRV.Submission.Exception:SendAsDeniedException; Failed to "
                          "process message due to a permanent exception with message "
                          "[BeginDiagnosticData]Cannot submit message.[EndDiagnosticData] %s"
                          % (self.user, sender, DIAG))
                self.reset_tx()
                return
        with self.sh.lock:
            self.sh.msg_no += 1
            n = self.sh.msg_no
            at = self.mail_at
            self.sh.sent.setdefault(self.user.lower(), []).append(at)
        base = os.path.join(self.args.outdir, str(n))
        write_atomic(base + ".eml", msg)
        env = ["Version: 1", "User: " + self.user, "Mail-From: " + self.mail_from,
               "Mail-Params: " + self.mail_params]
        env += ["Rcpt-To: " + r for r in self.rcpts]
        env.append("Size: %d" % len(msg))
        write_atomic(base + ".env", ("\n".join(env) + "\n").encode("utf-8"))
        self.log("deliver %d at %.3f" % (n, at))
        if self.args.revoke_after and n == self.args.revoke_after and self.token is not None:
            with self.sh.lock:
                self.sh.revoked.add(self.token)
            self.log("token of this session revoked")
        self.send("250 2.0.0 OK <%d.%d@%s.outlook.office365.com> %s"
                  % (n, int(time.time()), self.args.hostname, DIAG))
        self.reset_tx()


def serve(conn, shared):
    with shared.lock:
        shared.conn_no += 1
        no = shared.conn_no
    failing = shared.args.fail is not None and \
        (shared.args.fail_times < 0 or no <= shared.args.fail_times)
    conn.settimeout(shared.args.lifetime)
    s = Session(conn, shared, no, failing)
    try:
        s.run()
    except Closed:
        pass
    finally:
        s.release()
        with shared.lock:
            shared.open -= 1
        s.log("close")
        try:
            s.sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", required=True, help="PKI/server: uses .pem and .key")
    ap.add_argument("--tokens", required=True, help="fake_token.py's STATE/tokens.json")
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--sendas-map")
    ap.add_argument("--basic-auth", choices=("disabled", "off", "on"), default="disabled")
    ap.add_argument("--max-conn", type=int, default=3)
    ap.add_argument("--rate", type=int, default=30)
    ap.add_argument("--minute", type=float, default=60.0)
    ap.add_argument("--idle-timeout", type=float, default=0.0)
    ap.add_argument("--fail", choices=("greeting-421", "stall", "drop-data", "stall-data",
                                       "quota"))
    ap.add_argument("--fail-times", type=int, default=-1)
    ap.add_argument("--hostname", default="SN4PR0501CA0001")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log")
    ap.add_argument("--token-sessions", action="store_true")
    ap.add_argument("--revoke-after", type=int, default=0)
    ap.add_argument("--data-delay", type=float, default=0.0)
    ap.add_argument("--defer-rcpt", action="append", default=[], type=str.lower,
                    help="answer RCPT TO this address with 451 4.7.500 (repeatable)")
    ap.add_argument("--lifetime", type=float, default=60.0)
    a = ap.parse_args()

    shared = Shared(a)
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, 0))
    srv.listen(16)
    print("PORT %d" % srv.getsockname()[1], flush=True)

    def die():
        os._exit(0)
    t = threading.Timer(a.lifetime, die)
    t.daemon = True
    t.start()
    while True:
        conn, _ = srv.accept()
        th = threading.Thread(target=serve, args=(conn, shared), daemon=True)
        th.start()


if __name__ == "__main__":
    main()
