/* buf.h: a growable byte buffer with a hard maximum, and CRLF line splitting. */
#ifndef O365_BUF_H
#define O365_BUF_H

#include <stddef.h>
#include "err.h"

struct o365_buf {
	unsigned char	*data;
	size_t		 len, cap, max;
	size_t		 off;		/* start of unread data (getline) */
	unsigned	 secret:1;	/* cleanse on reset, consume and free */
};

/* An empty buffer that never grows past max bytes.  Allocates nothing yet. */
void	o365_buf_init(struct o365_buf *b, size_t max);

/* Append n bytes.  O365_E_TOOLONG past max (nothing appended), O365_E_NOMEM. */
int	o365_buf_append(struct o365_buf *b, const void *p, size_t n) O365_MUST_CHECK;

/* Reserve room for n more bytes; returns a pointer to it or NULL (TOOLONG/NOMEM in *r). */
unsigned char *o365_buf_space(struct o365_buf *b, size_t n, int *r);

/* Bytes not yet consumed by getline. */
size_t	o365_buf_unread(const struct o365_buf *b);

/*
 * 1: *line_out is a NUL-terminated line without CRLF, valid until the next call.
 * 0: need more input.  <0: O365_E_TOOLONG when no CRLF within limit bytes,
 * O365_E_PROTO on a NUL byte or a LF without CR before it.
 */
int	o365_buf_getline(struct o365_buf *b, size_t limit, char **line_out, size_t *len_out);

/* Drop n unread bytes (after getline or a raw read of them). */
void	o365_buf_consume(struct o365_buf *b, size_t n);

/* Empty the buffer (cleansing it if secret); keeps the allocation. */
void	o365_buf_reset(struct o365_buf *b);

/* Release memory (cleansing it if secret). */
void	o365_buf_free(struct o365_buf *b);

#endif
