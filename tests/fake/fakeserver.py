#!/usr/bin/python3
"""fakeserver.py: a scripted IMAP/SMTP peer for tests (Python 3 stdlib only).

Usage:
  fakeserver.py --script FILE [--tls implicit|none] [--cert DIR/NAME] [--key FILE]
                [--tls-min 1.0|1.1|1.2|1.3] [--tls-max 1.0|1.1|1.2|1.3]
                [--host 127.0.0.1|::1] [--transcript FILE]
                [--connections N] [--lifetime SECONDS]
  fakeserver.py --check --script FILE      parse the script only; exit 0 if valid

Binds --host (default 127.0.0.1) on an ephemeral port and prints "PORT <n>" as
its first stdout line.  Then serves --connections (default 1) connections one
after the other, running the whole script on each, and exits 0.  It never runs
longer than --lifetime seconds (default 60; then it exits 2).

--cert DIR/NAME uses DIR/NAME.pem (certificate, may hold a chain) and
DIR/NAME.key (or --key FILE); needed for --tls implicit and for "starttls".
--tls-min/--tls-max bound the server's TLS versions; for 1.0/1.1 the server
also lowers its cipher security level so OpenSSL 3 agrees to speak them.

Script (one step per line; blank lines and lines starting with "#" skipped):
  S: text        send text + CRLF (buffered: consecutive S:/S+/inject/raw lines
                 go out in ONE write, just before the next other step)
  S+ text        send text without CRLF (buffered like S:)
  raw text       send text with escapes \\r \\n \\t \\0 \\\\ \\xNN, no CRLF
                 (buffered like S:; e.g. "raw * OK bare\\nLF")
  inject text    text + CRLF in the same write as the previous S: line
                 (STARTTLS injection: "S: 220 go ahead", "inject A002 OK fake")
  C: text        read one client line; it must equal text exactly, else the
                 transcript gets "MISMATCH expected: text" and the connection ends
  C~ regex       read one client line; it must fullmatch the Python regex
  C? [comment]   read one client line, any content
  starttls       TLS handshake now (server side, --cert)
  close          close the connection now (no TLS close_notify)
  stall          stop answering; keep the socket open until the client closes
                 or the lifetime ends (client bytes are read and dropped)
  trickle N text send text + CRLF one byte every N milliseconds
  garbage N      send N pseudo-random bytes (fixed seed), every 16th one a NUL
  longline N     send a line of N 'x' and CRLF
  repeat N text  send text + CRLF N times (one write)
  sleep MS       wait MS milliseconds
  readall        read and record client lines until the client closes
When the script ends, the server records client lines until the client closes
(like readall), then takes the next connection.

Transcript (--transcript FILE), one event per line, flushed as it happens:
  C: line        a client line without its CRLF; bytes outside 0x20..0x7e and
                 the backslash are escaped as \\xNN, so a bare LF ending shows
                 up as \\x0a and a NUL as \\x00
  C+ text        bytes the client sent without a line end before closing
  MISMATCH expected: text
  TLS TLSv1.3    a finished handshake (implicit or starttls) and its version
  TLS-FAIL why   a failed handshake (e.g. the client rejected our certificate)
  EOF            the client closed (or reset) the connection
  SEND-FAIL why  a send failed (the client was gone)
  NEXT           a new connection starts (written before the 2nd, 3rd, ...)
"""

import argparse
import os
import random
import re
import select
import signal
import socket
import ssl
import sys
import time
import warnings

MAX_LINE = 1 << 20          # a client line longer than this ends the connection
VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
STEPS_WITH_TEXT = ("S:", "S+", "C:", "C~", "C?", "raw", "inject")


class ScriptError(Exception):
    pass


class EndConnection(Exception):
    """The client went away or broke the script: stop this connection."""


def escape(data):
    out = []
    for b in data:
        if 0x20 <= b <= 0x7E and b != 0x5C:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out += ch.encode()
            i += 1
            continue
        nxt = text[i + 1]
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
        if nxt in simple:
            out += simple[nxt]
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            raise ScriptError("bad escape in %r" % text)
    return bytes(out)


def parse_script(path):
    """Return a list of (lineno, op, arg)."""
    steps = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            op, _, arg = line.partition(" ")
            if op in STEPS_WITH_TEXT:
                if op == "raw":
                    unescape(arg)
                if op == "C~":
                    re.compile(arg)
                steps.append((lineno, op, arg))
            elif op in ("starttls", "close", "stall", "readall"):
                if arg.strip():
                    raise ScriptError("line %d: %s takes no argument" % (lineno, op))
                steps.append((lineno, op, ""))
            elif op in ("garbage", "longline", "sleep"):
                if not re.fullmatch(r"[0-9]+", arg.strip()):
                    raise ScriptError("line %d: %s needs a number" % (lineno, op))
                steps.append((lineno, op, int(arg.strip())))
            elif op in ("trickle", "repeat"):
                num, _, text = arg.partition(" ")
                if not re.fullmatch(r"[0-9]+", num):
                    raise ScriptError("line %d: %s N text" % (lineno, op))
                steps.append((lineno, op, (int(num), text)))
            else:
                raise ScriptError("line %d: unknown step %r" % (lineno, op))
    return steps


class Transcript:
    def __init__(self, path):
        self.f = open(path, "a", encoding="ascii") if path else None

    def add(self, text):
        if self.f:
            self.f.write(text + "\n")
            self.f.flush()


class Conn:
    def __init__(self, sock, args, transcript):
        self.sock = sock
        self.args = args
        self.t = transcript
        self.inbuf = b""
        self.out = b""

    # --- output
    def send_now(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            self.t.add("SEND-FAIL %s" % escape(str(e).encode()))
            raise EndConnection()

    def flush(self):
        if self.out:
            data, self.out = self.out, b""
            self.send_now(data)

    # --- input
    def recv_some(self):
        try:
            data = self.sock.recv(65536)
        except ssl.SSLError as e:
            if isinstance(e, ssl.SSLEOFError):
                data = b""
            else:
                self.t.add("TLS-FAIL %s" % escape(str(e).encode()))
                raise EndConnection()
        except OSError:
            data = b""
        return data

    def readline(self):
        while b"\n" not in self.inbuf:
            if len(self.inbuf) > MAX_LINE:
                self.t.add("C+ " + escape(self.inbuf[:200]) + "...")
                raise EndConnection()
            data = self.recv_some()
            if not data:
                if self.inbuf:
                    self.t.add("C+ " + escape(self.inbuf))
                    self.inbuf = b""
                self.t.add("EOF")
                raise EndConnection()
            self.inbuf += data
        line, _, self.inbuf = self.inbuf.partition(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        else:
            line += b"\n"           # bare LF: show it as \x0a
        self.t.add("C: " + escape(line))
        return line

    def readall(self):
        while True:
            self.readline()

    def drain(self):
        while True:
            self.inbuf = b""
            if not self.recv_some():
                self.t.add("EOF")
                raise EndConnection()

    # --- TLS
    def starttls(self):
        if not self.args.cert:
            raise ScriptError("starttls needs --cert")
        # A client that gives up before the handshake (STARTTLS injection)
        # shows up as EOF without any TLS line.
        try:
            if self.sock.recv(1, socket.MSG_PEEK) == b"":
                self.t.add("EOF")
                raise EndConnection()
        except OSError:
            self.t.add("EOF")
            raise EndConnection()
        ctx = make_tls_context(self.args)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.t.add("TLS-FAIL %s" % escape(str(e).encode()))
            raise EndConnection()
        self.t.add("TLS %s" % self.sock.version())

    # --- the script
    def run(self, steps):
        for lineno, op, arg in steps:
            if op == "S:":
                self.out += arg.encode() + b"\r\n"
                continue
            if op == "S+":
                self.out += arg.encode()
                continue
            if op == "raw":
                self.out += unescape(arg)
                continue
            if op == "inject":
                self.out += arg.encode() + b"\r\n"
                continue
            self.flush()
            if op in ("C:", "C~", "C?"):
                line = self.readline()
                if op == "C:" and line != arg.encode():
                    self.t.add("MISMATCH expected: " + escape(arg.encode()))
                    raise EndConnection()
                if op == "C~" and not re.fullmatch(arg.encode(), line):
                    self.t.add("MISMATCH expected: ~" + escape(arg.encode()))
                    raise EndConnection()
            elif op == "starttls":
                self.starttls()
            elif op == "close":
                raise EndConnection()
            elif op == "stall":
                self.drain()
            elif op == "trickle":
                ms, text = arg
                for b in text.encode() + b"\r\n":
                    self.send_now(bytes([b]))
                    time.sleep(ms / 1000.0)
            elif op == "garbage":
                rnd = random.Random(arg)
                data = bytearray(rnd.getrandbits(8) for _ in range(arg))
                for i in range(0, len(data), 16):
                    data[i] = 0
                self.send_now(bytes(data))
            elif op == "repeat":
                count, text = arg
                self.send_now((text.encode() + b"\r\n") * count)
            elif op == "longline":
                self.send_now(b"x" * arg + b"\r\n")
            elif op == "sleep":
                time.sleep(arg / 1000.0)
            elif op == "readall":
                self.readall()
        self.flush()
        self.readall()


def make_tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    key = args.key or args.cert + ".key"
    ctx.load_cert_chain(args.cert + ".pem", key)
    if args.tls_min:
        ctx.minimum_version = VERSIONS[args.tls_min]
    if args.tls_max:
        ctx.maximum_version = VERSIONS[args.tls_max]
    low = [v for v in (args.tls_min, args.tls_max) if v in ("1.0", "1.1")]
    if low:
        # OpenSSL 3 refuses TLS < 1.2 at the default security level
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if not args.tls_min:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


def lifetime_over(signum, frame):
    sys.stderr.write("fakeserver: lifetime over, exiting\n")
    os._exit(2)


def main():
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLSv1
    ap = argparse.ArgumentParser(description="scripted IMAP/SMTP test peer")
    ap.add_argument("--script", required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--tls", choices=("implicit", "none"), default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls-min", choices=sorted(VERSIONS))
    ap.add_argument("--tls-max", choices=sorted(VERSIONS))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--transcript")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--lifetime", type=float, default=60.0)
    args = ap.parse_args()

    try:
        steps = parse_script(args.script)
    except (ScriptError, OSError, re.error) as e:
        sys.stderr.write("fakeserver: %s: %s\n" % (args.script, e))
        return 1
    if args.check:
        return 0
    if (args.tls == "implicit" or any(op == "starttls" for _, op, _ in steps)) \
            and not args.cert:
        sys.stderr.write("fakeserver: TLS needs --cert DIR/NAME\n")
        return 1
    if args.host not in ("127.0.0.1", "::1"):
        sys.stderr.write("fakeserver: --host must be 127.0.0.1 or ::1\n")
        return 1

    signal.signal(signal.SIGALRM, lifetime_over)
    signal.setitimer(signal.ITIMER_REAL, args.lifetime)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.bind((args.host, 0))
    lsock.listen(16)
    sys.stdout.write("PORT %d\n" % lsock.getsockname()[1])
    sys.stdout.flush()

    t = Transcript(args.transcript)
    for n in range(args.connections):
        sock, _ = lsock.accept()
        if n > 0:
            t.add("NEXT")
        conn = Conn(sock, args, t)
        try:
            if args.tls == "implicit":
                conn.starttls()
            conn.run(steps)
        except EndConnection:
            pass
        try:
            conn.sock.close()
        except OSError:
            pass
    lsock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
