/* buf.c: bounded byte buffer and CRLF line splitting. */
#include <stdlib.h>
#include <string.h>

#include "o365/buf.h"

void
o365_buf_init(struct o365_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

/* Move unread bytes to the front so appends reuse consumed space. */
static void
buf_compact(struct o365_buf *b)
{
	if (b->off == 0)
		return;
	memmove(b->data, b->data + b->off, b->len - b->off);
	if (b->secret)
		explicit_bzero(b->data + b->len - b->off, b->off);
	b->len -= b->off;
	b->off = 0;
}

unsigned char *
o365_buf_space(struct o365_buf *b, size_t n, int *r)
{
	size_t want, ncap;
	unsigned char *p;

	buf_compact(b);
	if (n > b->max || b->len > b->max - n) {
		*r = O365_E_TOOLONG;
		return NULL;
	}
	want = b->len + n;
	if (want + 1 > b->cap) {		/* +1: room for getline's NUL */
		ncap = b->cap ? b->cap : 256;
		while (ncap < want + 1)
			ncap *= 2;
		if (ncap > b->max + 1)
			ncap = b->max + 1;
		if (b->secret) {
			/* never leave a copy of a secret in freed memory */
			if ((p = malloc(ncap)) == NULL) {
				*r = O365_E_NOMEM;
				return NULL;
			}
			if (b->data != NULL) {
				memcpy(p, b->data, b->len);
				explicit_bzero(b->data, b->cap);
				free(b->data);
			}
		} else if ((p = realloc(b->data, ncap)) == NULL) {
			*r = O365_E_NOMEM;
			return NULL;
		}
		b->data = p;
		b->cap = ncap;
	}
	*r = O365_OK;
	return b->data + b->len;
}

int
o365_buf_append(struct o365_buf *b, const void *p, size_t n)
{
	unsigned char *dst;
	int r;

	if (n == 0)
		return O365_OK;
	if ((dst = o365_buf_space(b, n, &r)) == NULL)
		return r;
	memcpy(dst, p, n);
	b->len += n;
	return O365_OK;
}

size_t
o365_buf_unread(const struct o365_buf *b)
{
	return b->len - b->off;
}

int
o365_buf_getline(struct o365_buf *b, size_t limit, char **line_out, size_t *len_out)
{
	size_t avail = b->len - b->off, i, scan;
	unsigned char *s;

	if (avail == 0)
		return 0;	/* data may still be NULL: no arithmetic on it (C11 6.5.6) */
	s = b->data + b->off;
	/* look at most limit+2 bytes: the line and its CRLF */
	scan = avail < limit + 2 ? avail : limit + 2;
	for (i = 0; i < scan; i++) {
		if (s[i] == '\0')
			return O365_E_PROTO;
		if (s[i] == '\n') {
			if (i == 0 || s[i - 1] != '\r')
				return O365_E_PROTO;
			if (i - 1 > limit)
				return O365_E_TOOLONG;
			s[i - 1] = '\0';
			*line_out = (char *)s;
			*len_out = i - 1;
			b->off += i + 1;
			return 1;
		}
	}
	if (avail >= limit + 2)
		return O365_E_TOOLONG;
	return 0;
}

void
o365_buf_consume(struct o365_buf *b, size_t n)
{
	if (n > b->len - b->off)
		n = b->len - b->off;
	b->off += n;
	if (b->off == b->len) {
		if (b->secret && b->data != NULL)
			explicit_bzero(b->data, b->len);
		b->off = b->len = 0;
	}
}

void
o365_buf_reset(struct o365_buf *b)
{
	if (b->secret && b->data != NULL)
		explicit_bzero(b->data, b->cap);
	b->len = b->off = 0;
}

void
o365_buf_free(struct o365_buf *b)
{
	if (b->data != NULL) {
		if (b->secret)
			explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = b->off = 0;
}
