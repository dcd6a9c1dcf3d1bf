/*
 * intake.c: read the message from stdin without holding it, write files
 * durably.
 *
 * A line holding only "." ends the input unless -i/-oi was given (sendmail's
 * historical rule, which mail(1) and cron rely on).  Bytes are stored as
 * received; line endings are normalised to CRLF and dots stuffed only on the
 * wire (o365_smtp_data_fd).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm.h"

int
sm_in_init(struct sm_in *in, int fd, int dot_ends, size_t cap)
{
	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->dot_ends = dot_ends;
	in->at_bol = 1;
	in->cap = cap < 2 ? 2 : cap;
	if ((in->buf = malloc(in->cap)) == NULL)
		return O365_E_NOMEM;
	return O365_OK;
}

void
sm_in_free(struct sm_in *in)
{
	free(in->buf);
	in->buf = NULL;
}

/* Read more into the buffer; 1 got bytes, 0 EOF, O365_E_IO. */
static int
in_fill(struct sm_in *in)
{
	ssize_t n;

	if (in->off > 0) {
		memmove(in->buf, in->buf + in->off, in->len - in->off);
		in->len -= in->off;
		in->off = 0;
	}
	if (in->len == in->cap)
		return 1;
	for (;;) {
		n = read(in->fd, in->buf + in->len, in->cap - in->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			in->err = errno;
			return O365_E_IO;
		}
		in->len += (size_t)n;
		return n > 0;
	}
}

int
sm_in_piece(struct sm_in *in, size_t max, const char **p, size_t *len, int *bol)
{
	unsigned char *s, *lf;
	size_t avail, take;
	int r, ended = 0;

	if (in->eof)
		return 0;
	if (max > in->cap)
		max = in->cap;
	for (;;) {
		s = in->buf + in->off;
		avail = in->len - in->off;
		lf = avail > 0 ? memchr(s, '\n', avail < max ? avail : max) : NULL;
		if (lf != NULL || avail >= max || ended)
			break;
		if ((r = in_fill(in)) < 0)
			return r;
		if (r == 0)
			ended = 1;
	}
	if (lf != NULL)
		take = (size_t)(lf - s) + 1;
	else
		take = avail < max ? avail : max;
	if (take == 0) {
		in->eof = 1;
		return 0;
	}
	*bol = in->at_bol;
	if (in->dot_ends && in->at_bol && s[0] == '.' &&
	    (take == 1 || (take == 2 && s[1] == '\n') ||
	    (take == 3 && s[1] == '\r' && s[2] == '\n'))) {
		if (take > 1 || ended) {	/* "." alone, or "." at EOF */
			in->eof = 1;
			return 0;
		}
	}
	in->off += take;
	in->at_bol = s[take - 1] == '\n';
	in->total += (off_t)take;
	*p = (const char *)s;
	*len = take;
	return 1;
}

/* ---- output ---- */

static long	out_fault_nth;		/* tests only: fail the n-th write */
static int	out_fault_errno;

void
sm_out_fault(long nth, int e)
{
	out_fault_nth = nth;
	out_fault_errno = e;
}

void
sm_out_init(struct sm_out *o, int fd)
{
	o->fd = fd;
	o->err = 0;
	o->saw8bit = 0;
	o->len = 0;
	o->total = 0;
}

int
sm_out_flush(struct sm_out *o)
{
	size_t done = 0;
	ssize_t n;

	if (o->err != 0)
		return O365_E_IO;
	while (done < o->len) {
		if (out_fault_nth > 0 && --out_fault_nth == 0) {
			o->err = out_fault_errno;
			return O365_E_IO;
		}
		n = write(o->fd, o->buf + done, o->len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			o->err = errno;
			return O365_E_IO;
		}
		done += (size_t)n;
	}
	o->len = 0;
	return O365_OK;
}

int
sm_out_write(struct sm_out *o, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t k;
	int r;

	if (o->err != 0)
		return O365_E_IO;
	for (k = 0; !o->saw8bit && k < n; k++)
		if (c[k] & 0x80)
			o->saw8bit = 1;
	while (n > 0) {
		if (o->len == sizeof(o->buf) && (r = sm_out_flush(o)) != O365_OK)
			return r;
		k = sizeof(o->buf) - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, c, k);
		o->len += k;
		o->total += (off_t)k;
		c += k;
		n -= k;
	}
	return O365_OK;
}

int
sm_out_printf(struct sm_out *o, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return O365_E_TOOLONG;
	return sm_out_write(o, line, (size_t)n);
}

int
sm_copy_body(struct sm_in *in, struct sm_out *out, off_t limit)
{
	const char *p;
	size_t len;
	int r, bol;

	while ((r = sm_in_piece(in, in->cap, &p, &len, &bol)) == 1) {
		if ((r = sm_out_write(out, p, len)) != O365_OK)
			return r;
		if (out->total > limit)
			return O365_E_TOOLONG;
	}
	return r;
}

/* ---- durable files ---- */

static int
file_err(struct o365_error *err, int e, const char *what, const char *name)
{
	return o365_error_set(err, e == ENOSPC || e == EDQUOT ? O365_E_TEMP : O365_E_IO,
	    "%s %s: %s", what, name, strerror(e));
}

int
sm_file_create(struct sm_file *f, int dirfd, const char *name, mode_t mode,
    struct o365_error *err)
{
	int n;

	memset(f, 0, sizeof(*f));
	f->dirfd = dirfd;
	f->fd = -1;
	n = snprintf(f->name, sizeof(f->name), "%s", name);
	if (n < 0 || (size_t)n >= sizeof(f->name))
		return o365_error_set(err, O365_E_INVAL, "file name too long");
	n = snprintf(f->tmp, sizeof(f->tmp), ".t%s", name);
	if (n < 0 || (size_t)n >= sizeof(f->tmp))
		return o365_error_set(err, O365_E_INVAL, "file name too long");
	f->fd = openat(dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (f->fd == -1)
		return file_err(err, errno, "cannot create", f->tmp);
	return O365_OK;
}

int
sm_file_commit(struct sm_file *f, struct o365_error *err)
{
	int e;

	if (fsync(f->fd) == -1) {
		e = errno;
		sm_file_abort(f);
		return file_err(err, e, "cannot fsync", f->tmp);
	}
	if (renameat(f->dirfd, f->tmp, f->dirfd, f->name) == -1) {
		e = errno;
		sm_file_abort(f);
		return file_err(err, e, "cannot rename to", f->name);
	}
	/* the new name must be durable too: fsync the directory, or, where the
	 * caller may not open it for reading (incoming/ is 1733), syncfs() */
	if ((f->use_syncfs ? syncfs(f->fd) : fsync(f->dirfd)) == -1) {
		/* not known to be durable: take it back rather than risk a
		 * duplicate when the caller tries again */
		e = errno;
		(void)unlinkat(f->dirfd, f->name, 0);
		close(f->fd);
		f->fd = -1;
		return file_err(err, e, "cannot sync the directory of", f->name);
	}
	if (close(f->fd) == -1) {
		e = errno;
		f->fd = -1;
		(void)unlinkat(f->dirfd, f->name, 0);
		return file_err(err, e, "cannot close", f->name);
	}
	f->fd = -1;
	return O365_OK;
}

void
sm_file_abort(struct sm_file *f)
{
	if (f->fd != -1) {
		close(f->fd);
		f->fd = -1;
	}
	if (f->tmp[0] != '\0')
		(void)unlinkat(f->dirfd, f->tmp, 0);
}

int
sm_random_hex(char *out, size_t nbytes)
{
	unsigned char b[32];
	size_t i, got = 0;
	ssize_t n;

	if (nbytes > sizeof(b))
		return O365_E_INVAL;
	while (got < nbytes) {
		n = getrandom(b + got, nbytes - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return O365_E_IO;
		got += (size_t)n;
	}
	for (i = 0; i < nbytes; i++) {
		out[2 * i] = "0123456789abcdef"[b[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[b[i] & 15];
	}
	out[2 * nbytes] = '\0';
	return O365_OK;
}

int
sm_fqdn(char *buf, size_t size)
{
	struct addrinfo hints, *res = NULL;
	int n;

	if (gethostname(buf, size) == -1 || size == 0)
		return -1;
	buf[size - 1] = '\0';
	if (strchr(buf, '.') != NULL)
		return 0;
	/* /etc/hosts normally answers; getaddrinfo() cannot be bounded by a deadline */
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(buf, NULL, &hints, &res) == 0 && res != NULL && res->ai_canonname != NULL &&
	    strchr(res->ai_canonname, '.') != NULL) {
		n = snprintf(buf, size, "%s", res->ai_canonname);
		if (n < 0 || (size_t)n >= size)
			buf[0] = '\0';
	}
	if (res != NULL)
		freeaddrinfo(res);
	if (buf[0] == '\0')
		return gethostname(buf, size) == -1 ? -1 : 0;
	return 0;
}
