/*
 * test_smtp.c: the SMTP client's parsers (table-driven) and its protocol flows
 * against a scripted server thread on a socketpair, checking the exact bytes
 * the client sends.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "o365/conn.h"
#include "o365/sasl.h"
#include "o365/smtp.h"
#include "../../common/smtp_int.h"
#include "testutil.h"

/* ---- scripted server ----------------------------------------------------- */

#define MAX_STEPS	64
#define SRV_WAIT_MS	10000	/* generous: only a broken test waits this long */

enum { ACT_NONE, ACT_CLOSE, ACT_STALL };

struct step {
	unsigned char	*expect;	/* what the client must send next (may be NULL) */
	size_t		 elen;
	unsigned char	*send;		/* then what the server sends */
	size_t		 slen;
	int		 action;
};

struct server {
	int		 fd, cfd;
	pthread_t	 th;
	struct step	 steps[MAX_STEPS];
	size_t		 nsteps;
	unsigned char	*got;		/* everything the client sent */
	size_t		 glen, gcap, used;
	char		 failure[600];
};

static unsigned char *
dupmem(const void *p, size_t n)
{
	unsigned char *d = malloc(n + 1);

	assert_non_null(d);
	if (n > 0)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static void
srv_step_n(struct server *sv, const void *c, size_t cn, const void *s, size_t sn, int action)
{
	struct step *st;

	assert_true(sv->nsteps < MAX_STEPS);
	st = &sv->steps[sv->nsteps++];
	st->expect = c != NULL ? dupmem(c, cn) : NULL;
	st->elen = c != NULL ? cn : 0;
	st->send = s != NULL ? dupmem(s, sn) : NULL;
	st->slen = s != NULL ? sn : 0;
	st->action = action;
}

/* The client must send c (NULL: nothing), then the server answers s. */
static void
srv_step(struct server *sv, const char *c, const char *s)
{
	srv_step_n(sv, c, c ? strlen(c) : 0, s, s ? strlen(s) : 0, ACT_NONE);
}

/* Receive more bytes; 0 on EOF or timeout. */
static int
srv_recv(struct server *sv)
{
	struct pollfd pfd = { sv->fd, POLLIN, 0 };
	ssize_t n;

	if (poll(&pfd, 1, SRV_WAIT_MS) <= 0)
		return 0;
	if (sv->glen + 65536 > sv->gcap) {
		sv->gcap = (sv->gcap + 65536) * 2;
		sv->got = realloc(sv->got, sv->gcap);
		if (sv->got == NULL)
			abort();
	}
	n = read(sv->fd, sv->got + sv->glen, 65536);
	if (n <= 0)
		return 0;
	sv->glen += (size_t)n;
	return 1;
}

static void
srv_fail(struct server *sv, const char *fmt, ...) O365_PRINTF(2, 3);

static void
srv_fail(struct server *sv, const char *fmt, ...)
{
	va_list ap;

	if (sv->failure[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(sv->failure, sizeof(sv->failure), fmt, ap);
	va_end(ap);
}

static void *
srv_main(void *arg)
{
	struct server *sv = arg;
	size_t i;

	for (i = 0; i < sv->nsteps; i++) {
		struct step *st = &sv->steps[i];

		while (sv->glen - sv->used < st->elen)
			if (!srv_recv(sv))
				break;
		if (sv->glen - sv->used < st->elen) {
			srv_fail(sv, "step %zu: client sent %zu of %zu bytes: \"%.*s\" expected \"%.*s\"",
			    i, sv->glen - sv->used, st->elen, (int)(sv->glen - sv->used > 200 ? 200 :
			    sv->glen - sv->used), sv->got + sv->used, (int)(st->elen > 200 ? 200 :
			    st->elen), st->expect);
			goto out;
		}
		if (st->elen > 0 && memcmp(sv->got + sv->used, st->expect, st->elen) != 0) {
			size_t k = 0;

			while (sv->got[sv->used + k] == st->expect[k])
				k++;
			srv_fail(sv, "step %zu: bytes differ at offset %zu: got \"%.*s\" expected \"%.*s\"",
			    i, k, (int)(st->elen - k > 120 ? 120 : st->elen - k), sv->got + sv->used + k,
			    (int)(st->elen - k > 120 ? 120 : st->elen - k), st->expect + k);
			goto out;
		}
		sv->used += st->elen;
		/* the client must wait for our reply before it sends more */
		if (sv->glen > sv->used) {
			srv_fail(sv, "step %zu: client sent ahead: \"%.*s\"", i,
			    (int)(sv->glen - sv->used > 200 ? 200 : sv->glen - sv->used),
			    sv->got + sv->used);
			goto out;
		}
		if (st->slen > 0 && write(sv->fd, st->send, st->slen) != (ssize_t)st->slen) {
			srv_fail(sv, "step %zu: write failed", i);
			goto out;
		}
		if (st->action == ACT_CLOSE)
			goto out;
		if (st->action == ACT_STALL)
			break;
	}
	/* then record whatever else comes until the client closes */
	while (srv_recv(sv))
		;
	if (i == sv->nsteps && sv->glen > sv->used)
		srv_fail(sv, "client sent more than the script: \"%.*s\"",
		    (int)(sv->glen - sv->used > 200 ? 200 : sv->glen - sv->used), sv->got + sv->used);
out:
	close(sv->fd);
	sv->fd = -1;
	return NULL;
}

static struct server *
srv_new(void)
{
	struct server *sv = calloc(1, sizeof(*sv));
	int sp[2];

	assert_non_null(sv);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	sv->fd = sp[0];
	sv->cfd = sp[1];
	return sv;
}

static void
srv_run(struct server *sv)
{
	assert_int_equal(pthread_create(&sv->th, NULL, srv_main, sv), 0);
}

/* Join the thread (the client side must be closed by now) and check it. */
static void
srv_done(struct server *sv, int expect_ok)
{
	size_t i;

	if (sv->cfd != -1)
		close(sv->cfd);
	assert_int_equal(pthread_join(sv->th, NULL), 0);
	if (expect_ok && sv->failure[0] != '\0')
		fail_msg("server script: %s", sv->failure);
	for (i = 0; i < sv->nsteps; i++) {
		free(sv->steps[i].expect);
		free(sv->steps[i].send);
	}
	free(sv->got);
	free(sv);
}

/* Bytes the client sent, NUL-terminated (for strstr). */
static const char *
srv_transcript(struct server *sv)
{
	if (sv->got == NULL)
		return "";
	sv->got[sv->glen < sv->gcap ? sv->glen : sv->gcap - 1] = '\0';
	return (const char *)sv->got;
}

/* ---- log capture --------------------------------------------------------- */

/* ---- session helpers ----------------------------------------------------- */

static const char *GREETING = "220 test.example ESMTP ready\r\n";
static const char *EHLO = "EHLO client.example\r\n";
static const char *EHLO_ALL =
    "250-test.example Hello\r\n"
    "250-SIZE 157286400\r\n"
    "250-PIPELINING\r\n"
    "250-DSN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-AUTH PLAIN LOGIN XOAUTH2\r\n"
    "250-8BITMIME\r\n"
    "250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";
static const char *EHLO_NOPIPE =
    "250-test.example Hello\r\n"
    "250-AUTH LOGIN PLAIN\r\n"
    "250 8BITMIME\r\n";

static void
srv_hello(struct server *sv, const char *ehlo_reply)
{
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, ehlo_reply);
}

static void
srv_quit(struct server *sv)
{
	srv_step(sv, "QUIT\r\n", "221 2.0.0 bye\r\n");
}

static int
open_session(struct server *sv, unsigned flags, enum o365_smtp_tls_mode mode,
    const struct o365_log *lg, unsigned ms, struct o365_smtp **out, struct o365_error *err)
{
	struct o365_smtp_opts o = { "test.example", 587, mode, NULL, "client.example" };
	struct o365_deadline dl;
	struct o365_conn *c = NULL;
	int r;

	r = o365_conn_from_fd(sv->cfd, &c, err);
	sv->cfd = -1;
	assert_int_equal(r, O365_OK);
	o365_deadline_in(&dl, ms);
	return smtp_open_conn(c, &o, flags, &dl, lg, out, err);
}

/* A session with TLS assumed, after greeting and EHLO; the script continues. */
static struct o365_smtp *
session(struct server *sv, const struct o365_log *lg)
{
	struct o365_smtp *s = NULL;
	struct o365_error err;

	srv_run(sv);
	if (open_session(sv, SMTP_TEST_ASSUME_TLS, O365_SMTP_STARTTLS, lg, 5000, &s, &err) != O365_OK)
		fail_msg("session: %s", err.why);
	return s;
}

static void
dl_in(struct o365_deadline *dl, unsigned ms)
{
	o365_deadline_in(dl, ms);
}

static void
quit(struct o365_smtp **s)
{
	struct o365_deadline dl;

	dl_in(&dl, 5000);
	o365_smtp_quit(s, &dl);
	assert_null(*s);
}

/* ---- parser tables ------------------------------------------------------- */

static void
reply_line_table(void **state)
{
	static const struct {
		const char *line;
		int r, code, more;
		const char *text;
	} t[] = {
		{ "250 OK", O365_OK, 250, 0, "OK" },
		{ "250-PIPELINING", O365_OK, 250, 1, "PIPELINING" },
		{ "250", O365_OK, 250, 0, "" },
		{ "250-", O365_OK, 250, 1, "" },
		{ "220 host\tESMTP", O365_OK, 220, 0, "host\tESMTP" },
		{ "554 5.2.252 SendAsDenied; x", O365_OK, 554, 0, "5.2.252 SendAsDenied; x" },
		{ "334 ", O365_OK, 334, 0, "" },
		{ "559 x", O365_OK, 559, 0, "x" },
		{ "599 x", O365_E_PROTO, 0, 0, NULL },
		{ "200 caf\xc3\xa9", O365_OK, 200, 0, "caf\xc3\xa9" },
		{ "", O365_E_PROTO, 0, 0, NULL },
		{ "25", O365_E_PROTO, 0, 0, NULL },
		{ "2500 x", O365_E_PROTO, 0, 0, NULL },
		{ "25x ok", O365_E_PROTO, 0, 0, NULL },
		{ "150 ok", O365_E_PROTO, 0, 0, NULL },
		{ "650 ok", O365_E_PROTO, 0, 0, NULL },
		{ "260 ok", O365_E_PROTO, 0, 0, NULL },
		{ "250_ok", O365_E_PROTO, 0, 0, NULL },
		{ "250 a\rb", O365_E_PROTO, 0, 0, NULL },
		{ "250 a\x1b[2Jb", O365_E_PROTO, 0, 0, NULL },
		{ "250 a\x7f", O365_E_PROTO, 0, 0, NULL },
		{ " 250 ok", O365_E_PROTO, 0, 0, NULL },
		{ "HTTP/1.1 400 Bad Request", O365_E_PROTO, 0, 0, NULL },
	};
	const char *text;
	int code, more;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		code = more = -1;
		text = NULL;
		if (o365_smtp_parse_reply_line(t[i].line, strlen(t[i].line), &code, &more, &text) !=
		    t[i].r)
			fail_msg("line %zu \"%s\": wrong result", i, t[i].line);
		if (t[i].r != O365_OK)
			continue;
		assert_int_equal(code, t[i].code);
		assert_int_equal(more, t[i].more);
		assert_string_equal(text, t[i].text);
	}
	/* a NUL inside the line (len counts it) */
	assert_int_equal(o365_smtp_parse_reply_line("250 a\0b", 7, &code, &more, &text),
	    O365_E_PROTO);
}

static void
enhanced_table(void **state)
{
	static const struct {
		const char *text;
		size_t n;
		const char *code;
	} t[] = {
		{ "5.7.139 Authentication unsuccessful", 8, "5.7.139" },
		{ "2.0.0 OK", 6, "2.0.0" },
		{ "4.3.2", 5, "4.3.2" },
		{ "5.2.252 SendAsDenied;", 8, "5.2.252" },
		{ "5.999.999  two", 11, "5.999.999" },
		{ "4.0.0\tx", 6, "4.0.0" },
		{ "5.1000.1 x", 0, "" },
		{ "5.1.1000 x", 0, "" },
		{ "3.0.0 x", 0, "" },
		{ "6.0.0 x", 0, "" },
		{ "5..1 x", 0, "" },
		{ "5.1. x", 0, "" },
		{ "5.1 x", 0, "" },
		{ "5.1.1x", 0, "" },
		{ "OK", 0, "" },
		{ "", 0, "" },
	};
	char out[12];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memcpy(out, "garbage", 8);
		if (o365_smtp_parse_enhanced(t[i].text, out) != t[i].n)
			fail_msg("\"%s\": wrong length", t[i].text);
		assert_string_equal(out, t[i].code);
	}
}

static void
ehlo_table(void **state)
{
	struct o365_smtp_caps c;

	(void)state;
	/* Exchange Online before TLS (EXCHANGE-ONLINE.md) */
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("SIZE 157286400", &c);
	o365_smtp_parse_ehlo_line("PIPELINING", &c);
	o365_smtp_parse_ehlo_line("DSN", &c);
	o365_smtp_parse_ehlo_line("ENHANCEDSTATUSCODES", &c);
	o365_smtp_parse_ehlo_line("STARTTLS", &c);
	o365_smtp_parse_ehlo_line("8BITMIME", &c);
	o365_smtp_parse_ehlo_line("BINARYMIME", &c);
	o365_smtp_parse_ehlo_line("CHUNKING", &c);
	o365_smtp_parse_ehlo_line("SMTPUTF8", &c);
	assert_true(c.size_given && c.size == 157286400UL);
	assert_true(c.pipelining && c.dsn && c.enhanced && c.starttls && c.eightbitmime &&
	    c.chunking && c.smtputf8);
	assert_int_equal(c.auth, 0);

	/* after TLS: AUTH LOGIN XOAUTH2, no STARTTLS */
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("AUTH LOGIN XOAUTH2", &c);
	assert_int_equal(c.auth, O365_SASL_LOGIN | O365_SASL_XOAUTH2);
	assert_false(c.starttls);

	/* the old form, lower case, repeated lines add up */
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("AUTH=LOGIN PLAIN", &c);
	assert_int_equal(c.auth, O365_SASL_LOGIN | O365_SASL_PLAIN);
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("auth cram-md5 plain", &c);
	o365_smtp_parse_ehlo_line("Auth=xoauth2", &c);
	assert_int_equal(c.auth, O365_SASL_PLAIN | O365_SASL_XOAUTH2);
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("starttls", &c);
	o365_smtp_parse_ehlo_line("Pipelining", &c);
	assert_true(c.starttls && c.pipelining);

	/* SIZE: none, too big, malformed */
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("SIZE", &c);
	assert_true(c.size_given);
	assert_int_equal(c.size, 0);
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("SIZE 99999999999999999999999", &c);
	o365_smtp_parse_ehlo_line("SIZE -5", &c);
	o365_smtp_parse_ehlo_line("SIZE 12x", &c);
	assert_false(c.size_given);

	/* near misses are not keywords */
	memset(&c, 0, sizeof(c));
	o365_smtp_parse_ehlo_line("STARTTLSX", &c);
	o365_smtp_parse_ehlo_line("XSTARTTLS", &c);
	o365_smtp_parse_ehlo_line("STARTTLS=1", &c);
	o365_smtp_parse_ehlo_line(" STARTTLS", &c);
	o365_smtp_parse_ehlo_line("PIPELINING=yes", &c);
	o365_smtp_parse_ehlo_line("AUTHX PLAIN", &c);
	o365_smtp_parse_ehlo_line("X-AUTH PLAIN", &c);
	o365_smtp_parse_ehlo_line("AUTH PLAINX LOGIN2", &c);
	o365_smtp_parse_ehlo_line("", &c);
	assert_false(c.starttls || c.pipelining);
	assert_int_equal(c.auth, 0);
}

/* ---- connect, greeting, EHLO --------------------------------------------- */

static void
connect_reads_caps(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s;
	const struct o365_smtp_caps *c;

	(void)state;
	srv_step(sv, NULL, "220-test.example Microsoft ESMTP MAIL Service ready\r\n220 second\r\n");
	srv_step(sv, EHLO, "250-test.example Hello [127.0.0.1]\r\n"
	    "250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n"
	    "250-AUTH LOGIN XOAUTH2\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n"
	    "250 SMTPUTF8\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	c = o365_smtp_caps(s);
	assert_true(c->pipelining && c->enhanced && c->eightbitmime && c->smtputf8 && c->dsn &&
	    c->chunking);
	assert_int_equal(c->auth, O365_SASL_LOGIN | O365_SASL_XOAUTH2);
	assert_int_equal(c->size, 157286400UL);
	assert_non_null(o365_smtp_conn(s));
	assert_int_equal(o365_smtp_last_reply(s)->code, 250);
	quit(&s);
	srv_done(sv, 1);
}

static void
helo_fallback_when_tls_is_up(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s;

	(void)state;
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, "502 5.5.1 command not implemented\r\n");
	srv_step(sv, "HELO client.example\r\n", "250 test.example\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	assert_int_equal(o365_smtp_caps(s)->auth, 0);
	quit(&s);
	srv_done(sv, 1);
}

static void
no_helo_fallback_without_tls(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, "500 5.5.1 what?\r\n");
	srv_quit(sv);
	srv_run(sv);
	assert_int_equal(open_session(sv, 0, O365_SMTP_STARTTLS, NULL, 5000, &s, &err), O365_E_TLS);
	assert_null(s);
	srv_done(sv, 1);
	(void)err;
}

static void
greeting_errors(void **state)
{
	static const struct {
		const char *greet;
		int r, reply, quit;
		const char *enh;
	} t[] = {
		{ "554 5.3.2 no service here\r\n", O365_E_PERM, 554, 1, "5.3.2" },
		{ "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade\r\n",
		    O365_E_TEMP, 421, 0, "4.7.66" },
		{ "450 busy\r\n", O365_E_TEMP, 450, 1, "" },
		{ "250 not a greeting\r\n", O365_E_PROTO, 0, 0, "" },
		{ "HTTP/1.1 400 Bad Request\r\n", O365_E_PROTO, 0, 0, "" },
		{ "220-one\r\n221 two\r\n", O365_E_PROTO, 0, 0, "" },
		{ "220 bare LF\n", O365_E_PROTO, 0, 0, "" },
		{ "220 with NUL \0 inside\r\n", O365_E_PROTO, 0, 0, "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct server *sv = srv_new();
		struct o365_smtp *s = NULL;
		struct o365_error err;
		size_t glen = strlen(t[i].greet);

		if (i == sizeof(t) / sizeof(t[0]) - 1)
			glen = 23;
		srv_step_n(sv, NULL, 0, t[i].greet, glen, ACT_NONE);
		if (t[i].quit)
			srv_quit(sv);
		srv_run(sv);
		if (open_session(sv, SMTP_TEST_ASSUME_TLS, O365_SMTP_STARTTLS, NULL, 5000, &s,
		    &err) != t[i].r)
			fail_msg("greeting %zu: got %s (%s)", i, o365_err_name(err.code), err.why);
		assert_null(s);
		if (t[i].reply != 0) {
			assert_int_equal(err.reply, t[i].reply);
			assert_string_equal(err.enhanced, t[i].enh);
		}
		if (t[i].r == O365_E_TEMP && t[i].reply == 421)
			assert_non_null(strstr(err.why, "TLS 1.0 and 1.1 are not supported"));
		srv_done(sv, 1);
	}
}

static void
ehlo_temp_failure(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, "451 4.3.0 try later\r\n");
	srv_quit(sv);
	srv_run(sv);
	assert_int_equal(open_session(sv, SMTP_TEST_ASSUME_TLS, O365_SMTP_STARTTLS, NULL, 5000, &s,
	    &err), O365_E_TEMP);
	assert_string_equal(err.enhanced, "4.3.0");
	srv_done(sv, 1);
}

/* ---- limits -------------------------------------------------------------- */

static char *
repeat(char ch, size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	memset(p, ch, n);
	p[n] = '\0';
	return p;
}

static void
reply_line_length_limit(void **state)
{
	size_t extra;

	(void)state;
	for (extra = 0; extra < 2; extra++) {
		/* "220 " + text: O365_MAX_SMTP_LINE bytes, then one more */
		char *text = repeat('x', O365_MAX_SMTP_LINE - 4 + extra);
		char *greet = malloc(O365_MAX_SMTP_LINE + 8);
		struct server *sv = srv_new();
		struct o365_smtp *s = NULL;
		struct o365_error err;
		int r;

		snprintf(greet, O365_MAX_SMTP_LINE + 8, "220 %s\r\n", text);
		srv_step(sv, NULL, greet);
		if (extra == 0) {
			srv_step(sv, EHLO, EHLO_ALL);
			srv_quit(sv);
		}
		srv_run(sv);
		r = open_session(sv, SMTP_TEST_ASSUME_TLS, O365_SMTP_STARTTLS, NULL, 5000, &s, &err);
		if (extra == 0) {
			assert_int_equal(r, O365_OK);
			quit(&s);
		} else
			assert_int_equal(r, O365_E_TOOLONG);
		srv_done(sv, 1);
		free(text);
		free(greet);
	}
}

static void
reply_lines_count_limit(void **state)
{
	size_t extra, i;

	(void)state;
	for (extra = 0; extra < 2; extra++) {
		size_t nlines = O365_MAX_SMTP_LINES + extra, cap = nlines * 24 + 64, off = 0;
		char *ehlo = malloc(cap);
		struct server *sv = srv_new();
		struct o365_smtp *s = NULL;
		struct o365_error err;
		int r;

		for (i = 0; i + 1 < nlines; i++)
			off += (size_t)snprintf(ehlo + off, cap - off, "250-X-KEYWORD%zu\r\n", i);
		off += (size_t)snprintf(ehlo + off, cap - off, "250 PIPELINING\r\n");
		srv_step(sv, NULL, GREETING);
		srv_step(sv, EHLO, ehlo);
		if (extra == 0)
			srv_quit(sv);
		srv_run(sv);
		r = open_session(sv, SMTP_TEST_ASSUME_TLS, O365_SMTP_STARTTLS, NULL, 5000, &s, &err);
		if (extra == 0) {
			assert_int_equal(r, O365_OK);
			assert_true(o365_smtp_caps(s)->pipelining);
			quit(&s);
		} else {
			assert_int_equal(r, O365_E_TOOLONG);
			assert_non_null(strstr(err.why, "lines"));
		}
		srv_done(sv, 1);
		free(ehlo);
	}
}

static void
server_that_never_answers(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_step_n(sv, NULL, 0, "220-first line only\r\n", 21, ACT_STALL);
	srv_run(sv);
	assert_int_equal(open_session(sv, SMTP_TEST_ASSUME_TLS, O365_SMTP_STARTTLS, NULL, 300, &s,
	    &err), O365_E_TIMEOUT);
	assert_non_null(strstr(err.why, "(reply to greeting)"));
	assert_null(s);
	srv_done(sv, 1);
}

/* ---- envelope ------------------------------------------------------------ */

static void
envelope_pipelined(void **state)
{
	const char *rcpts[] = { "bob@example.com", "carol@example.net", "dave@example.org" };
	struct server *sv = srv_new();
	struct o365_smtp_reply rr[3];
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int codes[3];

	(void)state;
	srv_hello(sv, EHLO_ALL);
	/* all four commands must arrive before any reply is sent */
	srv_step(sv, "MAIL FROM:<alice@contoso.com> SIZE=1234 BODY=8BITMIME SMTPUTF8\r\n"
	    "RCPT TO:<bob@example.com>\r\nRCPT TO:<carol@example.net>\r\n"
	    "RCPT TO:<dave@example.org>\r\n",
	    "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
	    "550 5.1.1 User unknown\r\n451 4.2.1 later\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	dl_in(&dl, 5000);
	assert_int_equal(o365_smtp_envelope(s, "alice@contoso.com", 1234,
	    O365_SMTP_8BIT | O365_SMTP_UTF8, rcpts, 3, codes, rr, &dl, &err), O365_OK);
	assert_int_equal(codes[0], 250);
	assert_int_equal(codes[1], 550);
	assert_int_equal(codes[2], 451);
	assert_string_equal(rr[1].enhanced, "5.1.1");
	assert_string_equal(rr[1].text, "User unknown");
	assert_string_equal(rr[2].enhanced, "4.2.1");
	quit(&s);
	srv_done(sv, 1);
}

/*
 * RSET after a message, PIPELINING offered: RSET, MAIL and RCPT in one
 * write, RSET's reply read first.  The envelope's result, the RCPT code and
 * whether the session is still usable.
 */
static int
rset_pipelined(const char *replies, int *code, struct o365_error *err, int *usable)
{
	const char *rcpts[] = { "bob@example.com" };
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_smtp *s;
	int r;

	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "RSET\r\nMAIL FROM:<alice@contoso.com> SIZE=10\r\nRCPT TO:<bob@example.com>\r\n",
	    replies);
	s = session(sv, NULL);
	dl_in(&dl, 5000);
	r = o365_smtp_envelope(s, "alice@contoso.com", 10, O365_SMTP_RSET, rcpts, 1, code, NULL, &dl,
	    err);
	*usable = o365_smtp_usable(s);
	if (*usable)
		srv_quit(sv);
	quit(&s);
	srv_done(sv, 1);
	return r;
}

static void
envelope_rset_pipelined(void **state)
{
	struct o365_error err;
	int code, usable;

	(void)state;
	assert_int_equal(rset_pipelined("250 2.0.0 Resetting\r\n250 2.1.0 Sender OK\r\n"
	    "250 2.1.5 Recipient OK\r\n", &code, &err, &usable), O365_OK);
	assert_int_equal(code, 250);
	assert_true(usable);
}

/* a refused pipelined RSET: its error, and the session is not used again */
static void
envelope_rset_refused(void **state)
{
	struct o365_error err;
	int code, usable;

	(void)state;
	assert_int_equal(rset_pipelined("451 4.3.0 try later\r\n250 2.1.0 Sender OK\r\n"
	    "250 2.1.5 Recipient OK\r\n", &code, &err, &usable), O365_E_TEMP);
	assert_int_equal(err.reply, 451);
	assert_int_equal(code, 0);
	assert_false(usable);
}

/* without PIPELINING: RSET and its reply before MAIL is sent */
static void
envelope_rset_one_by_one(void **state)
{
	const char *rcpts[] = { "bob@example.com" };
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int codes[1];

	(void)state;
	srv_hello(sv, EHLO_NOPIPE);
	srv_step(sv, "RSET\r\n", "250 2.0.0 Resetting\r\n");
	srv_step(sv, "MAIL FROM:<alice@contoso.com>\r\n", "250 OK\r\n");
	srv_step(sv, "RCPT TO:<bob@example.com>\r\n", "250 OK\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	dl_in(&dl, 5000);
	assert_int_equal(o365_smtp_envelope(s, "alice@contoso.com", 10, O365_SMTP_RSET, rcpts, 1,
	    codes, NULL, &dl, &err), O365_OK);
	assert_int_equal(codes[0], 250);
	quit(&s);
	srv_done(sv, 1);
}

static void
envelope_one_by_one(void **state)
{
	const char *rcpts[] = { "bob@example.com", "\"john doe\"@example.com" };
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int codes[2];

	(void)state;
	srv_hello(sv, EHLO_NOPIPE);
	/* no SIZE or SMTPUTF8 offered: not sent; 8BITMIME offered */
	srv_step(sv, "MAIL FROM:<> BODY=8BITMIME\r\n", "250 OK\r\n");
	srv_step(sv, "RCPT TO:<bob@example.com>\r\n", "251 will forward\r\n");
	srv_step(sv, "RCPT TO:<\"john doe\"@example.com>\r\n", "250 OK\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	dl_in(&dl, 5000);
	assert_int_equal(o365_smtp_envelope(s, "", 99, O365_SMTP_8BIT | O365_SMTP_UTF8, rcpts, 2,
	    codes, NULL, &dl, &err), O365_OK);
	assert_int_equal(codes[0], 251);
	assert_int_equal(codes[1], 250);
	quit(&s);
	srv_done(sv, 1);
}

static void
envelope_all_recipients_fail(void **state)
{
	static const struct {
		const char *replies;
		int r, reply;
		const char *enh;
	} t[] = {
		/* the first worst: PERM beats TEMP */
		{ "250 OK\r\n451 4.3.0 later\r\n550 5.1.1 unknown\r\n550 5.1.2 bad domain\r\n",
		    O365_E_PERM, 550, "5.1.1" },
		{ "250 OK\r\n451 4.3.0 later\r\n452 4.5.3 too many\r\n450 4.2.0 x\r\n",
		    O365_E_TEMP, 451, "4.3.0" },
		/* 421 ends it at once */
		{ "250 OK\r\n421 4.3.2 closing\r\n", O365_E_TEMP, 421, "4.3.2" },
		/* Exchange: SendAs refused at MAIL; pipelined RCPTs get 503 */
		{ "554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as boss@contoso.com;"
		  " STOREDRV.Submission.Exception:SendAsDeniedException\r\n"
		  "503 5.5.1 bad sequence\r\n503 5.5.1 bad sequence\r\n503 5.5.1 bad sequence\r\n",
		    O365_E_PERM, 554, "5.2.252" },
		{ "530 5.7.57 Client not authenticated to send mail\r\n503 x\r\n503 x\r\n503 x\r\n",
		    O365_E_PERM, 530, "5.7.57" },
		{ "432 4.3.2 Concurrent connections limit exceeded\r\n503 x\r\n503 x\r\n503 x\r\n",
		    O365_E_TEMP, 432, "4.3.2" },
		{ "250 OK\r\n354 what\r\n", O365_E_PROTO, 0, "" },
	};
	const char *rcpts[] = { "a@example.com", "b@example.com", "c@example.com" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct server *sv = srv_new();
		struct o365_deadline dl;
		struct o365_error err;
		struct o365_smtp *s;
		int codes[3], r;

		srv_hello(sv, EHLO_ALL);
		srv_step(sv, "MAIL FROM:<boss@contoso.com>\r\nRCPT TO:<a@example.com>\r\n"
		    "RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\n", t[i].replies);
		if (t[i].reply != 421 && t[i].r != O365_E_PROTO)
			srv_quit(sv);
		s = session(sv, NULL);
		dl_in(&dl, 5000);
		r = o365_smtp_envelope(s, "boss@contoso.com", 0, 0, rcpts, 3, codes, NULL, &dl, &err);
		if (r != t[i].r)
			fail_msg("case %zu: got %s (%s)", i, o365_err_name(r), err.why);
		if (t[i].reply != 0) {
			assert_int_equal(err.reply, t[i].reply);
			assert_string_equal(err.enhanced, t[i].enh);
		}
		if (i == 3) {
			assert_non_null(strstr(err.why, "SendAsDenied"));
			assert_int_equal(codes[0], 503);
		}
		if (t[i].reply == 421)
			assert_non_null(strstr(err.why, "closed the session"));
		if (t[i].reply == 421 || t[i].r == O365_E_PROTO) {
			/* the session is unusable now, and says so */
			assert_false(o365_smtp_usable(s));
			assert_int_equal(o365_smtp_rset(s, &dl, &err), O365_E_NET);
			assert_non_null(strstr(err.why, "unusable"));
		}
		quit(&s);
		srv_done(sv, 1);
	}
}

static void
envelope_refuses_bad_addresses(void **state)
{
	static const struct {
		const char *from, *rcpt;
	} t[] = {
		{ "alice@contoso.com\r\nRCPT TO:<evil@x>", "bob@example.com" },
		{ "alice@contoso.com", "bob@example.com\nDATA" },
		{ "alice@contoso.com", "bob@example.com\rx" },
		{ "alice@contoso.com", "bob>@example.com" },
		{ "<alice@contoso.com", "bob@example.com" },
		{ "alice@contoso.com", "bob @example.com" },
		{ "alice@contoso.com", "\"bob@example.com" },
		{ "alice@contoso.com", "" },
		{ "alice@contoso.com", "b\tob@example.com" },
		{ "alice@contoso.com", NULL },		/* NULL: 321 bytes */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct server *sv = srv_new();
		char *longaddr = repeat('a', O365_MAX_ADDRESS + 1);
		const char *rcpts[1];
		struct o365_deadline dl;
		struct o365_error err;
		struct o365_smtp *s;
		int codes[1];

		memcpy(longaddr + O365_MAX_ADDRESS - 11, "@example.com", 12);
		rcpts[0] = t[i].rcpt != NULL ? t[i].rcpt : longaddr;
		srv_hello(sv, EHLO_ALL);
		srv_quit(sv);		/* nothing between EHLO and QUIT */
		s = session(sv, NULL);
		dl_in(&dl, 5000);
		if (o365_smtp_envelope(s, t[i].from, 0, 0, rcpts, 1, codes, NULL, &dl, &err) !=
		    O365_E_INVAL)
			fail_msg("case %zu accepted", i);
		quit(&s);
		srv_done(sv, 1);
		free(longaddr);
	}
}

static void
envelope_address_at_limit(void **state)
{
	struct server *sv = srv_new();
	char *addr = repeat('a', O365_MAX_ADDRESS);
	char expect[O365_MAX_ADDRESS + 64];
	const char *rcpts[1];
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int codes[1];

	(void)state;
	memcpy(addr + O365_MAX_ADDRESS - 12, "@example.com", 12);
	rcpts[0] = addr;
	snprintf(expect, sizeof(expect), "RCPT TO:<%s>\r\n", addr);
	srv_hello(sv, EHLO_NOPIPE);
	srv_step(sv, "MAIL FROM:<a@b.example>\r\n", "250 OK\r\n");
	srv_step(sv, expect, "250 OK\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	dl_in(&dl, 5000);
	assert_int_equal(o365_smtp_envelope(s, "a@b.example", 0, 0, rcpts, 1, codes, NULL, &dl,
	    &err), O365_OK);
	quit(&s);
	srv_done(sv, 1);
	free(addr);
}

/* ---- DATA ---------------------------------------------------------------- */

/* Run one DATA with body in[0..n) and check the bytes on the wire. */
static void
data_case(const void *in, size_t n, const void *wire, size_t wn, const char *final, int want)
{
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int fd, r;

	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "DATA\r\n", "354 Start mail input; end with <CRLF>.<CRLF>\r\n");
	srv_step_n(sv, wire, wn, final, strlen(final), ACT_NONE);
	srv_quit(sv);
	s = session(sv, NULL);
	assert_true((fd = o365_test_memfile(in, n)) >= 0);
	dl_in(&dl, 10000);
	r = o365_smtp_data_fd(s, fd, &dl, &err);
	if (r != want)
		fail_msg("DATA: got %s (%s)", o365_err_name(r), err.why);
	close(fd);
	quit(&s);
	srv_done(sv, 1);
}

static void
data_normalises_and_stuffs(void **state)
{
	static const struct {
		const char *in, *wire;
	} t[] = {
		{ "", ".\r\n" },
		{ "x", "x\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ "Subject: a\n\nbody\n", "Subject: a\r\n\r\nbody\r\n.\r\n" },
		{ "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
		{ "a\nb", "a\r\nb\r\n.\r\n" },
		{ ".\n..\n.x\n x.\n", "..\r\n...\r\n..x\r\n x.\r\n.\r\n" },
		{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n" },
		/* a bare CR becomes CRLF: no "\r.\r" smuggling gets through */
		{ "a\r.\rb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r", "a\r\n.\r\n" },
		{ "\r\r\n", "\r\n\r\n.\r\n" },
		{ "caf\xc3\xa9 \xff\x80\x01\n", "caf\xc3\xa9 \xff\x80\x01\r\n.\r\n" },
		{ "\n", "\r\n.\r\n" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		data_case(t[i].in, strlen(t[i].in), t[i].wire, strlen(t[i].wire),
		    "250 2.6.0 Queued mail for delivery\r\n", O365_OK);
}

static void
data_long_lines_and_chunk_edges(void **state)
{
	size_t n = 200000, i, o = 0;
	unsigned char *in = malloc(n), *wire = malloc(2 * n + 8);

	(void)state;
	/* a 5000-byte line is passed through unchanged */
	{
		char *line = repeat('L', 5001);
		char *w = malloc(5010);

		line[5000] = '\0';
		snprintf(w, 5010, "%s\r\n.\r\n", line);
		line[5000] = '\n';
		data_case(line, 5001, w, strlen(w), "250 OK\r\n", O365_OK);
		free(line);
		free(w);
	}
	/* a CR as the last byte of the first 64 KB read, its LF the next; a dot
	 * right after a chunk edge; NUL bytes kept */
	for (i = 0; i < n; i++)
		in[i] = (unsigned char)('a' + i % 26);
	in[65535] = '\r';
	in[65536] = '\n';
	in[65537] = '.';
	in[131071] = '\n';
	in[131072] = '.';
	in[150000] = '\0';
	for (i = 0; i < n; i++) {
		if (in[i] == '\r')
			continue;	/* only CRLF here */
		if (in[i] == '\n') {
			wire[o++] = '\r';
			wire[o++] = '\n';
			continue;
		}
		if (in[i] == '.' && i > 0 && in[i - 1] == '\n')
			wire[o++] = '.';
		wire[o++] = in[i];
	}
	memcpy(wire + o, "\r\n.\r\n", 5);
	o += 5;
	data_case(in, n, wire, o, "250 OK\r\n", O365_OK);
	free(in);
	free(wire);
}

static void
data_replies(void **state)
{
	(void)state;
	data_case("x\n", 2, "x\r\n.\r\n", 6, "554 5.6.0 rejected\r\n", O365_E_PERM);
	data_case("x\n", 2, "x\r\n.\r\n", 6, "452 4.3.1 full\r\n", O365_E_TEMP);
	data_case("x\n", 2, "x\r\n.\r\n", 6,
	    "554 5.2.2 mailbox full; QuotaExceededException\r\n", O365_E_PERM);
}

static void
data_refused(void **state)
{
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int fd = o365_test_memfile("x\n", 2);

	(void)state;
	assert_true(fd >= 0);
	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "DATA\r\n", "554 5.5.1 no valid recipients\r\n");
	srv_step(sv, "RSET\r\n", "250 2.0.0 flushed\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	dl_in(&dl, 5000);
	assert_int_equal(o365_smtp_data_fd(s, fd, &dl, &err), O365_E_PERM);
	assert_int_equal(err.reply, 554);
	assert_int_equal(o365_smtp_rset(s, &dl, &err), O365_OK);
	close(fd);
	quit(&s);
	srv_done(sv, 1);
}

static void
data_server_closes_midway(void **state)
{
	size_t n = 4 << 20;
	char *big = repeat('m', n);
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	int fd, r;

	(void)state;
	big[n - 1] = '\n';
	srv_hello(sv, EHLO_ALL);
	srv_step_n(sv, "DATA\r\n", 6, "354 go\r\n", 8, ACT_CLOSE);
	s = session(sv, NULL);
	assert_true((fd = o365_test_memfile(big, n)) >= 0);
	dl_in(&dl, 10000);
	r = o365_smtp_data_fd(s, fd, &dl, &err);
	assert_int_equal(r, O365_E_NET);
	/* unusable now: no QUIT is attempted */
	assert_int_equal(o365_smtp_rset(s, &dl, &err), O365_E_NET);
	close(fd);
	quit(&s);
	srv_done(sv, 1);
	free(big);
}

/* ---- AUTH ---------------------------------------------------------------- */

static const char *USER = "alice@contoso.com";
static const char *PASS = "pass word \"q\" 's'";

static int
auth(struct o365_smtp *s, int mech, const char *secret, struct o365_error *err)
{
	struct o365_deadline dl;

	dl_in(&dl, 5000);
	return o365_smtp_auth(s, mech, USER, secret, strlen(secret), &dl, err);
}

static void
auth_plain_exact(void **state)
{
	struct server *sv = srv_new();
	struct o365_error err;
	struct o365_smtp *s;

	(void)state;
	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "AUTH PLAIN AGFsaWNlQGNvbnRvc28uY29tAHBhc3Mgd29yZCAicSIgJ3Mn\r\n",
	    "235 2.7.0 Authentication successful\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	assert_int_equal(auth(s, O365_SASL_PLAIN, PASS, &err), O365_OK);
	quit(&s);
	srv_done(sv, 1);
}

static void
auth_plain_too_long_for_one_line(void **state)
{
	char *pw = repeat('p', O365_MAX_CREDENTIAL);
	unsigned char raw[2 * O365_MAX_CREDENTIAL];
	char b64[4 * O365_MAX_CREDENTIAL];
	struct server *sv = srv_new();
	struct o365_error err;
	struct o365_smtp *s;
	size_t rl = 0;
	int n;

	(void)state;
	raw[rl++] = 0;
	memcpy(raw + rl, USER, strlen(USER));
	rl += strlen(USER);
	raw[rl++] = 0;
	memcpy(raw + rl, pw, O365_MAX_CREDENTIAL);
	rl += O365_MAX_CREDENTIAL;
	n = EVP_EncodeBlock((unsigned char *)b64, raw, (int)rl);
	memcpy(b64 + n, "\r\n", 3);
	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "AUTH PLAIN\r\n", "334 \r\n");
	srv_step(sv, b64, "235 2.7.0 ok\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	assert_int_equal(auth(s, O365_SASL_PLAIN, pw, &err), O365_OK);
	quit(&s);
	srv_done(sv, 1);
	free(pw);
}

static void
auth_login_exact(void **state)
{
	struct server *sv = srv_new();
	struct o365_error err;
	struct o365_smtp *s;

	(void)state;
	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
	srv_step(sv, "YWxpY2VAY29udG9zby5jb20=\r\n", "334 UGFzc3dvcmQ6\r\n");
	srv_step(sv, "cGFzcyB3b3JkICJxIiAncyc=\r\n", "235 2.7.0 Authentication successful\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	assert_int_equal(auth(s, O365_SASL_LOGIN, PASS, &err), O365_OK);
	quit(&s);
	srv_done(sv, 1);
}

static void
auth_xoauth2_exact(void **state)
{
	struct server *sv = srv_new();
	struct o365_error err;
	struct o365_smtp *s;

	(void)state;
	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "AUTH XOAUTH2\r\n", "334 \r\n");
	srv_step(sv, "dXNlcj1hbGljZUBjb250b3NvLmNvbQFhdXRoPUJlYXJlciB0b2sxMjMBAQ==\r\n",
	    "235 2.7.0 Authentication successful\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	assert_int_equal(auth(s, O365_SASL_XOAUTH2, "tok123", &err), O365_OK);
	quit(&s);
	srv_done(sv, 1);
}

static void
auth_xoauth2_3k_token(void **state)
{
	size_t tl = 3072;
	char *tok = repeat('T', tl);
	char *raw = malloc(tl + 64), *b64 = malloc(2 * tl + 128);
	struct server *sv = srv_new();
	struct o365_error err;
	struct o365_smtp *s;
	int n, rl;

	(void)state;
	memcpy(tok, "eyJ0eXAiOiJKV1Qi.", 17);	/* JWT-ish */
	rl = snprintf(raw, tl + 64, "user=%s\001auth=Bearer %s\001\001", USER, tok);
	n = EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)raw, rl);
	assert_true(n > 4000);		/* well over one 1000-byte line */
	memcpy(b64 + n, "\r\n", 3);
	srv_hello(sv, EHLO_ALL);
	srv_step(sv, "AUTH XOAUTH2\r\n", "334 \r\n");
	srv_step(sv, b64, "235 2.7.0 Authentication successful\r\n");
	srv_quit(sv);
	s = session(sv, NULL);
	assert_int_equal(auth(s, O365_SASL_XOAUTH2, tok, &err), O365_OK);
	quit(&s);
	srv_done(sv, 1);
	free(tok);
	free(raw);
	free(b64);
}

static void
auth_exchange_failures(void **state)
{
	/* what Exchange Online says (EXCHANGE-ONLINE.md), to AUTH LOGIN's end */
	static const struct {
		const char *reply;
		int r, code;
		const char *enh;
		int usable;
	} t[] = {
		{ "535 5.7.3 Authentication unsuccessful\r\n", O365_E_AUTH, 535, "5.7.3", 1 },
		{ "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
		  "for the Tenant.\r\n", O365_E_AUTH, 535, "5.7.139", 1 },
		{ "550 5.7.30 Basic authentication is not supported for Client Submission\r\n",
		    O365_E_PERM, 550, "5.7.30", 1 },
		{ "530 5.7.57 Client not authenticated to send mail\r\n", O365_E_AUTH, 530,
		    "5.7.57", 1 },
		{ "432 4.3.2 Concurrent connections limit exceeded\r\n", O365_E_TEMP, 432,
		    "4.3.2", 1 },
		{ "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade\r\n",
		    O365_E_TEMP, 421, "4.7.66", 0 },
		{ "250 what\r\n", O365_E_PROTO, 0, "", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct server *sv = srv_new();
		struct o365_deadline dl;
		struct o365_error err;
		struct o365_smtp *s;
		int r;

		srv_hello(sv, EHLO_ALL);
		srv_step(sv, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
		srv_step(sv, "YWxpY2VAY29udG9zby5jb20=\r\n", "334 UGFzc3dvcmQ6\r\n");
		srv_step(sv, "cGFzcyB3b3JkICJxIiAncyc=\r\n", t[i].reply);
		if (t[i].usable)
			srv_quit(sv);
		s = session(sv, NULL);
		r = auth(s, O365_SASL_LOGIN, PASS, &err);
		if (r != t[i].r)
			fail_msg("case %zu: got %s (%s)", i, o365_err_name(r), err.why);
		if (t[i].code != 0) {
			assert_int_equal(err.reply, t[i].code);
			assert_string_equal(err.enhanced, t[i].enh);
		}
		dl_in(&dl, 5000);
		if (!t[i].usable)
			assert_int_equal(o365_smtp_rset(s, &dl, &err), O365_E_NET);
		quit(&s);
		srv_done(sv, 1);
	}
}

static void
auth_xoauth2_bad_token(void **state)
{
	static const char *finals[] = {
		"535 5.7.3 Authentication unsuccessful\r\n",
		"501 5.5.124 Invalid XOAUTH2 auth data\r\n",
	};
	static const int want[] = { O365_E_AUTH, O365_E_PERM };
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct server *sv = srv_new();
		struct o365_error err;
		struct o365_smtp *s;

		srv_hello(sv, EHLO_ALL);
		srv_step(sv, "AUTH XOAUTH2\r\n", "334 \r\n");
		/* base64 of {"status":"401","schemes":"bearer","scope":"..."} */
		srv_step(sv, "dXNlcj1hbGljZUBjb250b3NvLmNvbQFhdXRoPUJlYXJlciB0b2sxMjMBAQ==\r\n",
		    "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiIuLi4ifQ==\r\n");
		srv_step(sv, "\r\n", finals[i]);
		srv_quit(sv);
		s = session(sv, NULL);
		assert_int_equal(auth(s, O365_SASL_XOAUTH2, "tok123", &err), want[i]);
		assert_int_equal(err.reply, i == 0 ? 535 : 501);
		quit(&s);
		srv_done(sv, 1);
	}
}

static void
auth_refusals_before_sending(void **state)
{
	struct server *sv = srv_new();
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;

	(void)state;
	srv_hello(sv, EHLO_NOPIPE);		/* AUTH LOGIN PLAIN only */
	srv_quit(sv);				/* nothing between EHLO and QUIT */
	s = session(sv, NULL);
	assert_int_equal(auth(s, O365_SASL_XOAUTH2, "tok", &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "does not offer AUTH XOAUTH2"));
	assert_int_equal(auth(s, 0, "pw", &err), O365_E_INVAL);
	assert_int_equal(auth(s, O365_SASL_PLAIN, "pw\r\nQUIT", &err), O365_E_INVAL);
	assert_int_equal(auth(s, O365_SASL_PLAIN, "", &err), O365_E_INVAL);
	dl_in(&dl, 5000);
	assert_int_equal(o365_smtp_auth(s, O365_SASL_LOGIN, "bob\n", "pw", 2, &dl, &err),
	    O365_E_INVAL);
	assert_int_equal(o365_smtp_auth(s, O365_SASL_LOGIN, "bob", "p\0w", 3, &dl, &err),
	    O365_E_INVAL);
	assert_int_equal(o365_smtp_auth(s, O365_SASL_PLAIN, "bob\001auth=x", "pw", 2, &dl, &err),
	    O365_E_INVAL);
	assert_true(o365_smtp_usable(s));
	quit(&s);
	srv_done(sv, 1);
}

static void
auth_xoauth2_refuses_bad_tokens(void **state)
{
	static const char *bad[] = { "tok en", "tok\001en", "tok\r\n", "" };
	char *huge = repeat('t', O365_MAX_TOKEN + 1);
	struct server *sv = srv_new();
	struct o365_error err;
	struct o365_smtp *s;
	size_t i;

	(void)state;
	srv_hello(sv, EHLO_ALL);
	srv_quit(sv);				/* nothing between EHLO and QUIT */
	s = session(sv, NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (auth(s, O365_SASL_XOAUTH2, bad[i], &err) != O365_E_INVAL)
			fail_msg("token %zu accepted", i);
	assert_int_equal(auth(s, O365_SASL_XOAUTH2, huge, &err), O365_E_INVAL);
	assert_true(o365_smtp_usable(s));
	quit(&s);
	srv_done(sv, 1);
	free(huge);
}

/* No secret reaches any log line, debug on, through every AUTH path. */
static void
auth_logs_no_secret(void **state)
{
	static const char *marker = "Sekr3t-M4rker-pw";
	/* base64 of the marker at each of the three alignments */
	static const char *b64s[] = { "U2VrcjN0LU00cmtlci1w", "a3IzdC1NNHJrZXIt",
	    "ZWtyM3QtTTRya2VyLXB3" };
	struct o365_test_capture *cap = calloc(1, sizeof(*cap));
	struct o365_log lg = { o365_test_capture_sink, cap, 1 };
	int mechs[] = { O365_SASL_PLAIN, O365_SASL_LOGIN, O365_SASL_XOAUTH2 };
	size_t i, k;

	(void)state;
	assert_non_null(cap);
	for (i = 0; i < 3; i++) {
		struct server *sv = srv_new();
		struct o365_error err;
		struct o365_smtp *s;
		char expect[512];
		unsigned char raw[256];
		int n, rl;

		srv_hello(sv, EHLO_ALL);
		if (mechs[i] == O365_SASL_PLAIN) {
			rl = snprintf((char *)raw + 1, sizeof(raw) - 1, "%s#%s", USER, marker) + 1;
			raw[0] = 0;
			raw[1 + strlen(USER)] = 0;
			memcpy(expect, "AUTH PLAIN ", 11);
			n = EVP_EncodeBlock((unsigned char *)expect + 11, raw, rl);
			memcpy(expect + 11 + n, "\r\n", 3);
			srv_step(sv, expect, "535 5.7.3 Authentication unsuccessful\r\n");
		} else if (mechs[i] == O365_SASL_LOGIN) {
			srv_step(sv, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
			srv_step(sv, "YWxpY2VAY29udG9zby5jb20=\r\n", "334 UGFzc3dvcmQ6\r\n");
			n = EVP_EncodeBlock((unsigned char *)expect, (const unsigned char *)marker,
			    (int)strlen(marker));
			memcpy(expect + n, "\r\n", 3);
			srv_step(sv, expect, "235 2.7.0 ok\r\n");
		} else {
			srv_step(sv, "AUTH XOAUTH2\r\n", "334 \r\n");
			rl = snprintf((char *)raw, sizeof(raw), "user=%s\001auth=Bearer %s\001\001",
			    USER, marker);
			n = EVP_EncodeBlock((unsigned char *)expect, raw, rl);
			memcpy(expect + n, "\r\n", 3);
			srv_step(sv, expect, "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n");
			srv_step(sv, "\r\n", "535 5.7.3 Authentication unsuccessful\r\n");
		}
		srv_quit(sv);
		s = session(sv, &lg);
		(void)auth(s, mechs[i], marker, &err);
		assert_null(strstr(err.why, marker));
		quit(&s);
		srv_done(sv, 1);
	}
	assert_non_null(strstr(cap->text, "C: AUTH PLAIN <secret>"));
	assert_non_null(strstr(cap->text, "S: 535 5.7.3 Authentication unsuccessful"));
	assert_null(strstr(cap->text, marker));
	for (k = 0; k < 3; k++)
		if (strstr(cap->text, b64s[k]) != NULL)
			fail_msg("base64 of the secret in the log:\n%s", cap->text);
	/* nor the XOAUTH2 error blob, nor the LOGIN prompts */
	assert_null(strstr(cap->text, "eyJzdGF0dXMiOiI0MDEifQ"));
	assert_null(strstr(cap->text, "UGFzc3dvcmQ6"));
	free(cap);
}

/* ---- STARTTLS (without a TLS peer: the parts before the handshake) ------- */

static void
starttls_not_offered(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, "250-test.example\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n");
	srv_quit(sv);
	srv_run(sv);
	assert_int_equal(open_session(sv, 0, O365_SMTP_STARTTLS, NULL, 5000, &s, &err), O365_E_TLS);
	assert_string_equal(err.why, "server does not offer STARTTLS");
	assert_null(s);
	assert_null(strstr(srv_transcript(sv), "AUTH"));
	srv_done(sv, 1);
}

static void
starttls_injection(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, "250-test.example\r\n250 STARTTLS\r\n");
	/* the reply and an injected line in one write */
	srv_step(sv, "STARTTLS\r\n", "220 2.0.0 SMTP server ready\r\n250-injected\r\n");
	srv_run(sv);
	assert_int_equal(open_session(sv, 0, O365_SMTP_STARTTLS, NULL, 5000, &s, &err), O365_E_PROTO);
	assert_non_null(strstr(err.why, "injection"));
	assert_null(s);
	srv_done(sv, 1);
}

static void
starttls_refused(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_step(sv, NULL, GREETING);
	srv_step(sv, EHLO, "250-test.example\r\n250 STARTTLS\r\n");
	srv_step(sv, "STARTTLS\r\n", "454 4.7.0 TLS not available due to temporary reason\r\n");
	srv_quit(sv);
	srv_run(sv);
	assert_int_equal(open_session(sv, 0, O365_SMTP_STARTTLS, NULL, 5000, &s, &err), O365_E_TEMP);
	assert_int_equal(err.reply, 454);
	assert_null(strstr(srv_transcript(sv), "AUTH"));
	srv_done(sv, 1);
}

static void
bad_helo_name_sends_nothing(void **state)
{
	struct server *sv = srv_new();
	struct o365_smtp_opts o = { "test.example", 587, O365_SMTP_STARTTLS, NULL,
	    "evil\r\nMAIL FROM:<x>" };
	struct o365_deadline dl;
	struct o365_conn *c = NULL;
	struct o365_smtp *s = NULL;
	struct o365_error err;

	(void)state;
	srv_run(sv);
	assert_int_equal(o365_conn_from_fd(sv->cfd, &c, &err), O365_OK);
	sv->cfd = -1;
	dl_in(&dl, 5000);
	assert_int_equal(smtp_open_conn(c, &o, SMTP_TEST_ASSUME_TLS, &dl, NULL, &s, &err),
	    O365_E_INVAL);
	srv_done(sv, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reply_line_table),
		cmocka_unit_test(enhanced_table),
		cmocka_unit_test(ehlo_table),
		cmocka_unit_test(connect_reads_caps),
		cmocka_unit_test(helo_fallback_when_tls_is_up),
		cmocka_unit_test(no_helo_fallback_without_tls),
		cmocka_unit_test(greeting_errors),
		cmocka_unit_test(ehlo_temp_failure),
		cmocka_unit_test(reply_line_length_limit),
		cmocka_unit_test(reply_lines_count_limit),
		cmocka_unit_test(server_that_never_answers),
		cmocka_unit_test(envelope_pipelined),
		cmocka_unit_test(envelope_one_by_one),
		cmocka_unit_test(envelope_rset_pipelined),
		cmocka_unit_test(envelope_rset_one_by_one),
		cmocka_unit_test(envelope_rset_refused),
		cmocka_unit_test(envelope_all_recipients_fail),
		cmocka_unit_test(envelope_refuses_bad_addresses),
		cmocka_unit_test(envelope_address_at_limit),
		cmocka_unit_test(data_normalises_and_stuffs),
		cmocka_unit_test(data_long_lines_and_chunk_edges),
		cmocka_unit_test(data_replies),
		cmocka_unit_test(data_refused),
		cmocka_unit_test(data_server_closes_midway),
		cmocka_unit_test(auth_plain_exact),
		cmocka_unit_test(auth_plain_too_long_for_one_line),
		cmocka_unit_test(auth_login_exact),
		cmocka_unit_test(auth_xoauth2_exact),
		cmocka_unit_test(auth_xoauth2_3k_token),
		cmocka_unit_test(auth_exchange_failures),
		cmocka_unit_test(auth_xoauth2_bad_token),
		cmocka_unit_test(auth_refusals_before_sending),
		cmocka_unit_test(auth_xoauth2_refuses_bad_tokens),
		cmocka_unit_test(auth_logs_no_secret),
		cmocka_unit_test(starttls_not_offered),
		cmocka_unit_test(starttls_injection),
		cmocka_unit_test(starttls_refused),
		cmocka_unit_test(bad_helo_name_sends_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
