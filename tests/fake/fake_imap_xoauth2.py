#!/usr/bin/python3
"""fake_imap_xoauth2.py: a fake Exchange Online IMAP4 server (implicit TLS).

Usage:
    fake_imap_xoauth2.py --cert PKI/server --tokens STATE/tokens.json
                         [--transcript FILE] [--lifetime SECONDS] [--stall]

Serves IMAPS on 127.0.0.1, port 0 (ephemeral), with PKI/server.pem and
PKI/server.key (tests/fake/mkcerts.sh), and prints "PORT <n>" as its first
stdout line.  Exits by itself after --lifetime seconds (default 60).  Python
3 stdlib only.

Behaves like outlook.office365.com:993 (see /work/shared/EXCHANGE-ONLINE.md):
  greeting   * OK The Microsoft Exchange IMAP4 service is ready. [<base64>]
  CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID
             UNSELECT CHILDREN IDLE NAMESPACE LITERAL+
  LOGIN      always "<tag> NO LOGIN failed." then "* BYE ..." and close,
             whether the password is right or not (Basic auth is off).
  AUTHENTICATE XOAUTH2 [ir]
             OK only for an access token listed in tokens.json (written by
             fake_token.py: {"<token>": {"user", "scope", "expires_at"}}),
             not expired, issued to the same user (case-insensitive) and for
             the IMAP scope; else "<tag> NO AUTHENTICATE failed.".
  AUTHENTICATE PLAIN   "<tag> NO AUTHENTICATE failed." (Basic auth is off).
  LOGOUT, NOOP, CAPABILITY, ID; anything else "<tag> BAD Command Error. 10".

--logins FILE: act like an on-premises Exchange server instead: LOGIN is
accepted ("<tag> OK LOGIN completed.") when the user and password match an
entry of FILE, JSON {"user": "password"}; else "<tag> NO LOGIN failed."
(no BYE).  The arguments may be atoms, quoted strings or literals.

--stall: accept and complete the TLS handshake, then never send a byte
(a server that never answers).

--transcript FILE: one line per event, appended: "CONNECT", "C: <line>" and
"S: <line>", with the LOGIN password and the XOAUTH2 blob replaced by
"<secret>", and "AUTH user=<user> ok|fail <why>" for each XOAUTH2 check.
"""

import argparse
import base64
import json
import os
import socket
import ssl
import sys
import threading
import time

IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
CAPS = ("IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT "
        "CHILDREN IDLE NAMESPACE LITERAL+")
BYE = "* BYE Microsoft Exchange Server IMAP4 server signing off."
GREETING = ("* OK The Microsoft Exchange IMAP4 service is ready. [" +
            base64.b64encode(b"AM0PR01CA0001.EURPRD01.PROD.OUTLOOK.COM").decode() + "]")
MAX_LINE = 16384

lock = threading.Lock()


class Session:
    def __init__(self, conn, args):
        self.conn = conn
        self.args = args
        self.buf = b""

    def log(self, text):
        if not self.args.transcript:
            return
        with lock:
            with open(self.args.transcript, "a", encoding="utf-8") as f:
                f.write(text + "\n")

    def send(self, line, shown=None):
        self.log("S: " + (shown if shown is not None else line))
        self.conn.sendall(line.encode() + b"\r\n")

    def readline(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise EOFError("line too long")
            data = self.conn.recv(4096)
            if not data:
                raise EOFError("closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def readn(self, n):
        while len(self.buf) < n:
            data = self.conn.recv(4096)
            if not data:
                raise EOFError("closed")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_command(self):
        """A command line with its literals ({n} or {n+}) folded in."""
        line = self.readline()
        while line.endswith(b"}") and b"{" in line:
            spec = line[line.rindex(b"{") + 1:-1]
            sync = not spec.endswith(b"+")
            try:
                n = int(spec.rstrip(b"+"))
            except ValueError:
                break
            if n > MAX_LINE:
                raise EOFError("literal too long")
            if sync:
                self.send("+ Ready for additional command text.")
            lit = self.readn(n)
            line = line + b"\r\n" + lit + self.readline()
        return line

    def login_args(self, raw):
        """Parse the two astrings after "tag LOGIN " (RFC 3501 section 9)."""
        rest = raw.split(b" ", 2)[2] if raw.count(b" ") >= 2 else b""
        out = []
        i = 0
        while len(out) < 2 and i < len(rest):
            if rest[i:i + 1] == b" ":
                i += 1
                continue
            if rest[i:i + 1] == b'"':
                i += 1
                val = b""
                while i < len(rest) and rest[i:i + 1] != b'"':
                    if rest[i:i + 1] == b"\\":
                        i += 1
                    val += rest[i:i + 1]
                    i += 1
                i += 1
                out.append(val)
            elif rest[i:i + 1] == b"{":
                end = rest.index(b"}", i)
                n = int(rest[i + 1:end].rstrip(b"+"))
                start = end + 3		# "}" CRLF
                out.append(rest[start:start + n])
                i = start + n
            else:
                end = rest.find(b" ", i)
                end = len(rest) if end < 0 else end
                out.append(rest[i:end])
                i = end
        return out

    def check_token(self, blob_b64):
        try:
            blob = base64.b64decode(blob_b64, validate=True).decode("utf-8")
        except Exception:
            return False, "", "bad base64"
        parts = blob.split("\x01")
        if len(parts) != 4 or parts[2] != "" or parts[3] != "":
            return False, "", "bad blob layout"
        if not parts[0].startswith("user=") or not parts[1].startswith("auth=Bearer "):
            return False, "", "bad blob fields"
        user, token = parts[0][5:], parts[1][12:]
        try:
            with open(self.args.tokens, encoding="utf-8") as f:
                tokens = json.load(f)
        except (OSError, ValueError):
            tokens = {}
        ent = tokens.get(token)
        if ent is None:
            return False, user, "unknown token"
        if ent.get("expires_at", 0) <= time.time():
            return False, user, "expired token"
        if str(ent.get("user", "")).lower() != user.lower():
            return False, user, "token of another user"
        if IMAP_SCOPE not in str(ent.get("scope", "")).split():
            return False, user, "token without the IMAP scope"
        return True, user, "ok"

    def authenticate(self, tag, words):
        mech = words[2].upper() if len(words) > 2 else ""
        shown = "%s AUTHENTICATE %s%s" % (tag, mech, " <secret>" if len(words) > 3 else "")
        self.log("C: " + shown)
        if mech not in ("XOAUTH2", "PLAIN"):
            self.send(tag + " NO AUTHENTICATE failed.")
            return
        if len(words) > 3:
            ir = words[3]
        else:
            self.send("+ ")
            ir = self.readline().decode("latin-1")
            self.log("C: <secret>")
        if ir == "*":
            self.send(tag + " BAD Command Argument Error. 12")
            return
        if mech == "PLAIN":
            self.send(tag + " NO AUTHENTICATE failed.")
            return
        ok, user, why = self.check_token(ir)
        self.log("AUTH user=%s %s %s" % (user, "ok" if ok else "fail", why))
        self.send(tag + (" OK AUTHENTICATE completed." if ok else " NO AUTHENTICATE failed."))

    def run(self):
        self.log("CONNECT")
        if self.args.stall:
            time.sleep(self.args.lifetime)
            return
        self.send(GREETING)
        while True:
            raw = self.read_command()
            text = raw.decode("utf-8", "replace")
            words = text.split(" ")
            tag = words[0]
            cmd = words[1].upper() if len(words) > 1 else ""
            if cmd == "LOGIN":
                self.log("C: %s LOGIN %s <secret>" % (tag, words[2] if len(words) > 2 else ""))
                if self.args.logins:
                    with open(self.args.logins, encoding="utf-8") as f:
                        logins = json.load(f)
                    got = self.login_args(raw)
                    ok = (len(got) == 2 and
                          logins.get(got[0].decode("utf-8", "replace")) == got[1].decode("utf-8", "replace"))
                    self.log("LOGIN user=%s %s" % (got[0].decode("utf-8", "replace") if got else "",
                                                   "ok" if ok else "fail"))
                    self.send(tag + (" OK LOGIN completed." if ok else " NO LOGIN failed."))
                    continue
                self.send(tag + " NO LOGIN failed.")
                self.send(BYE)
                return
            if cmd == "AUTHENTICATE":
                self.authenticate(tag, words)
                continue
            self.log("C: " + text)
            if cmd == "CAPABILITY":
                self.send("* CAPABILITY " + CAPS)
                self.send(tag + " OK CAPABILITY completed.")
            elif cmd == "NOOP":
                self.send(tag + " OK NOOP completed.")
            elif cmd == "ID":
                self.send('* ID ("name" "Microsoft.Exchange.Imap4.Imap4Server" "version" "15.20")')
                self.send(tag + " OK ID completed.")
            elif cmd == "LOGOUT":
                self.send(BYE)
                self.send(tag + " OK LOGOUT completed.")
                return
            else:
                self.send(tag + " BAD Command Error. 10")


def serve(conn, ctx, args):
    try:
        conn.settimeout(args.lifetime)
        tls = ctx.wrap_socket(conn, server_side=True)
        try:
            Session(tls, args).run()
        finally:
            try:
                tls.close()
            except OSError:
                pass
    except (OSError, EOFError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True, help="PKI/server: uses .pem and .key")
    ap.add_argument("--tokens", required=True, help="fake_token.py's tokens.json")
    ap.add_argument("--transcript")
    ap.add_argument("--lifetime", type=float, default=60.0)
    ap.add_argument("--stall", action="store_true")
    ap.add_argument("--logins", help="on-premises mode: JSON {user: password}")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert + ".pem", args.cert + ".key")
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print("PORT %d" % srv.getsockname()[1], flush=True)
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, ctx, args), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
