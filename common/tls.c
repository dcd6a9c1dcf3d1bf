/*
 * tls.c: OpenSSL client side of a connection.
 *
 * Everything is per connection (SSL_CTX, BIO_METHOD): no globals, no
 * OpenSSL init or cleanup calls, and the thread's error queue is left empty,
 * because this code runs inside sshd, sudo and su.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conn_int.h"
#include "o365/tls.h"

/*
 * A fixed BIO type: BIO_get_new_index() hands out a new number per call and
 * runs out in a long-lived process.  The type only matters to BIO_find_type.
 */
#define TLS_BIO_TYPE	(0x7e | BIO_TYPE_SOURCE_SINK)

int
o365_tls_version_parse(const char *s, int *out)
{
	if (s != NULL && strcmp(s, "1.2") == 0) {
		*out = TLS1_2_VERSION;
		return O365_OK;
	}
	if (s != NULL && strcmp(s, "1.3") == 0) {
		*out = TLS1_3_VERSION;
		return O365_OK;
	}
	return O365_E_CONFIG;
}

/* --- the socket BIO: send(MSG_NOSIGNAL) so SIGPIPE never fires ------------ */

static int
tls_bio_write(BIO *b, const char *p, int n)
{
	struct o365_conn *c = BIO_get_data(b);
	ssize_t w;

	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	for (;;) {
		w = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);
		if (w >= 0)
			return (int)w;
		if (errno == EINTR)
			continue;
		c->sys_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return -1;
	}
}

static int
tls_bio_read(BIO *b, char *p, int n)
{
	struct o365_conn *c = BIO_get_data(b);
	ssize_t got;

	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	for (;;) {
		got = recv(c->fd, p, (size_t)n, 0);
		if (got >= 0)
			return (int)got;	/* 0: EOF, OpenSSL decides if it was clean */
		if (errno == EINTR)
			continue;
		c->sys_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return -1;
	}
}

static int
tls_bio_puts(BIO *b, const char *s)
{
	return tls_bio_write(b, s, (int)strlen(s));
}

static long
tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;	/* every write went straight to the socket */
	default:
		return 0;	/* no ktls, no fd, no push/pop */
	}
}

static int
tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *
tls_bio_method(void)
{
	BIO_METHOD *m;

	if ((m = BIO_meth_new(TLS_BIO_TYPE, "o365 socket")) == NULL)
		return NULL;
	if (!BIO_meth_set_write(m, tls_bio_write) ||
	    !BIO_meth_set_read(m, tls_bio_read) ||
	    !BIO_meth_set_puts(m, tls_bio_puts) ||
	    !BIO_meth_set_ctrl(m, tls_bio_ctrl) ||
	    !BIO_meth_set_create(m, tls_bio_create)) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

/* --- error texts ---------------------------------------------------------- */

/* The most telling reason on the thread's error queue, or NULL. */
static const char *
tls_queue_reason(unsigned long *code_out)
{
	unsigned long e, first = 0;
	const char *s;

	while ((e = ERR_get_error()) != 0) {
		if (first == 0)
			first = e;
	}
	*code_out = first;
	if (first == 0)
		return NULL;
	if ((s = ERR_reason_error_string(first)) != NULL)
		return s;
	return "unknown OpenSSL error";
}

/* A few words for the admin after OpenSSL's terse reason. */
static const char *
tls_hint(struct o365_conn *c, unsigned long code)
{
	if (ERR_GET_LIB(code) != ERR_LIB_SSL)
		return "";
	switch (ERR_GET_REASON(code)) {
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_VERSION_TOO_LOW:
		return SSL_get_min_proto_version(c->ssl) == TLS1_3_VERSION ?
		    " (no common TLS version; TLS 1.3 is required)" :
		    " (no common TLS version; TLS 1.2 or newer is required)";
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
		return " (the server did not answer in TLS: wrong port, or STARTTLS expected?)";
	default:
		return "";
	}
}

/*
 * Turn a failed SSL_* call into an o365 error.  what: "TLS handshake with
 * host", "TLS read", "TLS write".  Leaves the error queue empty.
 */
static int
tls_fail(struct o365_conn *c, int sslerr, const char *what, const char *host,
    struct o365_error *err)
{
	const char *reason;
	unsigned long code;
	long vr;
	int r;

	c->tls_dead = 1;
	vr = SSL_get_verify_result(c->ssl);
	reason = tls_queue_reason(&code);
	if (sslerr == SSL_ERROR_SSL && vr != X509_V_OK) {
		/* "certificate has expired", "hostname mismatch", ... */
		r = o365_error_set(err, O365_E_TLS, "%s%s: certificate verification failed: %s",
		    what, host, X509_verify_cert_error_string(vr));
	} else if (sslerr == SSL_ERROR_SYSCALL ||
	    (sslerr == SSL_ERROR_SSL && code != 0 &&
	    ERR_GET_LIB(code) == ERR_LIB_SSL &&
	    ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		c->eof = 1;
		if (sslerr == SSL_ERROR_SYSCALL && c->sys_errno != 0 &&
		    c->sys_errno != EAGAIN && c->sys_errno != EWOULDBLOCK)
			r = o365_error_set(err, O365_E_NET, "%s%s: %s", what, host,
			    strerror(c->sys_errno));
		else
			r = o365_error_set(err, O365_E_NET, "%s%s: connection closed by server",
			    what, host);
	} else if (reason != NULL) {
		/* "unsupported protocol", "tlsv1 alert protocol version", ... */
		r = o365_error_set(err, O365_E_TLS, "%s%s: %s%s", what, host, reason,
		    tls_hint(c, code));
	} else {
		r = o365_error_set(err, O365_E_TLS, "%s%s: OpenSSL error %d", what, host, sslerr);
	}
	ERR_clear_error();
	return r;
}

/* Wait as SSL asked (WANT_READ/WANT_WRITE); anything else is not a wait. */
static int
tls_want(struct o365_conn *c, int sslerr, const struct o365_deadline *dl,
    struct o365_error *err, int *r)
{
	if (sslerr == SSL_ERROR_WANT_READ) {
		*r = conn_wait(c, POLLIN, dl, err);
		return 1;
	}
	if (sslerr == SSL_ERROR_WANT_WRITE) {
		*r = conn_wait(c, POLLOUT, dl, err);
		return 1;
	}
	return 0;
}

/* --- setting up a session ------------------------------------------------- */

/*
 * Trust anchors: the configured file/directory, else the compiled-in system
 * locations.  Not SSL_CTX_set_default_verify_paths(): it reads SSL_CERT_FILE
 * and SSL_CERT_DIR from the environment, and a user running su or sudo must
 * not choose what a root process trusts.
 */
static int
tls_load_cas(SSL_CTX *ctx, const struct o365_tls_opts *opts, struct o365_error *err)
{
	unsigned long code;
	const char *reason;

	if (opts != NULL && (opts->ca_file != NULL || opts->ca_dir != NULL)) {
		if (opts->ca_file != NULL && SSL_CTX_load_verify_file(ctx, opts->ca_file) != 1) {
			reason = tls_queue_reason(&code);
			return o365_error_set(err, O365_E_CONFIG, "cannot load CA file %s: %s",
			    opts->ca_file, reason != NULL ? reason : "no certificates");
		}
		if (opts->ca_dir != NULL && SSL_CTX_load_verify_dir(ctx, opts->ca_dir) != 1) {
			reason = tls_queue_reason(&code);
			return o365_error_set(err, O365_E_CONFIG, "cannot use CA directory %s: %s",
			    opts->ca_dir, reason != NULL ? reason : "failed");
		}
		return O365_OK;
	}
	/* Either may be missing on a given system; verification then fails
	 * with "unable to get local issuer certificate", which says it all. */
	if (SSL_CTX_load_verify_file(ctx, X509_get_default_cert_file()) != 1)
		ERR_clear_error();
	if (SSL_CTX_load_verify_dir(ctx, X509_get_default_cert_dir()) != 1)
		ERR_clear_error();
	return O365_OK;
}

static int
tls_is_ip(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static int
tls_setup(struct o365_conn *c, const struct o365_tls_opts *opts, const char *host,
    struct o365_error *err)
{
	int minv = opts != NULL && opts->min_version != 0 ? opts->min_version : TLS1_2_VERSION;
	BIO *bio;
	int r;

	if (minv != TLS1_2_VERSION && minv != TLS1_3_VERSION)
		return o365_error_set(err, O365_E_CONFIG,
		    "minimum TLS version must be 1.2 or 1.3 (got 0x%x)", (unsigned)minv);
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (c->biom = tls_bio_method()) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "cannot set up TLS");
	if (SSL_CTX_set_min_proto_version(c->ctx, minv) != 1)
		return o365_error_set(err, O365_E_TLS, "cannot set the minimum TLS version");
	/* a server-initiated renegotiation is never needed by Exchange Online */
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if ((r = tls_load_cas(c->ctx, opts, err)) != O365_OK)
		return r;
	if ((c->ssl = SSL_new(c->ctx)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "cannot set up TLS");
	if (tls_is_ip(host)) {
		/* an IP literal is matched against iPAddress SANs; no SNI (RFC 6066 3) */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
			return o365_error_set(err, O365_E_INVAL, "bad IP address %s", host);
	} else {
		SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(c->ssl, host) != 1 ||
		    SSL_set_tlsext_host_name(c->ssl, host) != 1)
			return o365_error_set(err, O365_E_INVAL, "bad host name for TLS: %s", host);
	}
	if ((bio = BIO_new(c->biom)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "cannot set up TLS");
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);	/* the SSL owns it now */
	SSL_set_connect_state(c->ssl);
	return O365_OK;
}

/* Free the session objects without a close_notify. */
static void
tls_discard(struct o365_conn *c)
{
	SSL_free(c->ssl);
	c->ssl = NULL;
	SSL_CTX_free(c->ctx);
	c->ctx = NULL;
	BIO_meth_free(c->biom);
	c->biom = NULL;
}

int
o365_conn_start_tls(struct o365_conn *c, const struct o365_tls_opts *opts, const char *host,
    const struct o365_deadline *dl, const struct o365_log *lg, struct o365_error *err)
{
	X509 *peer = NULL;
	long vr;
	int r, rc, e;

	ERR_clear_error();
	if (c->ssl != NULL)
		return o365_error_set(err, O365_E_INVAL, "TLS is already on");
	if (host == NULL || *host == '\0')
		return o365_error_set(err, O365_E_INVAL, "TLS needs the server's host name");
	if (o365_conn_pending(c) > 0) {
		/* Bytes that came with the STARTTLS reply were sent in clear by
		 * anyone on the path; they must not be read as if protected. */
		r = o365_error_set(err, O365_E_PROTO,
		    "server sent %zu bytes after its STARTTLS reply (plaintext injection?)",
		    o365_conn_pending(c));
		goto fail;
	}
	c->sys_errno = 0;
	c->tls_dead = 0;
	if ((r = tls_setup(c, opts, host, err)) != O365_OK)
		goto fail;
	for (;;) {
		ERR_clear_error();
		if ((rc = SSL_do_handshake(c->ssl)) == 1)
			break;
		e = SSL_get_error(c->ssl, rc);
		if (tls_want(c, e, dl, err, &r)) {
			if (r == O365_E_TIMEOUT)
				r = o365_error_set(err, r, "TLS handshake with %s timed out", host);
			if (r != O365_OK)
				goto fail;
			continue;
		}
		r = tls_fail(c, e, "TLS handshake with ", host, err);
		goto fail;
	}
	/* SSL_VERIFY_PEER already stopped a bad chain; say it twice anyway */
	if ((peer = SSL_get1_peer_certificate(c->ssl)) == NULL) {
		r = o365_error_set(err, O365_E_TLS, "TLS handshake with %s: no server certificate", host);
		goto fail;
	}
	X509_free(peer);
	if ((vr = SSL_get_verify_result(c->ssl)) != X509_V_OK) {
		r = o365_error_set(err, O365_E_TLS,
		    "TLS handshake with %s: certificate verification failed: %s",
		    host, X509_verify_cert_error_string(vr));
		goto fail;
	}
	o365_log(lg, LOG_DEBUG, "TLS with %s: %s %s", host, SSL_get_version(c->ssl),
	    SSL_get_cipher_name(c->ssl));
	ERR_clear_error();
	return O365_OK;
fail:
	/* Fail closed: nothing more goes over this socket, in clear or not. */
	tls_discard(c);
	(void)shutdown(c->fd, SHUT_RDWR);
	c->eof = 1;
	ERR_clear_error();
	return r;
}

/* --- I/O ---------------------------------------------------------------- */

int
conn_tls_read(struct o365_conn *c, void *p, size_t n, size_t *got,
    const struct o365_deadline *dl, struct o365_error *err)
{
	int r, rc, e;

	*got = 0;
	if (c->tls_dead)
		return o365_error_set(err, O365_E_TLS, "TLS session already failed");
	/*
	 * SSL_read first, poll only on WANT_READ: a record may already sit
	 * decrypted inside OpenSSL (SSL_pending) while the socket is quiet.
	 */
	for (;;) {
		ERR_clear_error();
		if ((rc = SSL_read_ex(c->ssl, p, n, got)) == 1)
			return O365_OK;
		e = SSL_get_error(c->ssl, rc);
		if (e == SSL_ERROR_ZERO_RETURN) {
			*got = 0;	/* close_notify: a clean EOF */
			ERR_clear_error();
			return O365_OK;
		}
		if (tls_want(c, e, dl, err, &r)) {
			if (r != O365_OK)
				return r;
			continue;
		}
		return tls_fail(c, e, "TLS read", "", err);
	}
}

int
conn_tls_write(struct o365_conn *c, const void *p, size_t n,
    const struct o365_deadline *dl, struct o365_error *err)
{
	const unsigned char *s = p;
	size_t w;
	int r, rc, e;

	if (c->tls_dead)
		return o365_error_set(err, O365_E_TLS, "TLS session already failed");
	while (n > 0) {
		ERR_clear_error();
		/* a retry after WANT_* repeats the same arguments, as required */
		if ((rc = SSL_write_ex(c->ssl, s, n, &w)) == 1) {
			s += w;
			n -= w;
			continue;
		}
		e = SSL_get_error(c->ssl, rc);
		if (tls_want(c, e, dl, err, &r)) {
			if (r != O365_OK)
				return r;
			continue;
		}
		return tls_fail(c, e, "TLS write", "", err);
	}
	ERR_clear_error();
	return O365_OK;
}

void
conn_tls_free(struct o365_conn *c)
{
	if (c->ssl == NULL && c->ctx == NULL && c->biom == NULL)
		return;
	ERR_clear_error();
	/* one non-blocking close_notify; a peer that is gone just misses it.
	 * Not after a fatal error: OpenSSL forbids SSL_shutdown then. */
	if (c->ssl != NULL && !c->tls_dead && SSL_is_init_finished(c->ssl))
		(void)SSL_shutdown(c->ssl);
	tls_discard(c);
	ERR_clear_error();
}

/* --- diagnostics -------------------------------------------------------- */

static void
tls_name(X509_NAME *name, char *dst, size_t dstsz)
{
	BIO *mem;
	char *p;
	long n;

	dst[0] = '\0';
	if (name == NULL || (mem = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(mem, &p)) > 0)
		(void)o365_sanitize(dst, dstsz, p, (size_t)n);
	BIO_free(mem);
}

int
o365_conn_tls_info(const struct o365_conn *c, struct o365_tls_info *out)
{
	const SSL_CIPHER *ciph;
	STACK_OF(X509) *chain;
	X509 *peer;
	struct tm tm;
	long vr;

	memset(out, 0, sizeof(*out));
	if (c == NULL || c->ssl == NULL)
		return O365_E_INVAL;
	snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(c->ssl));
	if ((ciph = SSL_get_current_cipher(c->ssl)) != NULL)
		snprintf(out->cipher, sizeof(out->cipher), "%s", SSL_CIPHER_get_name(ciph));
	vr = SSL_get_verify_result(c->ssl);
	snprintf(out->verify, sizeof(out->verify), "%s",
	    vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr));
	if ((chain = SSL_get0_verified_chain(c->ssl)) != NULL)
		out->chain_len = sk_X509_num(chain);
	if ((peer = SSL_get1_peer_certificate(c->ssl)) != NULL) {
		tls_name(X509_get_subject_name(peer), out->subject, sizeof(out->subject));
		tls_name(X509_get_issuer_name(peer), out->issuer, sizeof(out->issuer));
		if (ASN1_TIME_to_tm(X509_get0_notAfter(peer), &tm) == 1)
			(void)strftime(out->not_after, sizeof(out->not_after),
			    "%Y-%m-%dT%H:%M:%SZ", &tm);
		X509_free(peer);
	}
	ERR_clear_error();
	return O365_OK;
}
