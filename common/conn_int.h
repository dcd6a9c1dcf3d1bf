/* conn_int.h: the connection object, shared by conn.c (plain I/O) and tls.c. */
#ifndef O365_CONN_INT_H
#define O365_CONN_INT_H

#include <openssl/ssl.h>

#include "o365/buf.h"
#include "o365/conn.h"

struct o365_conn {
	int		 fd;
	SSL		*ssl;		/* NULL until o365_conn_start_tls */
	SSL_CTX		*ctx;
	BIO_METHOD	*biom;		/* our send(MSG_NOSIGNAL) BIO, per connection */
	int		 sys_errno;	/* last errno seen by that BIO */
	int		 tls_dead;	/* fatal TLS error: no close_notify */
	struct o365_buf	 in;		/* received, not yet consumed */
	int		 eof;
};

/* Wait until fd is readable (events=POLLIN) or writable (POLLOUT) within dl. */
int	conn_wait(struct o365_conn *c, short events, const struct o365_deadline *dl,
	    struct o365_error *err);

/* tls.c: read up to n bytes (>0 read, 0 EOF), or write all n, through TLS. */
int	conn_tls_read(struct o365_conn *c, void *p, size_t n, size_t *got,
	    const struct o365_deadline *dl, struct o365_error *err);
int	conn_tls_write(struct o365_conn *c, const void *p, size_t n,
	    const struct o365_deadline *dl, struct o365_error *err);
void	conn_tls_free(struct o365_conn *c);

#endif
