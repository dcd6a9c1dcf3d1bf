/* testutil.c: see testutil.h. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

void
o365_test_capture_sink(void *ctx, int prio, const char *msg)
{
	struct o365_test_capture *c = ctx;
	size_t n = strlen(msg);

	(void)prio;
	if (n + 2 > sizeof(c->text) - c->len) {
		c->dropped++;
		return;
	}
	memcpy(c->text + c->len, msg, n);
	c->len += n;
	c->text[c->len++] = '\n';
	c->text[c->len] = '\0';
	c->lines++;
}

void
o365_test_path_join(char *dst, size_t size, const char *a, const char *b)
{
	int n = snprintf(dst, size, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "path too long: %s/%s\n", a, b);
		abort();
	}
}

int
o365_test_write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[1024];
	size_t len = strlen(text);
	int n, fd;

	n = snprintf(tmp, sizeof(tmp), "%s.wtmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0)
		return -1;
	if (write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
		(void)close(fd);
		(void)unlink(tmp);
		return -1;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

char *
o365_test_slurp(const char *path, size_t *len_out)
{
	size_t len = 0, cap = 4096;
	char *buf, *nb;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if ((buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (cap - len < 2) {
			if ((nb = realloc(buf, cap * 2)) == NULL)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		if ((n = read(fd, buf + len, cap - len - 1)) < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
fail:
	free(buf);
	(void)close(fd);
	return NULL;
}

int
o365_test_memfile(const void *p, size_t n)
{
	int fd;

	if ((fd = memfd_create("msg", MFD_CLOEXEC)) == -1)
		return -1;
	if (write(fd, p, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

int
o365_test_count_lines(const char *path)
{
	char line[65536];
	int n = 0;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n++;
	(void)fclose(f);
	return n;
}

int
o365_test_mkcerts(const char *dir)
{
	char script[300], d[300];
	char *argv[] = { "/bin/bash", script, d, NULL };
	struct o365_proc p;
	int n, status;

	n = snprintf(d, sizeof(d), "%s", dir);
	if (n < 0 || (size_t)n >= sizeof(d) ||
	    o365_test_src("tests/fake/mkcerts.sh", script, sizeof(script)) == NULL)
		return -1;
	if (o365_proc_start(&p, argv, 0, 0) != 0)
		goto fail;
	if (o365_proc_wait(&p, 60000, &status) != 0) {
		(void)o365_proc_stop(&p, 500);
		goto fail;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "mkcerts.sh failed\n");
	return -1;
}

int
o365_test_fake_token_start(struct o365_proc *p, const char *pki_dir, const char *state_dir)
{
	char fake[300], cert[300], state[300];
	char *argv[] = { "/usr/bin/python3", fake, "--cert", cert, "--state", state,
	    "--lifetime", "300", NULL };
	int n;

	p->pid = -1;
	n = snprintf(cert, sizeof(cert), "%s/server", pki_dir);
	if (n < 0 || (size_t)n >= sizeof(cert))
		return -1;
	n = snprintf(state, sizeof(state), "%s", state_dir);
	if (n < 0 || (size_t)n >= sizeof(state) ||
	    o365_test_src("tests/fake/fake_token.py", fake, sizeof(fake)) == NULL)
		return -1;
	if (o365_proc_start(p, argv, 1, 20000) != 0) {
		fprintf(stderr, "fake_token.py did not start\n");
		p->pid = -1;
		return -1;
	}
	return 0;
}

int
o365_test_tcp_socket(int do_listen, unsigned int *port_out)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    (do_listen && listen(fd, 4) != 0) ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
		(void)close(fd);
		return -1;
	}
	*port_out = ntohs(sin.sin_port);
	return fd;
}

int
o365_test_have_ipv6_loopback(void)
{
	struct sockaddr_in6 s6;
	int fd, ok;

	if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
	(void)close(fd);
	return ok;
}
