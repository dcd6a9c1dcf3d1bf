/*
 * conn.h: one client connection (TCP, then optionally TLS) with a line reader.
 *
 * Every call takes the caller's deadline for the whole operation; sockets are
 * non-blocking and every wait is a poll() with the time left.  Writes use
 * send(MSG_NOSIGNAL) (also under TLS, through a custom BIO): SIGPIPE never
 * reaches the calling process.
 */
#ifndef O365_CONN_H
#define O365_CONN_H

#include <stddef.h>
#include "err.h"
#include "deadline.h"
#include "log.h"
#include "tls.h"

struct o365_conn;

/*
 * Resolve host and connect to port, trying every address of every family in
 * turn within the one deadline (non-blocking connect + poll).  getaddrinfo()
 * itself cannot be bounded by the deadline.
 * O365_E_NET (resolve, refused, unreachable), O365_E_TIMEOUT, O365_E_NOMEM.
 */
int	o365_conn_connect(const char *host, unsigned int port,
	    const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_conn **out, struct o365_error *err) O365_MUST_CHECK;

/* Wrap a connected socket (tests: socketpair).  Takes ownership of fd. */
int	o365_conn_from_fd(int fd, struct o365_conn **out, struct o365_error *err) O365_MUST_CHECK;

/*
 * Start TLS on the connection now (implicit TLS right after connect, or after
 * a STARTTLS reply).  Verifies the chain against opts (system store unless
 * ca_file/ca_dir), the host name (SSL_set1_host) and sends SNI.
 * If any byte is already buffered from the plaintext phase this fails with
 * O365_E_PROTO (STARTTLS plaintext injection, CVE-2011-0411 class).
 * O365_E_TLS with err->why naming the reason (expired, wrong host name,
 * untrusted issuer, protocol version), O365_E_TIMEOUT, O365_E_NET,
 * O365_E_CONFIG (unreadable ca_file, min_version other than 1.2/1.3),
 * O365_E_INVAL (no host, TLS already on).  host may be an IP literal: it is
 * then matched against iPAddress names and no SNI is sent.
 * After any failure but "no host" / "TLS already on" the connection is shut
 * down: nothing more can be sent or read on it, in clear or not; close it.
 */
int	o365_conn_start_tls(struct o365_conn *c, const struct o365_tls_opts *opts,
	    const char *host, const struct o365_deadline *dl,
	    const struct o365_log *lg, struct o365_error *err) O365_MUST_CHECK;

/* Non-zero once TLS is up. */
int	o365_conn_is_tls(const struct o365_conn *c);

/* Fill *out from the TLS session; O365_E_INVAL when TLS is not up. */
int	o365_conn_tls_info(const struct o365_conn *c, struct o365_tls_info *out) O365_MUST_CHECK;

/* Write all n bytes.  O365_E_NET, O365_E_TIMEOUT, O365_E_TLS. */
int	o365_conn_write(struct o365_conn *c, const void *p, size_t n,
	    const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/*
 * Read one CRLF-terminated line of at most limit bytes (without CRLF).
 * On O365_OK *line_out is NUL-terminated and valid until the next read.
 * O365_E_TOOLONG (no CRLF within limit), O365_E_PROTO (NUL byte, bare LF),
 * O365_E_NET (closed by the peer: "connection closed by server"),
 * O365_E_TIMEOUT, O365_E_TLS.
 */
int	o365_conn_getline(struct o365_conn *c, size_t limit, char **line_out,
	    size_t *len_out, const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/* Read exactly n bytes into p (p may be NULL to discard them). */
int	o365_conn_read(struct o365_conn *c, void *p, size_t n,
	    const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/* Bytes received but not yet consumed. */
size_t	o365_conn_pending(const struct o365_conn *c);

/* Close (a TLS close_notify is attempted without blocking) and free; *cp = NULL. */
void	o365_conn_close(struct o365_conn **cp);

#endif
