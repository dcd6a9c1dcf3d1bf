/* conn.c: connect with a deadline, plain socket I/O, buffered line reads. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "o365/limits.h"
#include "conn_int.h"

/* The receive buffer holds at most one maximal line plus one read's worth. */
#define CONN_BUF_MAX	(O365_MAX_IMAP_LITERAL + 16384)

int
conn_wait(struct o365_conn *c, short events, const struct o365_deadline *dl,
    struct o365_error *err)
{
	struct pollfd pfd;
	int left, n;

	for (;;) {
		if ((left = o365_deadline_left_ms(dl)) == 0)
			return o365_error_set(err, O365_E_TIMEOUT, "timed out waiting for the server");
		pfd.fd = c->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return o365_error_set(err, O365_E_NET, "poll: %s", strerror(errno));
		if (n == 0)
			continue;	/* re-check the deadline */
		return O365_OK;		/* POLLERR/POLLHUP surface in the read or write */
	}
}

static int
conn_new(int fd, struct o365_conn **out)
{
	struct o365_conn *c;
	int fl;

	*out = NULL;
	if ((fl = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return O365_E_NET;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return O365_E_NOMEM;
	c->fd = fd;
	o365_buf_init(&c->in, CONN_BUF_MAX);
	*out = c;
	return O365_OK;
}

int
o365_conn_from_fd(int fd, struct o365_conn **out, struct o365_error *err)
{
	int r;

	if ((r = conn_new(fd, out)) != O365_OK) {
		close(fd);
		return o365_error_set(err, r, "cannot set up the connection");
	}
	return O365_OK;
}

/* One non-blocking connect to ai, waited for within dl. */
static int
conn_try(const struct addrinfo *ai, const struct o365_deadline *dl, int *fd_out,
    char *why, size_t whysz)
{
	struct pollfd pfd;
	socklen_t sl;
	int fd, n, soerr, left;

	*fd_out = -1;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		snprintf(why, whysz, "socket: %s", strerror(errno));
		return O365_E_NET;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		goto ok;
	if (errno != EINPROGRESS) {
		snprintf(why, whysz, "%s", strerror(errno));
		close(fd);
		return O365_E_NET;
	}
	for (;;) {
		if ((left = o365_deadline_left_ms(dl)) == 0) {
			snprintf(why, whysz, "connect timed out");
			close(fd);
			return O365_E_TIMEOUT;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		n = poll(&pfd, 1, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(why, whysz, "poll: %s", strerror(errno));
			close(fd);
			return O365_E_NET;
		}
		if (n > 0)
			break;
	}
	soerr = 0;
	sl = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		soerr = errno;
	if (soerr != 0) {
		snprintf(why, whysz, "%s", strerror(soerr));
		close(fd);
		return O365_E_NET;
	}
ok:
	*fd_out = fd;
	return O365_OK;
}

int
o365_conn_connect(const char *host, unsigned int port, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_conn **out, struct o365_error *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[8], addr[NI_MAXHOST], why[160] = "no address";
	int r, gai, fd = -1, last = O365_E_NET;

	*out = NULL;
	if (host == NULL || *host == '\0' || strlen(host) > O365_MAX_HOSTNAME)
		return o365_error_set(err, O365_E_INVAL, "bad host name");
	if (port == 0 || port > 65535)
		return o365_error_set(err, O365_E_INVAL, "bad port %u", port);
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	/* getaddrinfo() cannot be bounded by our deadline; the resolver's own
	 * timeouts (resolv.conf) apply.  We check the deadline right after. */
	gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai == EAI_ADDRFAMILY || gai == EAI_NONAME) {
		hints.ai_flags = 0;	/* loopback-only hosts: AI_ADDRCONFIG hides ::1 */
		gai = getaddrinfo(host, portstr, &hints, &res);
	}
	if (gai != 0)
		return o365_error_set(err, O365_E_NET, "cannot resolve %s: %s", host,
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
		    NI_NUMERICHOST) != 0)
			snprintf(addr, sizeof(addr), "?");
		o365_log(lg, LOG_DEBUG, "connecting to %s port %u", addr, port);
		r = conn_try(ai, dl, &fd, why, sizeof(why));
		if (r == O365_OK)
			break;
		o365_log(lg, LOG_DEBUG, "%s port %u: %s", addr, port, why);
		last = r;
		if (r == O365_E_TIMEOUT)
			break;		/* the one deadline is spent */
	}
	freeaddrinfo(res);
	if (fd == -1)
		return o365_error_set(err, last, "cannot connect to %s port %u: %s", host, port, why);
	if ((r = conn_new(fd, out)) != O365_OK) {
		close(fd);
		return o365_error_set(err, r, "cannot set up the connection");
	}
	return O365_OK;
}

int
o365_conn_is_tls(const struct o365_conn *c)
{
	return c->ssl != NULL;
}

size_t
o365_conn_pending(const struct o365_conn *c)
{
	return o365_buf_unread(&c->in);
}

int
o365_conn_write(struct o365_conn *c, const void *p, size_t n,
    const struct o365_deadline *dl, struct o365_error *err)
{
	const unsigned char *s = p;
	ssize_t w;
	int r;

	if (c->ssl != NULL)
		return conn_tls_write(c, p, n, dl, err);
	while (n > 0) {
		w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w > 0) {
			s += w;
			n -= (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = conn_wait(c, POLLOUT, dl, err)) != O365_OK)
				return r;
			continue;
		}
		return o365_error_set(err, O365_E_NET, "write to server: %s",
		    w == -1 ? strerror(errno) : "nothing written");
	}
	return O365_OK;
}

/* Read what is available (at least one byte) into c->in. */
static int
conn_fill(struct o365_conn *c, const struct o365_deadline *dl, struct o365_error *err)
{
	unsigned char *dst;
	size_t got = 0;
	ssize_t n;
	int r;

	if (c->eof)
		return o365_error_set(err, O365_E_NET, "connection closed by server");
	if ((dst = o365_buf_space(&c->in, 4096, &r)) == NULL)
		return o365_error_set(err, r, "server sent too much without a line end");
	if (c->ssl != NULL) {
		if ((r = conn_tls_read(c, dst, 4096, &got, dl, err)) != O365_OK)
			return r;
	} else {
		for (;;) {
			n = recv(c->fd, dst, 4096, 0);
			if (n >= 0) {
				got = (size_t)n;
				break;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if ((r = conn_wait(c, POLLIN, dl, err)) != O365_OK)
					return r;
				continue;
			}
			return o365_error_set(err, O365_E_NET, "read from server: %s", strerror(errno));
		}
	}
	if (got == 0) {
		c->eof = 1;
		return o365_error_set(err, O365_E_NET, "connection closed by server");
	}
	c->in.len += got;
	return O365_OK;
}

int
o365_conn_getline(struct o365_conn *c, size_t limit, char **line_out, size_t *len_out,
    const struct o365_deadline *dl, struct o365_error *err)
{
	int r;

	for (;;) {
		r = o365_buf_getline(&c->in, limit, line_out, len_out);
		if (r == 1)
			return O365_OK;
		if (r == O365_E_TOOLONG)
			return o365_error_set(err, r, "server line longer than %zu bytes", limit);
		if (r < 0)
			return o365_error_set(err, r, "server sent a NUL byte or a bare LF");
		if ((r = conn_fill(c, dl, err)) != O365_OK)
			return r;
	}
}

int
o365_conn_read(struct o365_conn *c, void *p, size_t n, const struct o365_deadline *dl,
    struct o365_error *err)
{
	unsigned char *d = p;
	size_t have;
	int r;

	while (n > 0) {
		if ((have = o365_buf_unread(&c->in)) == 0) {
			if ((r = conn_fill(c, dl, err)) != O365_OK)
				return r;
			continue;
		}
		if (have > n)
			have = n;
		if (d != NULL) {
			memcpy(d, c->in.data + c->in.off, have);
			d += have;
		}
		o365_buf_consume(&c->in, have);
		n -= have;
	}
	return O365_OK;
}

void
o365_conn_close(struct o365_conn **cp)
{
	struct o365_conn *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	conn_tls_free(c);
	if (c->fd != -1)
		close(c->fd);
	o365_buf_free(&c->in);
	free(c);
	*cp = NULL;
}
