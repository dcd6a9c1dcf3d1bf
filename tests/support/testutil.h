/*
 * testutil.h: small pieces many unit tests share: a log sink that keeps
 * every line, path joining, atomic file writes, the test PKI and
 * tests/fake/fake_token.py.  Nothing here depends on cmocka.
 */
#ifndef O365_TEST_TESTUTIL_H
#define O365_TEST_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "spawn.h"

/*
 * A log sink (struct o365_log .fn, .ctx = a struct o365_test_capture) that
 * keeps every line, each followed by '\n'; text stays NUL-terminated.  A line
 * that does not fit is not kept and counted in dropped.  The struct is large:
 * make it static or calloc it.
 */
struct o365_test_capture {
	char	text[1 << 20];
	size_t	len;
	int	lines;
	int	dropped;
};

void	o365_test_capture_sink(void *ctx, int prio, const char *msg);

/* dst = a "/" b; aborts the test program when it does not fit. */
void	o365_test_path_join(char *dst, size_t size, const char *a, const char *b);

/*
 * Write text to path through a temp file and rename(2), so that a fake server
 * polling the file never reads half of it.  Returns 0 or -1.
 */
int	o365_test_write_file(const char *path, const char *text, mode_t mode);

/*
 * The whole of file path, NUL-terminated, in a malloc'd buffer (the caller
 * frees it); *len_out (if not NULL) gets its length.  NULL if it cannot be
 * read.
 */
char	*o365_test_slurp(const char *path, size_t *len_out);

/* A close-on-exec memfd holding p[0..n), at offset 0: the fd, or -1. */
int	o365_test_memfile(const void *p, size_t n);

/*
 * How many lines path holds (0 when it does not exist), as fgets(3) with a
 * 64 KiB buffer reads them: fake servers append one line per request.
 */
int	o365_test_count_lines(const char *path);

/* Run tests/fake/mkcerts.sh dir (dir may exist or not).  Returns 0 or -1. */
int	o365_test_mkcerts(const char *dir);

/*
 * Start tests/fake/fake_token.py with the certificate pki_dir/server.* and
 * the state dir state_dir (users.json etc.), lifetime 300 s; p->port is set.
 * Returns 0, or -1 (nothing running, a line on stderr).
 */
int	o365_test_fake_token_start(struct o365_proc *p, const char *pki_dir,
	    const char *state_dir);

/*
 * A TCP socket bound to 127.0.0.1 on an ephemeral port (*port_out), listening
 * (backlog 4) when do_listen is set, close-on-exec.  The fd, or -1.
 */
int	o365_test_tcp_socket(int do_listen, unsigned int *port_out);

/* Whether this host can bind ::1 (IPv6 tests are skipped without it). */
int	o365_test_have_ipv6_loopback(void);

#endif
