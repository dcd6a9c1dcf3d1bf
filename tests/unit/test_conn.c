/* test_conn.c: connect, deadlines and the line reader against hostile peers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "o365/conn.h"
#include "o365/limits.h"
#include "fakeserver.h"
#include "spawn.h"
#include "testutil.h"

static struct o365_deadline
in_ms(unsigned int ms)
{
	struct o365_deadline dl;

	o365_deadline_in(&dl, ms);
	return dl;
}

static void
send_all(int fd, const char *s, size_t n)
{
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* A connection over a socketpair; *peer_out is the server end. */
static struct o365_conn *
pair_conn(int *peer_out)
{
	struct o365_error err;
	struct o365_conn *c;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(o365_conn_from_fd(sv[0], &c, &err), O365_OK);
	*peer_out = sv[1];
	return c;
}

/* Start the fake server (plain) and connect to it on host. */
static struct o365_conn *
fake_conn(struct o365_fake *f, const char *script, const char *host, const char *fake_host)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_conn *c = NULL;

	assert_int_equal(o365_fake_start(f, script, NULL, NULL, "none",
	    "--host", fake_host, "--lifetime", "30", (char *)NULL), 0);
	if (o365_conn_connect(host, (unsigned)f->port, &dl, NULL, &c, &err) != O365_OK) {
		o365_fake_stop(f);
		fail_msg("connect to %s port %d: %s", host, f->port, err.why);
	}
	return c;
}

static void
expect_getline(struct o365_conn *c, size_t limit, unsigned int ms, const char *want)
{
	struct o365_deadline dl = in_ms(ms);
	struct o365_error err;
	char *line;
	size_t len;
	int r;

	r = o365_conn_getline(c, limit, &line, &len, &dl, &err);
	if (r != O365_OK)
		fail_msg("getline: %d %s", r, err.why);
	assert_string_equal(line, want);
	assert_int_equal(len, strlen(want));
}

static int
getline_err(struct o365_conn *c, size_t limit, unsigned int ms, struct o365_error *err)
{
	struct o365_deadline dl = in_ms(ms);
	char *line;
	size_t len;

	o365_error_clear(err);
	return o365_conn_getline(c, limit, &line, &len, &dl, err);
}

/* --- connect --------------------------------------------------------- */

static void
connect_to_closed_port_is_net(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_conn *c = NULL;
	unsigned int port;
	int fd;

	(void)state;
	fd = o365_test_tcp_socket(0, &port);	/* bound, not listening: refused */
	assert_true(fd >= 0);
	assert_int_equal(o365_conn_connect("127.0.0.1", port, &dl, NULL, &c, &err), O365_E_NET);
	assert_null(c);
	assert_int_equal(err.code, O365_E_NET);
	assert_non_null(strstr(err.why, "refused"));
	close(fd);
}

static void
connect_refuses_bad_arguments(void **state)
{
	struct o365_deadline dl = in_ms(1000);
	struct o365_error err;
	struct o365_conn *c = NULL;

	(void)state;
	assert_int_equal(o365_conn_connect("", 143, &dl, NULL, &c, &err), O365_E_INVAL);
	assert_int_equal(o365_conn_connect("127.0.0.1", 0, &dl, NULL, &c, &err), O365_E_INVAL);
	assert_int_equal(o365_conn_connect("127.0.0.1", 65536, &dl, NULL, &c, &err), O365_E_INVAL);
	assert_null(c);
}

static void
silent_listener_times_out(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_conn *c = NULL;
	struct timespec t0;
	unsigned int port;
	long ms;
	int lfd;

	(void)state;
	lfd = o365_test_tcp_socket(1, &port);	/* the kernel accepts; nobody answers */
	assert_true(lfd >= 0);
	assert_int_equal(o365_conn_connect("127.0.0.1", port, &dl, NULL, &c, &err), O365_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(getline_err(c, 100, 300, &err), O365_E_TIMEOUT);
	ms = o365_elapsed_ms(&t0);
	assert_true(ms >= 250);		/* the deadline, not an early give-up */
	assert_true(ms < 10000);	/* generous bound */
	assert_int_equal(err.code, O365_E_TIMEOUT);
	o365_conn_close(&c);
	assert_null(c);
	close(lfd);
}

static void
ipv6_loopback_connects(void **state)
{
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	(void)state;
	if (!o365_test_have_ipv6_loopback())
		skip();
	c = fake_conn(&f, "S: * OK v6\n", "::1", "::1");
	expect_getline(c, 100, 5000, "* OK v6");
	o365_conn_close(&c);
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t, "EOF\n");
	free(t);
}

/* Would o365_conn_connect get an address of family af for host? */
static int
resolves_to(const char *host, int af)
{
	struct addrinfo hints, *res, *ai;
	int found = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = af;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;		/* as o365_conn_connect asks */
	if (getaddrinfo(host, "1", &hints, &res) != 0)
		return 0;
	for (ai = res; ai != NULL; ai = ai->ai_next)
		found |= ai->ai_family == af;
	freeaddrinfo(res);
	return found;
}

/*
 * "localhost" often resolves to ::1 and 127.0.0.1; whichever comes first, a
 * server on only one of them must still be reached.  Where localhost has
 * only one family (e.g. a container's /etc/hosts) only that half runs.
 */
static void
localhost_tries_every_address(void **state)
{
	const char *fams[] = { "127.0.0.1", "::1" };
	int afs[] = { AF_INET, AF_INET6 };
	struct o365_fake f;
	struct o365_conn *c;
	int i, ran = 0;
	char *t;

	(void)state;
	for (i = 0; i < 2; i++) {
		if (!resolves_to("localhost", afs[i]) || (afs[i] == AF_INET6 && !o365_test_have_ipv6_loopback()))
			continue;
		c = fake_conn(&f, "S: * OK here\n", "localhost", fams[i]);
		expect_getline(c, 100, 5000, "* OK here");
		o365_conn_close(&c);
		t = o365_fake_finish(&f, 5000);
		assert_non_null(t);
		assert_string_equal(t, "EOF\n");
		free(t);
		ran++;
	}
	assert_true(ran > 0);
	if (ran == 1)
		print_message("note: localhost has one address family here; "
		    "the fallback half of this test did not run\n");
}

/* Where Debian puts nss_wrapper (libnss-wrapper), or NULL. */
static const char *
nss_wrapper_path(void)
{
	static const char *const paths[] = {
		"/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
		"/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
		"/usr/lib64/libnss_wrapper.so",
		"/usr/lib/libnss_wrapper.so",
	};
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], R_OK) == 0)
			return paths[i];
	return NULL;
}

static void
count_attempts(void *ctx, int prio, const char *msg)
{
	(void)prio;
	if (strncmp(msg, "connecting to ", 14) == 0)
		++*(int *)ctx;
}

/*
 * Child mode (run under nss_wrapper): connect to host:port, read one line.
 * Exit status: the number of addresses tried on success, 100 on failure.
 */
static int
connect_child(const char *host, const char *port)
{
	struct o365_deadline dl = in_ms(10000);
	int attempts = 0;
	struct o365_log lg = { count_attempts, &attempts, 1 };
	struct o365_error err;
	struct o365_conn *c = NULL;
	char *line;
	size_t len;
	int ok;

	ok = o365_conn_connect(host, (unsigned)strtoul(port, NULL, 10), &dl, &lg, &c,
	    &err) == O365_OK &&
	    o365_conn_getline(c, 100, &line, &len, &dl, &err) == O365_OK &&
	    strcmp(line, "* OK multi") == 0;
	if (!ok)
		fprintf(stderr, "connect_child: %s\n", err.why);
	o365_conn_close(&c);
	return ok ? attempts : 100;
}

/*
 * A name with three addresses, ::1 and 127.0.0.2 first (both refuse), the
 * listener on 127.0.0.1 last: every address must be tried in turn.  Needs
 * nss_wrapper (libnss-wrapper) to give the name its addresses.
 */
static void
every_address_is_tried_until_one_answers(void **state)
{
	char hosts[300], self[300], port[16];
	char *argv[] = { self, "--connect-child", "multi.test", port, NULL };
	const char *nssw = nss_wrapper_path();
	struct o365_proc p;
	struct o365_fake f;
	char *t;
	ssize_t n;
	int status;
	FILE *fp;

	(void)state;
	if (nssw == NULL) {
		print_message("note: libnss-wrapper not installed; skipped\n");
		skip();
	}
	assert_true((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0);
	self[n] = '\0';
	assert_int_equal(o365_fake_start(&f, "S: * OK multi\n", NULL, NULL, "none",
	    "--lifetime", "30", (char *)NULL), 0);
	assert_true((size_t)snprintf(hosts, sizeof(hosts), "%s/hosts", f.dir) < sizeof(hosts));
	assert_non_null(fp = fopen(hosts, "w"));
	fprintf(fp, "%s127.0.0.2 multi.test\n127.0.0.1 multi.test\n",
	    o365_test_have_ipv6_loopback() ? "::1 multi.test\n" : "");
	assert_int_equal(fclose(fp), 0);
	snprintf(port, sizeof(port), "%d", f.port);
	/* only the child sees these */
	assert_int_equal(setenv("LD_PRELOAD", nssw, 1), 0);
	assert_int_equal(setenv("NSS_WRAPPER_HOSTS", hosts, 1), 0);
	assert_int_equal(setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 0), 0);
	assert_int_equal(o365_proc_start(&p, argv, 0, 0), 0);
	unsetenv("LD_PRELOAD");
	unsetenv("NSS_WRAPPER_HOSTS");
	assert_int_equal(o365_proc_wait(&p, 20000, &status), 0);
	assert_true(WIFEXITED(status));
	/* 127.0.0.2, then 127.0.0.1; ::1 first unless AI_ADDRCONFIG dropped it */
	assert_in_range(WEXITSTATUS(status), 2, o365_test_have_ipv6_loopback() ? 3 : 2);
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t, "EOF\n");
	free(t);
}

/* --- the line reader --------------------------------------------------- */

static void
line_at_limit_passes_one_over_is_toolong(void **state)
{
	struct o365_error err;
	struct o365_conn *c;
	char big[1004];
	int peer;

	(void)state;
	c = pair_conn(&peer);
	memset(big, 'a', 1000);
	memcpy(big + 1000, "\r\n", 2);
	send_all(peer, big, 1002);		/* 1000 bytes: at the limit */
	memset(big, 'b', 1001);
	memcpy(big + 1001, "\r\n", 2);
	send_all(peer, big, 1003);		/* 1001 bytes */
	big[1000] = '\0';
	memset(big, 'a', 1000);
	expect_getline(c, 1000, 2000, big);
	assert_int_equal(getline_err(c, 1000, 2000, &err), O365_E_TOOLONG);
	assert_non_null(strstr(err.why, "longer than 1000"));
	o365_conn_close(&c);
	close(peer);
}

static void
long_line_from_server_is_toolong(void **state)
{
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	(void)state;
	c = fake_conn(&f, "S: * OK hi\nlongline 100000\nstall\n", "127.0.0.1", "127.0.0.1");
	expect_getline(c, O365_MAX_IMAP_LINE, 5000, "* OK hi");
	assert_int_equal(getline_err(c, O365_MAX_IMAP_LINE, 5000, &err), O365_E_TOOLONG);
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

static void
nul_byte_and_bare_lf_are_proto(void **state)
{
	struct o365_error err;
	struct o365_conn *c;
	int peer;

	(void)state;
	c = pair_conn(&peer);
	send_all(peer, "* OK a\0b\r\n", 10);
	assert_int_equal(getline_err(c, 100, 2000, &err), O365_E_PROTO);
	assert_non_null(strstr(err.why, "NUL"));
	o365_conn_close(&c);
	close(peer);

	c = pair_conn(&peer);
	send_all(peer, "* OK bare\n", 10);
	assert_int_equal(getline_err(c, 100, 2000, &err), O365_E_PROTO);
	assert_non_null(strstr(err.why, "bare LF"));
	o365_conn_close(&c);
	close(peer);
}

static void
garbage_from_server_is_proto(void **state)
{
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	(void)state;
	c = fake_conn(&f, "garbage 64\nstall\n", "127.0.0.1", "127.0.0.1");
	assert_int_equal(getline_err(c, 1000, 5000, &err), O365_E_PROTO);
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

static void
close_mid_line_is_net(void **state)
{
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	(void)state;
	c = fake_conn(&f, "S: 220-first\nS+ 220 half a li\nclose\n", "127.0.0.1", "127.0.0.1");
	expect_getline(c, 1000, 5000, "220-first");
	assert_int_equal(getline_err(c, 1000, 5000, &err), O365_E_NET);
	assert_non_null(strstr(err.why, "closed by server"));
	/* and it stays closed */
	assert_int_equal(getline_err(c, 1000, 5000, &err), O365_E_NET);
	o365_conn_close(&c);
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t, "");
	free(t);
}

/* One deadline for the whole line: a byte every 50 ms never resets it. */
static void
trickled_line_times_out_on_one_deadline(void **state)
{
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	struct timespec t0;
	long ms;

	(void)state;
	c = fake_conn(&f, "trickle 50 * OK this greeting arrives one byte at a time, far too slowly\n",
	    "127.0.0.1", "127.0.0.1");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* the line needs ~3.6 s; each byte comes within 50 ms of the last */
	assert_int_equal(getline_err(c, 1000, 1000, &err), O365_E_TIMEOUT);
	ms = o365_elapsed_ms(&t0);
	assert_true(ms >= 900);
	assert_true(ms < 3000);
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

static void
read_takes_exact_counts_after_lines(void **state)
{
	struct o365_deadline dl = in_ms(2000);
	struct o365_error err;
	struct o365_conn *c;
	char buf[8];
	int peer;

	(void)state;
	c = pair_conn(&peer);
	send_all(peer, "* 1 FETCH {5}\r\nhelloXYZ)\r\n", 26);
	expect_getline(c, 100, 2000, "* 1 FETCH {5}");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(o365_conn_read(c, buf, 5, &dl, &err), O365_OK);
	assert_string_equal(buf, "hello");
	assert_int_equal(o365_conn_read(c, NULL, 3, &dl, &err), O365_OK);	/* discard */
	expect_getline(c, 100, 2000, ")");
	assert_int_equal(o365_conn_pending(c), 0);
	close(peer);
	assert_int_equal(o365_conn_read(c, buf, 1, &dl, &err), O365_E_NET);
	o365_conn_close(&c);
}

/* --- writes ------------------------------------------------------------ */

/* SIGPIPE stays at SIG_DFL here: a plain write() would kill the test. */
static void
write_to_closed_peer_is_net_without_sigpipe(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char chunk[16384], *t;
	int peer, i, r = O365_OK;

	(void)state;
	assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	c = pair_conn(&peer);
	close(peer);
	assert_int_equal(o365_conn_write(c, "A1 NOOP\r\n", 9, &dl, &err), O365_E_NET);
	assert_non_null(strstr(err.why, "write"));
	o365_conn_close(&c);

	/* over TCP the first write may still succeed; keep writing */
	c = fake_conn(&f, "close\n", "127.0.0.1", "127.0.0.1");
	t = o365_fake_finish(&f, 5000);	/* it has hung up */
	assert_non_null(t);
	free(t);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 200 && r == O365_OK; i++)
		r = o365_conn_write(c, chunk, sizeof(chunk), &dl, &err);
	assert_int_equal(r, O365_E_NET);
	o365_conn_close(&c);
}

static void
write_reaches_the_server_exactly(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	static const char sent[] = "A1 LOGIN \"a\\\\b\" x\r\nA2 NOOP\nA3 \x01tail";
	char *t;

	(void)state;
	c = fake_conn(&f, "S: * OK hi\nC: A1 LOGIN \"a\\\\b\" x\nC? anything\n", "127.0.0.1",
	    "127.0.0.1");
	expect_getline(c, 100, 5000, "* OK hi");
	assert_int_equal(o365_conn_write(c, sent, sizeof(sent) - 1, &dl, &err), O365_OK);
	o365_conn_close(&c);
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t,
	    "C: A1 LOGIN \"a\\x5c\\x5cb\" x\n"
	    "C: A2 NOOP\\x0a\n"
	    "C+ A3 \\x01tail\n"
	    "EOF\n");
	free(t);
}

static void
transcript_records_a_mismatch(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	(void)state;
	c = fake_conn(&f, "C: EHLO client.example\nS: 250 ok\n", "127.0.0.1", "127.0.0.1");
	assert_int_equal(o365_conn_write(c, "HELO x\r\n", 8, &dl, &err), O365_OK);
	/* the server hangs up instead of answering */
	assert_int_equal(getline_err(c, 100, 5000, &err), O365_E_NET);
	o365_conn_close(&c);
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t, "C: HELO x\nMISMATCH expected: EHLO client.example\n");
	free(t);
}

/* "inject" shares the write of the previous S: line, so one read sees both. */
static void
injected_line_arrives_with_the_reply(void **state)
{
	struct o365_fake f;
	struct o365_conn *c;

	(void)state;
	c = fake_conn(&f, "S: 220 go ahead\ninject A002 OK fake\nstall\n", "127.0.0.1",
	    "127.0.0.1");
	expect_getline(c, 100, 5000, "220 go ahead");
	assert_int_equal(o365_conn_pending(c), strlen("A002 OK fake\r\n"));
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

static void
fake_serves_several_connections(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;
	int i;

	(void)state;
	assert_int_equal(o365_fake_start(&f, "S: * OK\nC? \n", NULL, NULL, NULL,
	    "--connections", "2", (char *)NULL), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(o365_conn_connect("127.0.0.1", (unsigned)f.port, &dl, NULL, &c,
		    &err), O365_OK);
		expect_getline(c, 100, 5000, "* OK");
		assert_int_equal(o365_conn_write(c, i ? "two\r\n" : "one\r\n", 5, &dl, &err),
		    O365_OK);
		o365_conn_close(&c);
	}
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t, "C: one\nEOF\nNEXT\nC: two\nEOF\n");
	free(t);
}

/* The less common steps: raw escapes, repeat, C~ regex, sleep, S+. */
static void
fake_script_steps_behave(void **state)
{
	struct o365_deadline dl = in_ms(5000);
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	(void)state;
	c = fake_conn(&f,
	    "raw * OK a\\x41\\\\b\\r\\n\n"
	    "repeat 3 * r\n"
	    "C~ A[0-9]+ LOGIN .*\n"
	    "sleep 10\n"
	    "S+ A1 OK \n"
	    "S: done\n"
	    "C? whatever\n"
	    "close\n", "127.0.0.1", "127.0.0.1");
	expect_getline(c, 100, 5000, "* OK aA\\b");
	expect_getline(c, 100, 5000, "* r");
	expect_getline(c, 100, 5000, "* r");
	expect_getline(c, 100, 5000, "* r");
	assert_int_equal(o365_conn_write(c, "A17 LOGIN u p\r\n", 15, &dl, &err), O365_OK);
	expect_getline(c, 100, 5000, "A1 OK done");
	assert_int_equal(o365_conn_write(c, "x\r\n", 3, &dl, &err), O365_OK);
	assert_int_equal(getline_err(c, 100, 5000, &err), O365_E_NET);
	o365_conn_close(&c);
	t = o365_fake_finish(&f, 5000);
	assert_non_null(t);
	assert_string_equal(t, "C: A17 LOGIN u p\nC: x\n");
	free(t);
}

static char *
read_text(const char *path)
{
	static char buf[16384];
	size_t n;
	FILE *fp;

	assert_non_null(fp = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	assert_true(n > 0 && n < sizeof(buf) - 1);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* The greeting-level scenarios fail the way their comment says. */
static void
scenarios_fail_as_catalogued(void **state)
{
	static const struct {
		const char *name;
		int skip_lines, want;
	} cases[] = {
		{ "imap-long-line", 1, O365_E_TOOLONG },
		{ "imap-never-answers", 0, O365_E_TIMEOUT },
		{ "imap-trickle-greeting", 0, O365_E_TIMEOUT },
		{ "imap-garbage", 0, O365_E_PROTO },
		{ "imap-nul-in-greeting", 0, O365_E_PROTO },
		{ "imap-bare-lf", 0, O365_E_PROTO },
		{ "imap-bye-greeting", 1, O365_E_NET },
		{ "smtp-never-answers", 0, O365_E_TIMEOUT },
	};
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char rel[128], path[300];
	size_t i;
	int k, r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(rel, sizeof(rel), "tests/fake/scenarios/%s.txt", cases[i].name);
		assert_non_null(o365_test_src(rel, path, sizeof(path)));
		c = fake_conn(&f, read_text(path), "127.0.0.1", "127.0.0.1");
		for (k = 0; k < cases[i].skip_lines; k++)
			assert_int_equal(getline_err(c, O365_MAX_IMAP_LINE, 5000, &err), O365_OK);
		r = getline_err(c, O365_MAX_IMAP_LINE, 700, &err);
		if (r != cases[i].want)
			fail_msg("%s: got %d (%s), wanted %d", cases[i].name, r, err.why,
			    cases[i].want);
		o365_conn_close(&c);
		o365_fake_stop(&f);
	}
}

/* Every catalogued hostile scenario must at least parse. */
static void
scenario_catalogue_parses(void **state)
{
	char dir[300], path[600], server[300];
	char *argv[] = { "/usr/bin/python3", server, "--check", "--script", path, NULL };
	struct o365_proc p;
	struct dirent *de;
	DIR *d;
	int status, n = 0;

	(void)state;
	assert_non_null(o365_test_src("tests/fake/scenarios", dir, sizeof(dir)));
	assert_non_null(o365_test_src("tests/fake/fakeserver.py", server, sizeof(server)));
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 5 || strcmp(de->d_name + len - 4, ".txt") != 0)
			continue;
		assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
		    sizeof(path));
		assert_int_equal(o365_proc_start(&p, argv, 0, 0), 0);
		assert_int_equal(o365_proc_wait(&p, 10000, &status), 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("scenario %s does not parse", de->d_name);
		n++;
	}
	closedir(d);
	assert_true(n >= 8);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(connect_to_closed_port_is_net),
		cmocka_unit_test(connect_refuses_bad_arguments),
		cmocka_unit_test(silent_listener_times_out),
		cmocka_unit_test(ipv6_loopback_connects),
		cmocka_unit_test(localhost_tries_every_address),
		cmocka_unit_test(every_address_is_tried_until_one_answers),
		cmocka_unit_test(line_at_limit_passes_one_over_is_toolong),
		cmocka_unit_test(long_line_from_server_is_toolong),
		cmocka_unit_test(nul_byte_and_bare_lf_are_proto),
		cmocka_unit_test(garbage_from_server_is_proto),
		cmocka_unit_test(close_mid_line_is_net),
		cmocka_unit_test(trickled_line_times_out_on_one_deadline),
		cmocka_unit_test(read_takes_exact_counts_after_lines),
		cmocka_unit_test(write_to_closed_peer_is_net_without_sigpipe),
		cmocka_unit_test(write_reaches_the_server_exactly),
		cmocka_unit_test(transcript_records_a_mismatch),
		cmocka_unit_test(injected_line_arrives_with_the_reply),
		cmocka_unit_test(fake_serves_several_connections),
		cmocka_unit_test(fake_script_steps_behave),
		cmocka_unit_test(scenarios_fail_as_catalogued),
		cmocka_unit_test(scenario_catalogue_parses),
	};

	if (argc == 4 && strcmp(argv[1], "--connect-child") == 0)
		return connect_child(argv[2], argv[3]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
