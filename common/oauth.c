/*
 * oauth.c: a Microsoft identity platform token client (RFC 6749 token
 * requests, RFC 8628 device authorization) over libcurl, answers parsed with
 * json-c.
 *
 * One easy handle per request and no globals, so two threads may ask for
 * tokens at once.  curl_easy_init() runs curl_global_init() implicitly the
 * first time; that is thread-safe only when libcurl says
 * CURL_VERSION_THREADSAFE (7.84+, Debian 12's 7.88 does), otherwise the first
 * request must not race another thread's first use of libcurl or OpenSSL.
 * We never call curl_global_cleanup(): we may run inside sshd or sudo, and
 * cleaning up would pull OpenSSL out from under the host program.
 *
 * Environment: nothing in the environment may change what we trust or where
 * we connect (we run under su and sudo).  The proxy is set to "" (no
 * http_proxy, https_proxy, ALL_PROXY), the CA store is named explicitly
 * (no SSL_CERT_FILE, SSL_CERT_DIR, CURL_CA_BUNDLE) and TLS key logging that
 * libcurl enables from SSLKEYLOGFILE is switched off on our SSL_CTX.  What we
 * cannot control: OPENSSL_CONF read once by OpenSSL at its initialisation.
 *
 * Secrets: the form body (password, client secret, refresh token) is built
 * in a cleansed buffer handed to curl by pointer (CURLOPT_POSTFIELDS, never
 * COPYPOSTFIELDS), and the answer is received into a fixed cleansed buffer.
 * Limits we cannot cleanse: libcurl copies a small POST body into its own
 * send buffer and reads the answer through its receive buffer, and json-c
 * builds strings in a growing printbuf; those heap blocks are freed without
 * cleansing.  We cleanse every json-c string value before json_object_put()
 * and the tokener's last printbuf before json_tokener_free().
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "o365/buf.h"
#include "o365/limits.h"
#include "o365/log.h"
#include "o365/oauth.h"

#define OAUTH_USER_AGENT	"o365-unix/0.1"
#define OAUTH_JSON_DEPTH	10	/* Entra's answers nest 2 deep; more is hostile */
#define OAUTH_MAX_AUTHORITY	256	/* "https://login.microsoftonline.com" + slack */
#define OAUTH_MAX_ID		128	/* a tenant name or GUID, a client id */
#define OAUTH_MAX_SCOPE		1024	/* a few space-separated scope URIs */
#define OAUTH_MAX_FORM		(4 * O365_MAX_TOKEN)	/* percent-encoding triples a token */
#define OAUTH_MAX_URL		(OAUTH_MAX_AUTHORITY + OAUTH_MAX_ID + 32)
#define OAUTH_MAX_LIFETIME	(366L * 24 * 3600)	/* expires_in sanity bound */
#define OAUTH_MAX_RETRY_AFTER	86400L		/* a Retry-After we believe */
#define OAUTH_DEFAULT_INTERVAL	5		/* RFC 8628 3.2 */

/* What came back over HTTP.  body is a fixed cleansed block: no realloc copies. */
struct oauth_http {
	char	*body;			/* O365_MAX_HTTP_BODY + 1 bytes */
	size_t	 len;
	int	 toolong;
	long	 status;
	long	 retry_after;
	char	 content_type[64];
};

/* ---- validation and form encoding ---- */

/* A tenant or client id goes into the URL path: a strict character set. */
static int
oauth_check_id(const char *s, const char *what, struct o365_error *err)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0)
		return o365_error_set(err, O365_E_CONFIG, "oauth: %s is not set", what);
	if (n > OAUTH_MAX_ID)
		return o365_error_set(err, O365_E_CONFIG, "oauth: %s longer than %d bytes",
		    what, OAUTH_MAX_ID);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isascii(c) || !(isalnum(c) || c == '.' || c == '-' || c == '_'))
			return o365_error_set(err, O365_E_CONFIG,
			    "oauth: %s may hold only letters, digits, '.', '-' and '_'", what);
	}
	return O365_OK;
}

/*
 * The authority: "https://" then a host (and optional port and path), no
 * query, fragment, user info, escapes or white space.  The host part is
 * returned (pointer and length into a) for logs; *len_out drops trailing '/'.
 */
static int
oauth_check_authority(const char *a, size_t *len_out, const char **host_out,
    size_t *hostlen_out, struct o365_error *err)
{
	const char *h;
	size_t i, n;

	if ((n = strlen(a)) > OAUTH_MAX_AUTHORITY)
		return o365_error_set(err, O365_E_CONFIG, "oauth: authority longer than %d bytes",
		    OAUTH_MAX_AUTHORITY);
	if (strncmp(a, "https://", 8) != 0)
		return o365_error_set(err, O365_E_CONFIG, "oauth: authority must start with https://");
	for (i = 8; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '@' || c == '%' ||
		    c == '\\')
			return o365_error_set(err, O365_E_CONFIG,
			    "oauth: authority holds a character not allowed in it");
	}
	while (n > 8 && a[n - 1] == '/')
		n--;
	h = a + 8;
	for (i = 0; h + i < a + n && h[i] != '/'; i++)
		;
	if (i == 0)
		return o365_error_set(err, O365_E_CONFIG, "oauth: authority has no host");
	*len_out = n;
	*host_out = h;
	*hostlen_out = i;
	return O365_OK;
}

/* A scope: printable ASCII words separated by single spaces. */
static int
oauth_check_scope(const char *s, struct o365_error *err)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0)
		return o365_error_set(err, O365_E_INVAL, "oauth: empty scope refused");
	if (n > OAUTH_MAX_SCOPE)
		return o365_error_set(err, O365_E_INVAL, "oauth: scope longer than %d bytes",
		    OAUTH_MAX_SCOPE);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return o365_error_set(err, O365_E_INVAL,
			    "oauth: scope holds a control or non-ASCII byte");
	return O365_OK;
}

/* A token we send back (refresh token) or a device code: bounded, no CR/LF/NUL. */
static int
oauth_check_opaque(const char *p, size_t len, size_t max, const char *what,
    struct o365_error *err)
{
	if (p == NULL || len == 0)
		return o365_error_set(err, O365_E_INVAL, "oauth: empty %s refused", what);
	if (len > max)
		return o365_error_set(err, O365_E_INVAL, "oauth: %s longer than %zu bytes", what, max);
	if (memchr(p, '\r', len) != NULL || memchr(p, '\n', len) != NULL ||
	    memchr(p, '\0', len) != NULL)
		return o365_error_set(err, O365_E_INVAL, "oauth: %s with CR, LF or NUL refused", what);
	return O365_OK;
}

/*
 * application/x-www-form-urlencoded (WHATWG URL 5.2) with RFC 3986 2.3
 * unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" kept as is and every
 * other byte as %XX.  Stricter than needed (a space could be '+'), which
 * every form decoder reads the same way.
 */
static int
oauth_form_add(struct o365_buf *b, const char *name, const char *val, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char *p;
	size_t i, need = 0;
	int r = O365_OK;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)val[i];

		need += (isascii(c) && (isalnum(c) || c == '-' || c == '.' || c == '_' ||
		    c == '~')) ? 1 : 3;
	}
	need += strlen(name) + 1 + (b->len > 0);	/* ["&"] name "=" */
	if ((p = o365_buf_space(b, need, &r)) == NULL)
		return r;
	if (b->len > 0)
		*p++ = '&';
	memcpy(p, name, strlen(name));
	p += strlen(name);
	*p++ = '=';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)val[i];

		if (isascii(c) && (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')) {
			*p++ = c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	b->len += need;
	return O365_OK;
}

static int
oauth_form_str(struct o365_buf *b, const char *name, const char *val)
{
	return oauth_form_add(b, name, val, strlen(val));
}

static const char *
oauth_grant_name(enum o365_oauth_grant g)
{
	switch (g) {
	case O365_GRANT_PASSWORD:		return "password";
	case O365_GRANT_CLIENT_CREDENTIALS:	return "client_credentials";
	case O365_GRANT_REFRESH_TOKEN:		return "refresh_token";
	case O365_GRANT_DEVICE_CODE:		return "urn:ietf:params:oauth:grant-type:device_code";
	default:				return NULL;
	}
}

/* Short names for logs. */
static const char *
oauth_grant_short(enum o365_oauth_grant g)
{
	return g == O365_GRANT_DEVICE_CODE ? "device_code" : oauth_grant_name(g);
}

/* RFC 6749 4.3.2, 4.4.2, 6; RFC 8628 3.4.  The body goes into a secret buffer. */
static int
oauth_build_token_form(const struct o365_oauth_opts *o, const struct o365_oauth_request *rq,
    struct o365_buf *form, struct o365_error *err)
{
	const char *gt = oauth_grant_name(rq->grant);
	int r;

	if (gt == NULL)
		return o365_error_set(err, O365_E_INVAL, "oauth: unknown grant type %d",
		    (int)rq->grant);
	if ((r = oauth_check_scope(rq->scope, err)) != O365_OK)
		return r;
	switch (rq->grant) {
	case O365_GRANT_PASSWORD:
		if (rq->username == NULL || rq->password == NULL)
			return o365_error_set(err, O365_E_INVAL,
			    "oauth: password grant needs a user name and a password");
		if ((r = o365_credential_check(rq->username, strlen(rq->username), "user name",
		    err)) != O365_OK ||
		    (r = o365_credential_check(rq->password->data, rq->password->len, "password",
		    err)) != O365_OK)
			return r;
		break;
	case O365_GRANT_CLIENT_CREDENTIALS:
		if ((rq->client_secret == NULL) == (rq->client_assertion == NULL))
			return o365_error_set(err, O365_E_INVAL, "oauth: client credentials grant "
			    "needs a client secret or a client assertion (one, not both)");
		break;
	case O365_GRANT_REFRESH_TOKEN:
		if (rq->refresh_token == NULL)
			return o365_error_set(err, O365_E_INVAL,
			    "oauth: refresh token grant needs a refresh token");
		if ((r = oauth_check_opaque(rq->refresh_token->data, rq->refresh_token->len,
		    O365_MAX_TOKEN, "refresh token", err)) != O365_OK)
			return r;
		break;
	case O365_GRANT_DEVICE_CODE:
		if (rq->device_code == NULL)
			return o365_error_set(err, O365_E_INVAL,
			    "oauth: device code grant needs a device code");
		if ((r = oauth_check_opaque(rq->device_code, strlen(rq->device_code),
		    sizeof(((struct o365_devicecode *)0)->device_code) - 1, "device code",
		    err)) != O365_OK)
			return r;
		break;
	}
	if (rq->client_secret != NULL &&
	    (r = o365_credential_check(rq->client_secret->data, rq->client_secret->len,
	    "client secret", err)) != O365_OK)
		return r;
	if (rq->client_assertion != NULL &&
	    (r = oauth_check_opaque(rq->client_assertion->data, rq->client_assertion->len,
	    O365_MAX_TOKEN, "client assertion", err)) != O365_OK)
		return r;

	if ((r = oauth_form_str(form, "grant_type", gt)) != O365_OK ||
	    (r = oauth_form_str(form, "client_id", o->client_id)) != O365_OK ||
	    (r = oauth_form_str(form, "scope", rq->scope)) != O365_OK)
		goto out;
	switch (rq->grant) {
	case O365_GRANT_PASSWORD:
		if ((r = oauth_form_str(form, "username", rq->username)) != O365_OK ||
		    (r = oauth_form_add(form, "password", rq->password->data,
		    rq->password->len)) != O365_OK)
			goto out;
		break;
	case O365_GRANT_REFRESH_TOKEN:
		if ((r = oauth_form_add(form, "refresh_token", rq->refresh_token->data,
		    rq->refresh_token->len)) != O365_OK)
			goto out;
		break;
	case O365_GRANT_DEVICE_CODE:
		if ((r = oauth_form_str(form, "device_code", rq->device_code)) != O365_OK)
			goto out;
		break;
	case O365_GRANT_CLIENT_CREDENTIALS:
		break;
	}
	if (rq->client_secret != NULL &&
	    (r = oauth_form_add(form, "client_secret", rq->client_secret->data,
	    rq->client_secret->len)) != O365_OK)
		goto out;
	/* RFC 7523 2.2, RFC 7521 4.2 */
	if (rq->client_assertion != NULL &&
	    ((r = oauth_form_str(form, "client_assertion_type",
	    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")) != O365_OK ||
	    (r = oauth_form_add(form, "client_assertion", rq->client_assertion->data,
	    rq->client_assertion->len)) != O365_OK))
		goto out;
	r = O365_OK;
out:
	if (r == O365_E_TOOLONG)
		r = o365_error_set(err, O365_E_INVAL, "oauth: request larger than %d bytes",
		    OAUTH_MAX_FORM);
	else if (r != O365_OK && r != O365_E_INVAL)
		r = o365_error_set(err, r, "oauth: out of memory building the request");
	return r;
}

/* ---- HTTP over libcurl ---- */

static size_t
oauth_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct oauth_http *h = ud;
	size_t n = size * nmemb;

	if (n > O365_MAX_HTTP_BODY - h->len) {
		h->toolong = 1;
		return 0;		/* CURLE_WRITE_ERROR ends the transfer */
	}
	memcpy(h->body + h->len, ptr, n);
	h->len += n;
	return n;
}

/* Case-insensitive "Name:" prefix; returns the trimmed value and its length. */
static const char *
oauth_header_value(const char *line, size_t n, const char *name, size_t *vlen)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return NULL;
	line += k + 1;
	n -= k + 1;
	while (n > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' ' ||
	    line[n - 1] == '\t'))
		n--;
	*vlen = n;
	return line;
}

/* RFC 9110 10.2.3: Retry-After = HTTP-date / delay-seconds.  Only seconds are used. */
static size_t
oauth_header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct oauth_http *h = ud;
	size_t n = size * nmemb, vlen;
	const char *v;
	char num[16];
	char *end;
	long secs;

	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue): forget the last one's headers */
		h->retry_after = 0;
		h->content_type[0] = '\0';
		return n;
	}
	if ((v = oauth_header_value(ptr, n, "Retry-After", &vlen)) != NULL) {
		if (vlen > 0 && vlen < sizeof(num)) {
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			errno = 0;
			secs = strtol(num, &end, 10);
			if (errno == 0 && *end == '\0' && isdigit((unsigned char)num[0]) && secs >= 0)
				h->retry_after = secs > OAUTH_MAX_RETRY_AFTER ?
				    OAUTH_MAX_RETRY_AFTER : secs;
		}
	} else if ((v = oauth_header_value(ptr, n, "Content-Type", &vlen)) != NULL) {
		o365_sanitize(h->content_type, sizeof(h->content_type), v, vlen);
	}
	return n;
}

/*
 * libcurl opens SSLKEYLOGFILE at its initialisation and, when set, installs a
 * key log callback on every SSL_CTX.  Under sudo that would let a caller's
 * environment write our session keys to a file: take the callback off again.
 */
static CURLcode
oauth_sslctx_cb(CURL *curl, void *sslctx, void *ud)
{
	SSL_CTX_set_keylog_callback((SSL_CTX *)sslctx, NULL);
	return CURLE_OK;
}

/*
 * libcurl (7.88) opens its connection with a plain socket(2): no
 * close-on-exec.  A host program that forks and execs in another thread
 * while we wait for the token endpoint (a display manager, polkit) would
 * hand our connection to the child.  Open it with SOCK_CLOEXEC instead.
 */
static curl_socket_t
oauth_opensocket_cb(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)ud;
	(void)purpose;
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int
oauth_is_file(const char *path)
{
	struct stat st;

	return path != NULL && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int
oauth_is_dir(const char *path)
{
	struct stat st;

	return path != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
oauth_map_curl(CURLcode cc, const struct oauth_http *h, const char *host, const char *ebuf,
    struct o365_error *err)
{
	const char *why = ebuf[0] != '\0' ? ebuf : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_OK:
		return O365_OK;
	case CURLE_WRITE_ERROR:
		if (h->toolong)
			return o365_error_set(err, O365_E_TOOLONG,
			    "oauth: %s: answer larger than %d bytes", host, O365_MAX_HTTP_BODY);
		return o365_error_set(err, O365_E_NET, "oauth: %s: %s", host, why);
	case CURLE_OPERATION_TIMEDOUT:
		return o365_error_set(err, O365_E_TIMEOUT, "oauth: %s: timed out: %s", host, why);
	case CURLE_OUT_OF_MEMORY:
		return o365_error_set(err, O365_E_NOMEM, "oauth: %s: out of memory", host);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return o365_error_set(err, O365_E_CONFIG, "oauth: %s: %s", host, why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return o365_error_set(err, O365_E_TLS, "oauth: %s: %s", host, why);
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_TOO_MANY_REDIRECTS:
		return o365_error_set(err, O365_E_PROTO, "oauth: %s: %s", host, why);
	case CURLE_PARTIAL_FILE:
		/*
		 * The connection closed before Content-Length bytes came: the
		 * answer is cut, which a retry may fix.  NET, not PROTO.
		 */
		return o365_error_set(err, O365_E_NET, "oauth: %s: answer cut short: %s",
		    host, why);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	default:
		return o365_error_set(err, O365_E_NET, "oauth: %s: %s", host, why);
	}
}

/*
 * POST form to <authority>/<tenant>/oauth2/v2.0/<endpoint>.  Fills h with
 * the status, headers of interest and the body.  Errors: TIMEOUT, NET, TLS,
 * TOOLONG, CONFIG, NOMEM.  An HTTP error status is not an error here.
 */
static int
oauth_post(const struct o365_oauth_opts *o, const char *authority, size_t alen,
    const char *host, const char *endpoint, const struct o365_buf *form,
    const struct o365_deadline *dl, struct oauth_http *h, struct o365_error *err)
{
	char url[OAUTH_MAX_URL], ebuf[CURL_ERROR_SIZE];
	const struct o365_tls_opts *tls = o->tls;
	const char *cafile = NULL, *capath = NULL;
	struct curl_slist *hdrs = NULL, *nh;
	long sslver = CURL_SSLVERSION_TLSv1_2;
	CURLcode cc = CURLE_OK;
	CURL *c = NULL;
	int n, left, r;

	n = snprintf(url, sizeof(url), "%.*s/%s/oauth2/v2.0/%s", (int)alen, authority,
	    o->tenant, endpoint);
	if (n < 0 || (size_t)n >= sizeof(url))
		return o365_error_set(err, O365_E_CONFIG, "oauth: token endpoint URL too long");
	if (tls != NULL && tls->min_version != 0 && tls->min_version != TLS1_2_VERSION) {
		if (tls->min_version != TLS1_3_VERSION)
			return o365_error_set(err, O365_E_CONFIG,
			    "oauth: unsupported minimum TLS version 0x%x", tls->min_version);
		sslver = CURL_SSLVERSION_TLSv1_3;
	}
	if (tls != NULL && (tls->ca_file != NULL || tls->ca_dir != NULL)) {
		cafile = tls->ca_file;
		capath = tls->ca_dir;
	} else {
		/*
		 * The system store as OpenSSL was built to find it, named
		 * explicitly so that SSL_CERT_FILE, SSL_CERT_DIR or
		 * CURL_CA_BUNDLE in the environment change nothing.  A missing
		 * default file or directory is left out (curl would refuse it).
		 */
		if (oauth_is_file(X509_get_default_cert_file()))
			cafile = X509_get_default_cert_file();
		if (oauth_is_dir(X509_get_default_cert_dir()))
			capath = X509_get_default_cert_dir();
	}
	if ((left = o365_deadline_left_ms(dl)) == 0)
		return o365_error_set(err, O365_E_TIMEOUT, "oauth: %s: no time left", host);

	if ((c = curl_easy_init()) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "oauth: curl_easy_init failed");
	ebuf[0] = '\0';
	if ((nh = curl_slist_append(hdrs, "Accept: application/json")) == NULL)
		goto nomem;
	hdrs = nh;
	if ((nh = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded")) == NULL)
		goto nomem;
	hdrs = nh;
	/* no "Expect: 100-continue" round trip for a large body */
	if ((nh = curl_slist_append(hdrs, "Expect:")) == NULL)
		goto nomem;
	hdrs = nh;

	/*
	 * CURLOPT_CAINFO/CAPATH set to NULL switch off libcurl's built-in
	 * defaults, so only what we name is trusted.  CURLOPT_TIMEOUT_MS
	 * bounds the whole transfer including name resolution (the threaded
	 * resolver honours it; with NOSIGNAL a synchronous resolver could
	 * not be interrupted).
	 */
	if ((cc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_URL, url)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https")) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https")) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_PROXY, "")) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_SSLVERSION, sslver)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_CAINFO, cafile)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_CAPATH, capath)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, oauth_sslctx_cb)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, oauth_opensocket_cb)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)left)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, oauth_write_cb)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_WRITEDATA, h)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, oauth_header_cb)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_HEADERDATA, h)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_USERAGENT, OAUTH_USER_AGENT)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_POST, 1L)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)form->data)) != CURLE_OK ||
	    (cc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)form->len)) != CURLE_OK) {
		r = o365_error_set(err, cc == CURLE_OUT_OF_MEMORY ? O365_E_NOMEM : O365_E_CONFIG,
		    "oauth: libcurl refused an option: %s", curl_easy_strerror(cc));
		goto out;
	}
	cc = curl_easy_perform(c);
	if ((r = oauth_map_curl(cc, h, host, ebuf, err)) != O365_OK)
		goto out;
	if ((cc = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status)) != CURLE_OK) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: %s: no HTTP status", host);
		goto out;
	}
	r = O365_OK;
	goto out;
nomem:
	r = o365_error_set(err, O365_E_NOMEM, "oauth: out of memory");
out:
	if (c != NULL)
		curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return r;
}

/* ---- JSON answers ---- */

/* Cleanse every string value in the tree (tokens live there).  Depth is bounded by the parser. */
static void
oauth_json_cleanse(struct json_object *j)
{
	size_t i, n;

	switch (json_object_get_type(j)) {
	case json_type_string:
		o365_cleanse((char *)(uintptr_t)json_object_get_string(j),
		    (size_t)json_object_get_string_len(j));
		break;
	case json_type_object: {
		json_object_object_foreach(j, key, val) {
			(void)key;
			oauth_json_cleanse(val);
		}
		break;
	}
	case json_type_array:
		n = json_object_array_length(j);
		for (i = 0; i < n; i++)
			oauth_json_cleanse(json_object_array_get_idx(j, i));
		break;
	default:
		break;
	}
}

static void
oauth_json_free(struct json_object **jp)
{
	if (*jp == NULL)
		return;
	oauth_json_cleanse(*jp);
	json_object_put(*jp);
	*jp = NULL;
}

/*
 * RFC 8259 JSON text, exactly len bytes, one object at the top, nesting at
 * most OAUTH_JSON_DEPTH, valid UTF-8, no NUL.  O365_E_PROTO otherwise.
 */
static int
oauth_json_parse(const char *body, size_t len, struct json_object **out, struct o365_error *err)
{
	struct json_tokener *tk;
	struct json_object *j = NULL;
	enum json_tokener_error je;
	size_t end;
	int r;

	*out = NULL;
	if (len > O365_MAX_HTTP_BODY)
		return o365_error_set(err, O365_E_TOOLONG, "oauth: answer larger than %d bytes",
		    O365_MAX_HTTP_BODY);
	if (len == 0 || body == NULL)
		return o365_error_set(err, O365_E_PROTO, "oauth: empty answer");
	if (memchr(body, '\0', len) != NULL)
		return o365_error_set(err, O365_E_PROTO, "oauth: answer holds a NUL byte");
	/* json-c's max_depth counts from 0: depth N refuses nesting of N levels */
	if ((tk = json_tokener_new_ex(OAUTH_JSON_DEPTH + 1)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "oauth: out of memory");
	json_tokener_set_flags(tk, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
	    JSON_TOKENER_VALIDATE_UTF8);
	j = json_tokener_parse_ex(tk, body, (int)len);
	je = json_tokener_get_error(tk);
	end = json_tokener_get_parse_end(tk);
	if (j == NULL || je != json_tokener_success) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: answer is not JSON: %s",
		    je == json_tokener_continue ? "truncated" : json_tokener_error_desc(je));
		goto out;
	}
	/* only white space may follow the value */
	for (; end < len; end++)
		if (body[end] != ' ' && body[end] != '\t' && body[end] != '\r' && body[end] != '\n') {
			r = o365_error_set(err, O365_E_PROTO, "oauth: text after the JSON answer");
			goto out;
		}
	if (!json_object_is_type(j, json_type_object)) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: answer is not a JSON object");
		goto out;
	}
	*out = j;
	j = NULL;
	r = O365_OK;
out:
	oauth_json_free(&j);
	/*
	 * The tokener built the strings in its printbuf: cleanse what is
	 * left there (json-c 0.16 still exposes the field; earlier buffers
	 * from its growth are gone without cleansing).
	 */
	if (tk->pb != NULL && tk->pb->buf != NULL && tk->pb->size > 0)
		o365_cleanse(tk->pb->buf, (size_t)tk->pb->size);
	json_tokener_free(tk);
	return r;
}

/* The string member name, or NULL when absent.  *bad set when present with another type. */
static const char *
oauth_json_str(struct json_object *j, const char *name, size_t *len_out, int *bad)
{
	struct json_object *v;

	if (!json_object_object_get_ex(j, name, &v) || v == NULL)
		return NULL;
	if (!json_object_is_type(v, json_type_string)) {
		*bad = 1;
		return NULL;
	}
	if (len_out != NULL)
		*len_out = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

/*
 * A count of seconds: a JSON integer or a string of decimal digits (v1
 * endpoints and some proxies send "3599").  1: set, 0: absent, -1: malformed.
 */
static int
oauth_json_secs(struct json_object *j, const char *name, long min, long max, long *out)
{
	struct json_object *v;
	const char *s;
	char *end;
	int64_t i;
	long l;

	if (!json_object_object_get_ex(j, name, &v) || v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		i = json_object_get_int64(v);
		if (errno != 0 || i < min || i > max)
			return -1;
		*out = (long)i;
		return 1;
	}
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (!isdigit((unsigned char)s[0]) || json_object_get_string_len(v) > 12)
		return -1;
	errno = 0;
	l = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || l < min || l > max)
		return -1;
	*out = l;
	return 1;
}

/* A token we will put into an XOAUTH2 blob: 1..O365_MAX_TOKEN visible ASCII bytes. */
static int
oauth_token_ok(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > O365_MAX_TOKEN)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* "AADSTS50126: ..." -> 50126 */
static long
oauth_aadsts_from_text(const char *s)
{
	const char *p;
	char *end;
	long n;

	if (s == NULL || (p = strstr(s, "AADSTS")) == NULL || !isdigit((unsigned char)p[6]))
		return 0;
	errno = 0;
	n = strtol(p + 6, &end, 10);
	if (errno != 0 || n <= 0 || end - (p + 6) > 9)
		return 0;
	return n;
}

/*
 * An error answer (RFC 6749 5.2 plus Entra's fields).  O365_OK when it has
 * an "error" string (oerr filled), O365_E_PROTO otherwise.
 */
static int
oauth_parse_error(struct json_object *j, struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct json_object *codes, *first;
	const char *s;
	size_t len;
	int bad = 0;

	if ((s = oauth_json_str(j, "error", &len, &bad)) == NULL || len == 0)
		return o365_error_set(err, O365_E_PROTO,
		    "oauth: HTTP %ld answer without an \"error\" string", oerr->http_status);
	o365_sanitize(oerr->error, sizeof(oerr->error), s, len);
	if ((s = oauth_json_str(j, "error_description", &len, &bad)) != NULL)
		o365_sanitize(oerr->description, sizeof(oerr->description), s, len);
	if ((s = oauth_json_str(j, "trace_id", &len, &bad)) != NULL)
		o365_sanitize(oerr->trace_id, sizeof(oerr->trace_id), s, len);
	if ((s = oauth_json_str(j, "correlation_id", &len, &bad)) != NULL)
		o365_sanitize(oerr->correlation_id, sizeof(oerr->correlation_id), s, len);
	if (json_object_object_get_ex(j, "error_codes", &codes) &&
	    json_object_is_type(codes, json_type_array) && json_object_array_length(codes) > 0 &&
	    (first = json_object_array_get_idx(codes, 0)) != NULL &&
	    json_object_is_type(first, json_type_int)) {
		int64_t c = json_object_get_int64(first);

		if (c > 0 && c < 1000000000)
			oerr->aadsts = (long)c;
	}
	if (oerr->aadsts == 0)
		oerr->aadsts = oauth_aadsts_from_text(oerr->description);
	return O365_OK;
}

/*
 * The shared part of both parsers: status and error answers.  Returns
 * O365_OK with *j_out for a 200 object, or the final code (oerr/err filled).
 */
static int
oauth_parse_common(long http_status, const char *body, size_t len,
    struct json_object **j_out, struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct json_object *j = NULL;
	struct o365_error ignored;
	int r;

	*j_out = NULL;
	o365_error_clear(err);
	memset(oerr, 0, sizeof(*oerr));
	oerr->http_status = http_status;
	if (http_status == 429 || (http_status >= 500 && http_status <= 599)) {
		/* best effort: Entra sends its usual error object with a 5xx */
		if (oauth_json_parse(body, len, &j, &ignored) == O365_OK) {
			(void)oauth_parse_error(j, oerr, &ignored);
			oauth_json_free(&j);
		}
		return o365_error_set(err, O365_E_TEMP, "oauth: token endpoint busy: HTTP %ld%s%s",
		    http_status, oerr->error[0] != '\0' ? " " : "", oerr->error);
	}
	if (http_status != 200 && http_status != 400 && http_status != 401)
		return o365_error_set(err, O365_E_PROTO, "oauth: unexpected HTTP status %ld",
		    http_status);
	if ((r = oauth_json_parse(body, len, &j, err)) != O365_OK)
		return r;
	if (http_status != 200) {
		if ((r = oauth_parse_error(j, oerr, err)) == O365_OK) {
			if (oerr->aadsts != 0)
				r = o365_error_set(err, O365_E_AUTH, "oauth: %s (AADSTS%ld)",
				    oerr->error, oerr->aadsts);
			else
				r = o365_error_set(err, O365_E_AUTH, "oauth: %s", oerr->error);
		}
		oauth_json_free(&j);
		return r;
	}
	*j_out = j;
	return O365_OK;
}

int
o365_oauth_parse_token(long http_status, const char *body, size_t len,
    struct o365_token **tok_out, struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_oauth_error oerr_local;
	struct o365_token *tok = NULL;
	struct json_object *j = NULL;
	const char *s;
	size_t slen;
	int bad = 0, r;

	*tok_out = NULL;
	if (oerr == NULL)
		oerr = &oerr_local;
	if ((r = oauth_parse_common(http_status, body, len, &j, oerr, err)) != O365_OK)
		return r;
	if ((tok = calloc(1, sizeof(*tok))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "oauth: out of memory");
		goto out;
	}
	/* RFC 6749 5.1: access_token, token_type, expires_in (Entra always sends it) */
	s = oauth_json_str(j, "access_token", &slen, &bad);
	if (!oauth_token_ok(s, slen)) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: answer without a usable access_token");
		goto out;
	}
	if ((r = o365_secret_dup(s, slen, &tok->access_token)) != O365_OK) {
		r = o365_error_set(err, r, "oauth: out of memory");
		goto out;
	}
	s = oauth_json_str(j, "token_type", &slen, &bad);
	if (s == NULL || strcasecmp(s, "Bearer") != 0) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: token_type is not Bearer");
		goto out;
	}
	(void)snprintf(tok->token_type, sizeof(tok->token_type), "Bearer");
	if (oauth_json_secs(j, "expires_in", 1, OAUTH_MAX_LIFETIME, &tok->expires_in) != 1) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: missing or bad expires_in");
		goto out;
	}
	tok->expires_at = time(NULL) + (time_t)tok->expires_in;
	if ((s = oauth_json_str(j, "scope", &slen, &bad)) != NULL)
		o365_sanitize(tok->scope, sizeof(tok->scope), s, slen);
	if ((s = oauth_json_str(j, "refresh_token", &slen, &bad)) != NULL) {
		if (!oauth_token_ok(s, slen)) {
			r = o365_error_set(err, O365_E_PROTO, "oauth: unusable refresh_token");
			goto out;
		}
		if ((r = o365_secret_dup(s, slen, &tok->refresh_token)) != O365_OK) {
			r = o365_error_set(err, r, "oauth: out of memory");
			goto out;
		}
	}
	if (bad) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: a token answer field has the wrong type");
		goto out;
	}
	*tok_out = tok;
	tok = NULL;
	r = O365_OK;
out:
	o365_token_free(&tok);
	oauth_json_free(&j);
	return r;
}

/* Copy a string member into a fixed field: required ones must fit and be printable. */
static int
oauth_copy_field(struct json_object *j, const char *name, char *dst, size_t dstsz,
    int required, struct o365_error *err)
{
	const char *s;
	size_t len, i;
	int bad = 0;

	dst[0] = '\0';
	if ((s = oauth_json_str(j, name, &len, &bad)) == NULL) {
		if (bad || required)
			return o365_error_set(err, O365_E_PROTO, "oauth: device code answer: %s %s",
			    bad ? "wrong type for" : "missing", name);
		return O365_OK;
	}
	if (required && (len == 0 || len >= dstsz))
		return o365_error_set(err, O365_E_PROTO, "oauth: device code answer: %s %s",
		    len == 0 ? "empty" : "too long", name);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			break;
	if (i < len && required)
		return o365_error_set(err, O365_E_PROTO,
		    "oauth: device code answer: %s holds control or non-ASCII bytes", name);
	/* message may carry any text (and be cut): it is shown to a user, so sanitise it */
	o365_sanitize(dst, dstsz, s, len);
	return O365_OK;
}

int
o365_oauth_parse_devicecode(long http_status, const char *body, size_t len,
    struct o365_devicecode *out, struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_oauth_error oerr_local;
	struct json_object *j = NULL;
	int r, k;

	memset(out, 0, sizeof(*out));
	if (oerr == NULL)
		oerr = &oerr_local;
	if ((r = oauth_parse_common(http_status, body, len, &j, oerr, err)) != O365_OK)
		return r;
	/* RFC 8628 3.2 */
	if ((r = oauth_copy_field(j, "device_code", out->device_code, sizeof(out->device_code), 1,
	    err)) != O365_OK ||
	    (r = oauth_copy_field(j, "user_code", out->user_code, sizeof(out->user_code), 1,
	    err)) != O365_OK ||
	    (r = oauth_copy_field(j, "verification_uri", out->verification_uri,
	    sizeof(out->verification_uri), 1, err)) != O365_OK ||
	    (r = oauth_copy_field(j, "message", out->message, sizeof(out->message), 0,
	    err)) != O365_OK)
		goto out;
	if (oauth_json_secs(j, "expires_in", 1, OAUTH_MAX_LIFETIME, &out->expires_in) != 1) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: device code answer: bad expires_in");
		goto out;
	}
	out->interval = OAUTH_DEFAULT_INTERVAL;
	if ((k = oauth_json_secs(j, "interval", 1, 3600, &out->interval)) < 0) {
		r = o365_error_set(err, O365_E_PROTO, "oauth: device code answer: bad interval");
		goto out;
	}
	r = O365_OK;
out:
	if (r != O365_OK) {
		o365_cleanse(out->device_code, sizeof(out->device_code));
		memset(out, 0, sizeof(*out));
	}
	oauth_json_free(&j);
	return r;
}

void
o365_token_free(struct o365_token **tp)
{
	struct o365_token *t;

	if (tp == NULL || (t = *tp) == NULL)
		return;
	o365_secret_free(&t->access_token);
	o365_secret_free(&t->refresh_token);
	free(t);
	*tp = NULL;
}

/* ---- the two requests ---- */

/* Check o; *auth, *alen: the authority to use, host: its host, printable. */
static int
oauth_check_opts(const struct o365_oauth_opts *o, const char **auth, size_t *alen,
    char *host, size_t hostsz, struct o365_error *err)
{
	const char *hostp = NULL;
	size_t hlen = 0;
	int r;

	if (o == NULL)
		return o365_error_set(err, O365_E_CONFIG, "oauth: no options");
	*auth = o->authority != NULL ? o->authority : O365_OAUTH_AUTHORITY;
	if ((r = oauth_check_authority(*auth, alen, &hostp, &hlen, err)) != O365_OK ||
	    (r = oauth_check_id(o->tenant, "tenant", err)) != O365_OK ||
	    (r = oauth_check_id(o->client_id, "client_id", err)) != O365_OK)
		return r;
	o365_sanitize(host, hostsz, hostp, hlen);
	return O365_OK;
}

/* The one log line per request: never a secret, never the body. */
static void
oauth_log_result(const struct o365_log *lg, const char *host, const char *endpoint,
    const char *grant, long status, int r, const struct o365_oauth_error *oerr,
    const struct timespec *t0)
{
	o365_log(lg, LOG_DEBUG,
	    "oauth: host=%s endpoint=%s grant=%s status=%ld result=%s%s%s aadsts=%ld "
	    "retry_after=%ld ms=%ld",
	    host, endpoint, grant, status, o365_err_name(r),
	    oerr->error[0] != '\0' ? " error=" : "", oerr->error,
	    oerr->aadsts, oerr->retry_after, o365_elapsed_ms(t0));
}

/*
 * After parsing answer h (result r): keep its Retry-After in oerr.  An answer
 * that is not JSON at all is often a captive portal or a proxy's login page:
 * say what it was instead of a JSON parser's complaint.
 */
static void
oauth_after_parse(int r, const char *host, const struct oauth_http *h,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	const char *ct = h->content_type;

	oerr->retry_after = h->retry_after;
	if (r != O365_E_PROTO || strncasecmp(ct, "application/json", 16) == 0 ||
	    (ct[0] == '\0' && h->len > 0 && (h->body[0] == '{' || h->body[0] == '[')))
		return;
	(void)o365_error_set(err, O365_E_PROTO, "oauth: %s: HTTP %ld answer is %s, not JSON",
	    host, h->status, ct[0] != '\0' ? ct : "not typed");
}

static int
oauth_http_init(struct oauth_http *h, struct o365_error *err)
{
	memset(h, 0, sizeof(*h));
	if ((h->body = malloc(O365_MAX_HTTP_BODY + 1)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "oauth: out of memory");
	return O365_OK;
}

static void
oauth_http_free(struct oauth_http *h)
{
	if (h->body != NULL) {
		o365_cleanse(h->body, O365_MAX_HTTP_BODY + 1);
		free(h->body);
	}
	h->body = NULL;
}

/* POST form to endpoint into h (set up here); the form, which may hold a
 * secret, is freed as soon as it is sent. */
static int
oauth_send(const struct o365_oauth_opts *o, const char *auth, size_t alen, const char *host,
    const char *endpoint, struct o365_buf *form, const struct o365_deadline *dl,
    struct oauth_http *h, struct o365_error *err)
{
	int r;

	if ((r = oauth_http_init(h, err)) != O365_OK)
		return r;
	r = oauth_post(o, auth, alen, host, endpoint, form, dl, h, err);
	o365_buf_free(form);
	return r;
}

int
o365_oauth_endpoint_url(const struct o365_oauth_opts *o, const char *endpoint, char *dst,
    size_t size, struct o365_error *err)
{
	const char *auth;
	char host[OAUTH_MAX_AUTHORITY];
	size_t alen;
	int n, r;

	o365_error_clear(err);
	if ((r = oauth_check_opts(o, &auth, &alen, host, sizeof(host), err)) != O365_OK)
		return r;
	n = snprintf(dst, size, "%.*s/%s/oauth2/v2.0/%s", (int)alen, auth, o->tenant, endpoint);
	if (n < 0 || (size_t)n >= size)
		return o365_error_set(err, O365_E_CONFIG, "oauth: token endpoint URL too long");
	return O365_OK;
}

int
o365_oauth_token(const struct o365_oauth_opts *o, const struct o365_oauth_request *rq,
    const struct o365_deadline *dl, const struct o365_log *lg,
    struct o365_token **tok_out, struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_oauth_error oerr_local;
	struct oauth_http h = { 0 };
	struct o365_buf form;
	const char *auth;
	char host[OAUTH_MAX_AUTHORITY];
	struct timespec t0;
	size_t alen;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	o365_error_clear(err);
	*tok_out = NULL;
	if (oerr == NULL)
		oerr = &oerr_local;
	memset(oerr, 0, sizeof(*oerr));
	o365_buf_init(&form, OAUTH_MAX_FORM);
	form.secret = 1;
	if (rq == NULL || dl == NULL) {
		r = o365_error_set(err, O365_E_INVAL, "oauth: no request or deadline");
		goto out;
	}
	if ((r = oauth_check_opts(o, &auth, &alen, host, sizeof(host), err)) != O365_OK)
		goto out;
	if ((r = oauth_build_token_form(o, rq, &form, err)) != O365_OK)
		goto out;
	/* the body holds the password or a refresh token: gone as soon as it is sent */
	r = oauth_send(o, auth, alen, host, "token", &form, dl, &h, err);
	if (r == O365_OK) {
		r = o365_oauth_parse_token(h.status, h.body, h.len, tok_out, oerr, err);
		oauth_after_parse(r, host, &h, oerr, err);
	}
	oauth_log_result(lg, host, "token", oauth_grant_short(rq->grant), h.status, r, oerr, &t0);
out:
	o365_buf_free(&form);
	oauth_http_free(&h);
	return r;
}

int
o365_oauth_devicecode(const struct o365_oauth_opts *o, const char *scope,
    const struct o365_deadline *dl, const struct o365_log *lg,
    struct o365_devicecode *out, struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_oauth_error oerr_local;
	struct oauth_http h = { 0 };
	struct o365_buf form;
	const char *auth;
	char host[OAUTH_MAX_AUTHORITY];
	struct timespec t0;
	size_t alen;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	o365_error_clear(err);
	memset(out, 0, sizeof(*out));
	if (oerr == NULL)
		oerr = &oerr_local;
	memset(oerr, 0, sizeof(*oerr));
	o365_buf_init(&form, OAUTH_MAX_FORM);
	if (dl == NULL) {
		r = o365_error_set(err, O365_E_INVAL, "oauth: no deadline");
		goto out;
	}
	if ((r = oauth_check_opts(o, &auth, &alen, host, sizeof(host), err)) != O365_OK)
		goto out;
	if ((r = oauth_check_scope(scope, err)) != O365_OK)
		goto out;
	/* RFC 8628 3.1 */
	if ((r = oauth_form_str(&form, "client_id", o->client_id)) != O365_OK ||
	    (r = oauth_form_str(&form, "scope", scope)) != O365_OK) {
		r = o365_error_set(err, r == O365_E_TOOLONG ? O365_E_INVAL : r,
		    "oauth: cannot build the device code request");
		goto out;
	}
	r = oauth_send(o, auth, alen, host, "devicecode", &form, dl, &h, err);
	if (r == O365_OK) {
		r = o365_oauth_parse_devicecode(h.status, h.body, h.len, out, oerr, err);
		oauth_after_parse(r, host, &h, oerr, err);
	}
	oauth_log_result(lg, host, "devicecode", "-", h.status, r, oerr, &t0);
out:
	o365_buf_free(&form);
	oauth_http_free(&h);
	return r;
}
