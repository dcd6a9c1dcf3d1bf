#!/bin/bash
# sendmail_xoauth2_cert.sh: o365-sendmail's client credentials grant with a
# certificate (oauth.certificate_file + oauth.private_key_file) instead of a
# client secret, against tests/fake/fake_token.py (which checks the client
# assertion's header, claims and PS256 signature with openssl(1)) and
# tests/fake/fake_exo_smtp.py.
#   --check: grant, certificate thumbprint (as Entra shows it) and expiry
#   delivery with a client assertion and no client secret on the wire
#   config mistakes named by --check: half a credential, two credentials, a
#     world-readable or not root-owned key, a key of another certificate
#   a certificate Entra does not know (invalid_client AADSTS700027): queue
#     held, one alert naming the certificate and its thumbprint, no bounce,
#     attempts not counted; fixed -> delivered
#   no key bytes, assertion, token in any output or log
# Runs as root (a per-run queue user is created and removed).
set -u
W=${O365_WRAP:-}
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-smxc.XXXXXX)
QU=o365c$$
FAILS=0
TPID= EPID=
cleanup() {
	[ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	[ -n "$EPID" ] && kill "$EPID" 2>/dev/null && wait "$EPID" 2>/dev/null
	userdel "$QU" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T" "$T/pki"; chmod 644 "$T/pki/ca.pem"	# the runner reads it as the queue user
# the app's certificate, as uploaded to Entra ID, and one Entra does not know
for n in app other; do
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/$n.key" -out "$T/$n.pem" -days 365 \
		-subj "/CN=o365-unix $n" 2>/dev/null || { echo "FAIL: openssl req"; exit 1; }
	chmod 600 "$T/$n.key"
done
THUMB=$(openssl x509 -in "$T/app.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
THUMB2=$(openssl x509 -in "$T/other.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
mkdir -p "$T/state" "$T/out"
cat > "$T/state/users.json" <<JSON
{"users": {},
 "clients": {"cert-client": {"public": false, "certificate": "$T/app.pem", "case": "ok"}},
 "mode": "normal", "expires_in": 3599}
JSON
printf '{"relay@contoso.com": {"sendas": [], "apps": ["cert-client"]}}\n' > "$T/sendas.json"

port_of() {	# port_of NAME
	for _ in $(seq 300); do grep -q '^PORT ' "$T/$1.port" 2>/dev/null && break; sleep 0.1; done	# a loaded machine
	sed -n 's/^PORT //p' "$T/$1.port"
}
$PY "$SRC/tests/fake/fake_token.py" --cert "$T/pki/server" --state "$T/state" --lifetime 400 \
	> "$T/tok.port" 2> "$T/tok.err" &
TPID=$!
$PY "$SRC/tests/fake/fake_exo_smtp.py" --cert "$T/pki/server" --tokens "$T/state/tokens.json" \
	--outdir "$T/out" --sendas-map "$T/sendas.json" --log "$T/exo.log" --lifetime 400 \
	> "$T/exo.port" 2> "$T/exo.err" &
EPID=$!
TOK=$(port_of tok)
EXO=$(port_of exo)
[ -n "$TOK" ] && [ -n "$EXO" ] || { echo "FAIL: fakes did not start: $(cat "$T"/*.err)"; exit 1; }

mkconf() {	# mkconf CREDENTIAL-LINES
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $EXO; timeout = 10; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; mechanism = "xoauth2"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
oauth = { authority = "https://127.0.0.1:$TOK"; tenant = "contoso.onmicrosoft.com";
          client_id = "cert-client"; $1 };
CONF
}
CERT='certificate_file = "'$T'/app.pem"; private_key_file = "'$T'/app.key";'
mkconf "$CERT"
C="-C $T/sendmail.conf"
$W $BIN $C --init > "$T/init.out" 2>&1 || { echo "FAIL: --init: $(cat "$T/init.out")"; exit 1; }
Q=$T/spool/queue
F=$T/spool/failed
S=$T/spool/state

msg() {	# msg N
	printf 'From: relay@contoso.com\nTo: bob@example.org\nSubject: m%s\nDate: Thu, 26 Nov 2026 00:00:00 +0000\nMessage-ID: <m%s@example.org>\n\nbody %s\n' "$1" "$1" "$1"
}
queue1() { msg "$1" | $W $BIN $C -odq -i bob@example.org || fail "queueing m$1"; }
runq() { $W $BIN $C -v -q > "$T/run.out" 2>&1; RC=$?; echo "--- run" >> "$T/all.out"; cat "$T/run.out" >> "$T/all.out"; }
check() { $W $BIN $C --check > "$T/check.out" 2>&1; RC=$?; echo "--- check" >> "$T/all.out"; cat "$T/check.out" >> "$T/all.out"; }
nq() { ls "$Q"/*.env 2>/dev/null | wc -l; }
has_eml() {	# has_eml N
	local f
	for f in "$T/out"/*.eml; do
		[ -f "$f" ] || continue
		cmp -s "$f" <(msg "$1" | sed 's/$/\r/') && return 0
	done
	return 1
}
nassert() { grep -c '"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"' "$T/state/requests.log" 2>/dev/null || true; }

# --- --check: the certificate's thumbprint and expiry, never the key
check
[ "$RC" = 0 ] && grep -q 'identity relay@contoso.com, tenant contoso.onmicrosoft.com, client_id cert-client, grant client_credentials' "$T/check.out" &&
	grep -q "oauth2: certificate $T/app.pem, thumbprint $THUMB, subject .*o365-unix app, expires 20[0-9-]* [0-9:]* UTC (ok)" "$T/check.out" &&
	ok "--check: grant, certificate thumbprint and expiry" || fail "--check: rc=$RC $(cat "$T/check.out")"

# --- delivery with a client assertion
queue1 1; queue1 2
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && has_eml 1 && has_eml 2 && ok "certificate: both delivered" ||
	fail "certificate: rc=$RC queue=$(nq) $(tail -n 15 "$T/run.out")"
[ "$(nassert)" = 1 ] && ! grep -q '"client_secret"' "$T/state/requests.log" &&
	ok "certificate: one request with a jwt-bearer assertion, no client secret" ||
	fail "certificate: requests: $(cat "$T/state/requests.log" | cut -c1-300)"
grep -q "oauth2: certificate $T/app.pem, thumbprint $THUMB" "$T/run.out" && ok "-v shows the certificate" ||
	fail "-v: $(head -n 3 "$T/run.out")"

# --- config mistakes that --check names
mkconf 'certificate_file = "'$T'/app.pem";'
check
[ "$RC" != 0 ] && grep -q 'oauth.certificate_file needs oauth.private_key_file' "$T/check.out" &&
	ok "--check: a certificate without its key" || fail "half a credential: rc=$RC $(cat "$T/check.out")"
printf 'x\n' > "$T/client.secret"; chmod 600 "$T/client.secret"
mkconf "$CERT"' client_secret_file = "'$T'/client.secret";'
check
[ "$RC" != 0 ] && grep -q 'needs exactly one credential, not 2: oauth.client_secret_file, oauth.certificate_file (with private_key_file) or oauth.refresh_token_file' "$T/check.out" &&
	ok "--check: a secret and a certificate at once" || fail "two credentials: rc=$RC $(cat "$T/check.out")"
mkconf "$CERT"
chmod 644 "$T/app.key"
check
[ "$RC" != 0 ] && grep -q "$T/app.key" "$T/check.out" && ok "--check: a world-readable key" ||
	fail "world-readable key: rc=$RC $(cat "$T/check.out")"
chmod 600 "$T/app.key"; chown "$QU" "$T/app.key"
check
[ "$RC" != 0 ] && grep -q "$T/app.key.*owned by uid" "$T/check.out" && ok "--check: a key not owned by root" ||
	fail "key owner: rc=$RC $(cat "$T/check.out")"
chown root "$T/app.key"
mkconf 'certificate_file = "'$T'/app.pem"; private_key_file = "'$T'/other.key";'
check
[ "$RC" != 0 ] && grep -q "the key $T/other.key does not belong to the certificate $T/app.pem" "$T/check.out" &&
	ok "--check: a key of another certificate" || fail "mismatched key: rc=$RC $(cat "$T/check.out")"
queue1 3
runq
[ "$RC" != 0 ] && [ "$(grep -c 'queue held:.*does not belong' "$T/run.out")" = 1 ] && [ "$(nq)" = 1 ] &&
	ok "mismatched key: the run holds the queue with one alert" || fail "mismatched key run: rc=$RC $(tail -n 5 "$T/run.out")"

# --- a certificate Entra does not know: invalid_client, held, no bounce
mkconf 'certificate_file = "'$T'/other.pem"; private_key_file = "'$T'/other.key";'
rm -f "$S/access-token"
queue1 4
runq
[ "$RC" != 0 ] && [ "$(grep -c "queue held: Entra ID refused the certificate credential of app cert-client (invalid_client AADSTS700027): upload $T/other.pem (thumbprint $THUMB2)" "$T/run.out")" = 1 ] &&
	ok "unknown certificate: one alert naming the certificate and its thumbprint" || fail "unknown certificate: rc=$RC $(tail -n 8 "$T/run.out")"
[ "$(nq)" = 2 ] && [ -z "$(ls "$F")" ] && ! grep -q '^Attempts: [1-9]' "$Q"/*.env && ! grep -l '^Bounce: 1' "$Q"/*.env > /dev/null 2>&1 &&
	ok "unknown certificate: held, nothing failed, bounced or counted" || fail "unknown certificate: queue=$(nq) $(grep -h Attempts "$Q"/*.env)"
mkconf "$CERT"
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && has_eml 3 && has_eml 4 && ok "certificate fixed: delivered" ||
	fail "fixed: rc=$RC queue=$(nq) $(tail -n 8 "$T/run.out")"

# --- the fake checks what Entra checks: a forged signature, a wrong audience
$PY - "$T" "$TOK" <<'PY' || FAILS=$((FAILS + 1))
import base64, hashlib, json, ssl, subprocess, sys, time, urllib.error, urllib.parse, urllib.request, uuid
T, port = sys.argv[1], sys.argv[2]
url = "https://127.0.0.1:%s/contoso.onmicrosoft.com/oauth2/v2.0/token" % port
b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
der = subprocess.run(["openssl", "x509", "-in", T + "/app.pem", "-outform", "DER"], capture_output=True, check=True).stdout
def post(key, aud):
    now = int(time.time())
    h = b64(json.dumps({"alg": "PS256", "typ": "JWT", "x5t#S256": b64(hashlib.sha256(der).digest())}).encode())
    c = b64(json.dumps({"aud": aud, "iss": "cert-client", "sub": "cert-client", "jti": str(uuid.uuid4()),
                        "nbf": now, "iat": now, "exp": now + 600}).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-sigopt", "rsa_padding_mode:pss",
                          "-sigopt", "rsa_pss_saltlen:32"], input=(h + "." + c).encode(),
                         capture_output=True, check=True).stdout
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "cert-client",
        "scope": "https://outlook.office365.com/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": h + "." + c + "." + b64(sig)}).encode()
    ctx = ssl.create_default_context(cafile=T + "/pki/ca.pem")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, form), context=ctx, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
bad = 0
for name, key, aud, want in (("signed with the certificate's key", "app.key", url, (200, None)),
                             ("forged: signed with another key", "other.key", url, (401, 700027)),
                             ("another audience", "app.key", url + "x", (401, 700027))):
    st, ans = post(T + "/" + key, aud)
    got = (st, ans.get("error_codes", [None])[0])
    print(("ok: " if got == want else "FAIL: ") + "fake token endpoint, assertion %s: %s" % (name, got))
    bad += got != want
sys.exit(1 if bad else 0)
PY

# --- no key, assertion, token or secret anywhere in what we printed or logged
$PY - "$T" <<'PY' || FAILS=$((FAILS + 1))
import glob, json, os, sys
T = sys.argv[1]
needles = []
for n in ("app.key", "other.key"):
    lines = [l for l in open(os.path.join(T, n)).read().splitlines() if not l.startswith("-----")]
    needles += lines                       # every 64-character line of each key
for line in open(os.path.join(T, "state", "requests.log")):
    a = json.loads(line)["form"].get("client_assertion")
    if a:
        needles += [a, a.split(".")[2][:40]]   # the assertion and its signature
needles += list(json.load(open(os.path.join(T, "state", "tokens.json"))).keys())
files = [os.path.join(T, n) for n in ("all.out", "exo.log", "init.out")]
files += glob.glob(os.path.join(T, "spool", "queue", "*")) + glob.glob(os.path.join(T, "out", "*"))
bad = 0
for f in files:
    data = open(f, "rb").read().decode("utf-8", "replace")
    for n in needles:
        if len(n) >= 16 and n in data:
            print("FAIL: secret bytes (%d) in %s" % (len(n), f)); bad += 1
print("ok: searched %d files for %d key lines, assertions and tokens" % (len(files), len(needles)))
sys.exit(1 if bad else 0)
PY

[ $FAILS = 0 ] && echo "sendmail_xoauth2_cert: all passed" || echo "sendmail_xoauth2_cert: $FAILS failed"
[ $FAILS = 0 ]
