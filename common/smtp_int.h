/*
 * smtp_int.h: private entry points of smtp.c for tests.  NOT part of the API:
 * nothing in the configuration can reach them.
 */
#ifndef O365_SMTP_INT_H
#define O365_SMTP_INT_H

#include "o365/smtp.h"

/* Treat the connection as if TLS were already up: no STARTTLS is sent and
 * AUTH is allowed on the plain socket.  Only for socketpair protocol tests. */
#define SMTP_TEST_ASSUME_TLS	0x1

/*
 * Run the session start (greeting, EHLO, STARTTLS as o->tls_mode says) over an
 * already connected conn, which the session takes over (also on failure: it
 * is closed then).  o365_smtp_connect is o365_conn_connect (+ TLS for
 * IMPLICIT) followed by this with flags 0.
 */
int	smtp_open_conn(struct o365_conn *conn, const struct o365_smtp_opts *o,
	    unsigned flags, const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_smtp **out, struct o365_error *err) O365_MUST_CHECK;

#endif
