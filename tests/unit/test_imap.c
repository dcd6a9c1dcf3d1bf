/*
 * test_imap.c: the IMAP response parser, and the client's flows against a
 * scripted peer over a socketpair that records every byte the client sent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "o365/conn.h"
#include "o365/imap.h"
#include "o365/limits.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* parser                                                              */
/* ------------------------------------------------------------------ */

struct good_line {
	const char		*line;
	enum o365_imap_kind	 kind;
	enum o365_imap_status	 status;
	const char		*tag;
	const char		*code;
	const char		*code_args;	/* NULL: none */
	const char		*text;
	const char		*data;		/* NULL: none */
	int			 has_literal;
	size_t			 literal;
};

#define U	O365_IMAP_UNTAGGED
#define T	O365_IMAP_TAGGED
#define C	O365_IMAP_CONTINUE

static const struct good_line good_lines[] = {
	{ "* OK The Microsoft Exchange IMAP4 service is ready. [TQBXADIAUABSADEAOABDAEEAMAAwADEA]",
	  U, O365_IMAP_OK, "", "", NULL,
	  "The Microsoft Exchange IMAP4 service is ready. [TQBXADIAUABSADEAOABDAEEAMAAwADEA]", NULL, 0, 0 },
	{ "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.",
	  U, O365_IMAP_OK, "", "CAPABILITY",
	  "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN", "Dovecot ready.", NULL, 0, 0 },
	{ "* PREAUTH IMAP4rev1 server logged in as alice", U, O365_IMAP_PREAUTH, "", "", NULL,
	  "IMAP4rev1 server logged in as alice", NULL, 0, 0 },
	{ "* BYE Microsoft Exchange Server IMAP4 server signing off.", U, O365_IMAP_BYE, "", "", NULL,
	  "Microsoft Exchange Server IMAP4 server signing off.", NULL, 0, 0 },
	{ "* bye lower case status", U, O365_IMAP_BYE, "", "", NULL, "lower case status", NULL, 0, 0 },
	{ "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR LITERAL+", U, O365_IMAP_NONE,
	  "", "", NULL, "", "CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR LITERAL+", 0, 0 },
	{ "* 3 EXISTS", U, O365_IMAP_NONE, "", "", NULL, "", "3 EXISTS", 0, 0 },
	{ "* OKAY is data", U, O365_IMAP_NONE, "", "", NULL, "", "OKAY is data", 0, 0 },
	{ "* 1 FETCH (BODY[] {5}", U, O365_IMAP_NONE, "", "", NULL, "", "1 FETCH (BODY[] {5}", 1, 5 },
	{ "* 1 FETCH (BODY[] ~{4294967295}", U, O365_IMAP_NONE, "", "", NULL, "",
	  "1 FETCH (BODY[] ~{4294967295}", 1, 4294967295u },
	{ "* 1 FETCH (BODY[] {0}", U, O365_IMAP_NONE, "", "", NULL, "", "1 FETCH (BODY[] {0}", 1, 0 },
	{ "* LIST () \"/\" {}", U, O365_IMAP_NONE, "", "", NULL, "", "LIST () \"/\" {}", 0, 0 },
	{ "* NO [ALERT] Mailbox almost full", U, O365_IMAP_NO, "", "ALERT", NULL,
	  "Mailbox almost full", NULL, 0, 0 },
	{ "* OK", U, O365_IMAP_OK, "", "", NULL, "", NULL, 0, 0 },
	{ "A001 OK LOGIN completed.", T, O365_IMAP_OK, "A001", "", NULL, "LOGIN completed.", NULL, 0, 0 },
	{ "A001 ok [CAPABILITY IMAP4rev1 IDLE] Logged in", T, O365_IMAP_OK, "A001", "CAPABILITY",
	  "IMAP4rev1 IDLE", "Logged in", NULL, 0, 0 },
	{ "A002 NO LOGIN failed.", T, O365_IMAP_NO, "A002", "", NULL, "LOGIN failed.", NULL, 0, 0 },
	{ "A002 NO [AUTHENTICATIONFAILED] Authentication failed.", T, O365_IMAP_NO, "A002",
	  "AUTHENTICATIONFAILED", NULL, "Authentication failed.", NULL, 0, 0 },
	{ "A002 No [unavailable] try later", T, O365_IMAP_NO, "A002", "UNAVAILABLE", NULL,
	  "try later", NULL, 0, 0 },
	{ "A003 BAD Command Argument Error. 11", T, O365_IMAP_BAD, "A003", "", NULL,
	  "Command Argument Error. 11", NULL, 0, 0 },
	{ "A1 OK", T, O365_IMAP_OK, "A1", "", NULL, "", NULL, 0, 0 },
	{ "A1 OK [READ-WRITE]", T, O365_IMAP_OK, "A1", "READ-WRITE", NULL, "", NULL, 0, 0 },
	{ "A1 OK done {5}", T, O365_IMAP_OK, "A1", "", NULL, "done {5}", NULL, 0, 0 },
	{ "a]b.c OK odd but legal tag", T, O365_IMAP_OK, "a]b.c", "", NULL, "odd but legal tag", NULL, 0, 0 },
	{ "A1 NO caf\xc3\xa9 UTF-8 text", T, O365_IMAP_NO, "A1", "", NULL, "caf\xc3\xa9 UTF-8 text", NULL, 0, 0 },
	{ "+ ", C, O365_IMAP_NONE, "", "", NULL, "", NULL, 0, 0 },
	{ "+", C, O365_IMAP_NONE, "", "", NULL, "", NULL, 0, 0 },
	{ "+ Ready for additional command text", C, O365_IMAP_NONE, "", "", NULL,
	  "Ready for additional command text", NULL, 0, 0 },
	{ "+ eyJzdGF0dXMiOiI0MDAifQ==", C, O365_IMAP_NONE, "", "", NULL, "eyJzdGF0dXMiOiI0MDAifQ==", NULL, 0, 0 },
	{ "+ [ALERT] go on", C, O365_IMAP_NONE, "", "ALERT", NULL, "go on", NULL, 0, 0 },
	/* tag of 31 characters: the most out->tag holds */
	{ "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234 OK x", T, O365_IMAP_OK, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234", "",
	  NULL, "x", NULL, 0, 0 },
	/* code of 63 characters: the most out->code holds */
	{ "* OK [ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789A] x", U, O365_IMAP_OK, "",
	  "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789A", NULL, "x", NULL, 0, 0 },
};

static void
parse_accepts_good_lines(void **state)
{
	struct o365_imap_resp r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good_lines) / sizeof(good_lines[0]); i++) {
		const struct good_line *g = &good_lines[i];

		print_message("line: %s\n", g->line);
		assert_int_equal(o365_imap_parse_line(g->line, strlen(g->line), &r), O365_OK);
		assert_int_equal(r.kind, g->kind);
		assert_int_equal(r.status, g->status);
		assert_string_equal(r.tag, g->tag);
		assert_string_equal(r.code, g->code);
		if (g->code_args == NULL) {
			assert_null(r.code_args);
		} else {
			assert_non_null(r.code_args);
			assert_int_equal(r.code_args_len, strlen(g->code_args));
			assert_memory_equal(r.code_args, g->code_args, r.code_args_len);
		}
		assert_int_equal(r.text_len, strlen(g->text));
		assert_memory_equal(r.text, g->text, r.text_len + 0 * 1);
		if (g->data == NULL) {
			assert_null(r.data);
		} else {
			assert_non_null(r.data);
			assert_int_equal(r.data_len, strlen(g->data));
			assert_memory_equal(r.data, g->data, r.data_len);
		}
		assert_int_equal(r.has_literal, g->has_literal);
		assert_int_equal(r.literal, g->literal);
	}
}

static const char *const bad_lines[] = {
	"",
	"*",
	"* ",
	"*  OK two spaces",
	"*OK",
	"A001",
	"A001 ",
	"A001 FOO bar",			/* unknown status */
	"A001 BYE tagged bye",		/* BYE is never tagged */
	"A001 PREAUTH no",
	"A001 OKAY x",
	" A001 OK leading space",
	"A0+1 OK plus in tag",
	"A(1 OK paren in tag",
	"A%1 OK wildcard in tag",
	"A\"1 OK quote in tag",
	"A{1 OK brace in tag",
	("A\x01" "1 OK control in tag"),
	"A\xc3\xa9 OK 8-bit tag",
	"* OK [ALERT oops no close",	/* "[" without "]" */
	"A001 NO [UNAVAILABLE",
	"* OK [] empty code",
	"* OK [ALERT]no space",
	"* OK [ALERT ] empty args",
	"* OK [AL(ERT] bad atom",
	"+x",
	"+\tx",
	"A001 OK cr\r inside",
	"A001 OK lf\n inside",
	"* 1 FETCH {99999999999}",	/* literal over 2^32-1 */
	"* 1 FETCH {4294967296}",
	"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 OK tag of 32",
	"* OK [ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789AB] code of 64",
	"HTTP/1.1 400 Bad Request",
	"SSH-2.0-OpenSSH_9.2p1",
};

static void
parse_refuses_bad_lines(void **state)
{
	struct o365_imap_resp r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		print_message("line: %s\n", bad_lines[i]);
		assert_int_equal(o365_imap_parse_line(bad_lines[i], strlen(bad_lines[i]), &r),
		    O365_E_PROTO);
	}
	/* a NUL inside the given length */
	assert_int_equal(o365_imap_parse_line("A1 OK a\0b", 9, &r), O365_E_PROTO);
	assert_int_equal(o365_imap_parse_line(NULL, 0, &r), O365_E_PROTO);
}

/* The parser reads only len bytes: no NUL terminator is needed. */
static void
parse_respects_length(void **state)
{
	struct o365_imap_resp r;
	char buf[16];

	(void)state;
	memcpy(buf, "A1 OK fine[XXXXX", 16);
	assert_int_equal(o365_imap_parse_line(buf, 10, &r), O365_OK);
	assert_int_equal(r.text_len, 4);
	assert_memory_equal(r.text, "fine", 4);
	memcpy(buf, "* OK [ALERT] xyz", 16);
	assert_int_equal(o365_imap_parse_line(buf, 8, &r), O365_E_PROTO);	/* "* OK [AL" */
}

/* ------------------------------------------------------------------ */
/* a log sink that keeps everything                                    */
/* ------------------------------------------------------------------ */

static struct o365_test_capture cap;

static const struct o365_log test_log = { o365_test_capture_sink, &cap, 1 };

static void
assert_not_logged(const char *secret, size_t n)
{
	if (cap.dropped != 0)
		fail_msg("log capture full");
	if (n == 0)
		return;
	if (memmem(cap.text, cap.len, secret, n) != NULL)
		fail_msg("a secret reached the log:\n%s", cap.text);
}

/* ------------------------------------------------------------------ */
/* the scripted peer                                                   */
/* ------------------------------------------------------------------ */

/*
 * Steps: "S:text" send text CRLF; "P:text" send text without CRLF; "R" read
 * one line from the client; "C" close now; "F:n" send n untagged lines;
 * "G:n" send n bytes of 'x' without a line end; "K" trickle untagged lines
 * one byte every 20 ms until the client goes away.  After the last step the
 * peer records until the client closes.
 */
struct peer {
	int			 fd;
	const char *const	*steps;
	char			*got;
	size_t			 gotlen, gotcap, mark;
	pthread_t		 th;
	int			 failed;
};

static int
peer_send(struct peer *p, const char *s, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(p->fd, s, n, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;	/* the client may have given up: fine */
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Receive into got; 0 on data, -1 on EOF/error/10 s of silence. */
static int
peer_recv(struct peer *p)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	ssize_t n;

	if (p->gotlen + 4096 + 1 > p->gotcap) {
		p->gotcap = (p->gotcap + 4096) * 2;
		if ((p->got = realloc(p->got, p->gotcap)) == NULL)
			abort();
		p->got[p->gotlen] = '\0';
	}
	if (poll(&pfd, 1, 10000) <= 0)
		return -1;
	n = recv(p->fd, p->got + p->gotlen, 4096, 0);
	if (n <= 0)
		return -1;
	p->gotlen += (size_t)n;
	p->got[p->gotlen] = '\0';
	return 0;
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	const char *const *s;
	char *line, *crlf;
	long i, n;

	for (s = p->steps; s != NULL && *s != NULL; s++) {
		switch ((*s)[0]) {
		case 'S':
			if (asprintf(&line, "%s\r\n", *s + 2) < 0)
				abort();
			(void)peer_send(p, line, strlen(line));
			free(line);
			break;
		case 'P':
			(void)peer_send(p, *s + 2, strlen(*s + 2));
			break;
		case 'R':
			for (;;) {
				crlf = p->got != NULL ?
				    memmem(p->got + p->mark, p->gotlen - p->mark, "\r\n", 2) : NULL;
				if (crlf != NULL) {
					p->mark = (size_t)(crlf - p->got) + 2;
					break;
				}
				if (peer_recv(p) != 0) {
					p->failed = 1;
					goto out;
				}
			}
			break;
		case 'C':
			goto out;
		case 'K':
			for (i = 0; i < 100000; i++) {
				struct timespec ts = { 0, 20 * 1000 * 1000 };

				if (peer_send(p, &"* 1 EXISTS\r\n"[i % 12], 1) != 0)
					break;
				nanosleep(&ts, NULL);
			}
			break;
		case 'F':
			n = strtol(*s + 2, NULL, 10);
			for (i = 0; i < n; i++)
				if (peer_send(p, "* 1 EXISTS\r\n", 12) != 0)
					break;
			break;
		case 'G':
			n = strtol(*s + 2, NULL, 10);
			if ((line = malloc((size_t)n)) == NULL)
				abort();
			memset(line, 'x', (size_t)n);
			(void)peer_send(p, line, (size_t)n);
			free(line);
			break;
		default:
			abort();
		}
	}
	while (peer_recv(p) == 0)
		;
out:
	close(p->fd);
	return NULL;
}

struct run {
	struct peer		 peer;
	struct o365_imap	*im;
	struct o365_deadline	 dl;
	struct o365_error	 err;
	int			 start_r;
};

/* Start a peer playing steps and an IMAP client on the other end. */
static void
run_start(struct run *r, const char *const *steps, unsigned int ms)
{
	struct o365_conn *c = NULL;
	int sv[2];

	memset(r, 0, sizeof(*r));
	memset(&cap, 0, sizeof(cap));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r->peer.fd = sv[1];
	r->peer.steps = steps;
	assert_int_equal(pthread_create(&r->peer.th, NULL, peer_main, &r->peer), 0);
	assert_int_equal(o365_conn_from_fd(sv[0], &c, &r->err), O365_OK);
	o365_deadline_in(&r->dl, ms);
	r->start_r = o365_imap_start(c, &r->dl, &test_log, &r->im, &r->err);
}

/* Close the client, wait for the peer; returns what the client sent. */
static const char *
run_finish(struct run *r)
{
	o365_imap_free(&r->im);
	assert_null(r->im);
	assert_int_equal(pthread_join(r->peer.th, NULL), 0);
	if (r->peer.got == NULL) {
		r->peer.got = calloc(1, 1);
		assert_non_null(r->peer.got);
	}
	return r->peer.got;
}

static void
run_free(struct run *r)
{
	free(r->peer.got);
	r->peer.got = NULL;
}

#define GREET_PLAIN	"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready"
#define GREET_LITPLUS	"S:* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] ready"
#define GREET_LITMINUS	"S:* OK [CAPABILITY IMAP4rev1 LITERAL- AUTH=PLAIN] ready"

/* ------------------------------------------------------------------ */
/* LOGIN quoting: byte-exact command lines                              */
/* ------------------------------------------------------------------ */

#define UTF8PW	"p\xc3\xa4ssw\xc3\xb6rd\xe2\x82\xac"	/* pässwörd€: 13 bytes */
#define UTF8USR	"j\xc3\xbcrgen"				/* jürgen: 7 bytes */

struct login_case {
	const char	*name;
	const char	*user;
	const char	*pass;
	const char	*steps[8];
	const char	*sent;		/* exactly what the client must send */
};

static const struct login_case login_cases[] = {
	{ "plain", "alice", "s3cr3t-pw",
	  { GREET_PLAIN, "R", "S:A001 OK LOGIN completed", NULL },
	  "A001 LOGIN \"alice\" \"s3cr3t-pw\"\r\n" },
	{ "spaces", "alice smith", "pass word with spaces",
	  { GREET_PLAIN, "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"alice smith\" \"pass word with spaces\"\r\n" },
	{ "quote and backslash", "al\"i\\ce", "p\"w\\d\\\"",
	  { GREET_PLAIN, "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"al\\\"i\\\\ce\" \"p\\\"w\\\\d\\\\\\\"\"\r\n" },
	{ "braces and wildcards", "{5}", "%*{}()[]",
	  { GREET_PLAIN, "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"{5}\" \"%*{}()[]\"\r\n" },
	{ "utf-8 LITERAL+", "alice", UTF8PW,
	  { GREET_LITPLUS, "R", "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"alice\" {13+}\r\n" UTF8PW "\r\n" },
	{ "utf-8 LITERAL-", "alice", UTF8PW,
	  { GREET_LITMINUS, "R", "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"alice\" {13+}\r\n" UTF8PW "\r\n" },
	{ "utf-8 synchronising", "alice", UTF8PW,
	  { GREET_PLAIN, "R", "S:+ Ready for literal data", "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"alice\" {13}\r\n" UTF8PW "\r\n" },
	{ "utf-8 user and password, synchronising", UTF8USR, UTF8PW,
	  { GREET_PLAIN, "R", "S:+ go", "R", "S:+ go", "R", "S:A001 OK done", NULL },
	  "A001 LOGIN {7}\r\n" UTF8USR " {13}\r\n" UTF8PW "\r\n" },
	{ "utf-8 user and password, LITERAL+", UTF8USR, UTF8PW,
	  { GREET_LITPLUS, "R", "R", "R", "S:A001 OK done", NULL },
	  "A001 LOGIN {7+}\r\n" UTF8USR " {13+}\r\n" UTF8PW "\r\n" },
	{ "tab is sent as a literal", "alice", "a\tb",
	  { GREET_LITPLUS, "R", "R", "S:A001 OK done", NULL },
	  "A001 LOGIN \"alice\" {3+}\r\na\tb\r\n" },
	{ "refused before the literal", "alice", UTF8PW,
	  { GREET_PLAIN, "R", "S:A001 NO [AUTHENTICATIONFAILED] no", NULL },
	  "A001 LOGIN \"alice\" {13}\r\n" },
};

static void
login_sends_exact_lines(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(login_cases) / sizeof(login_cases[0]); i++) {
		const struct login_case *lc = &login_cases[i];
		struct run r;
		int rc;

		print_message("case: %s\n", lc->name);
		run_start(&r, lc->steps, 5000);
		assert_int_equal(r.start_r, O365_OK);
		rc = o365_imap_login(r.im, lc->user, lc->pass, strlen(lc->pass), &r.dl, &r.err);
		if (strstr(lc->name, "refused") != NULL)
			assert_int_equal(rc, O365_E_AUTH);
		else
			assert_int_equal(rc, O365_OK);
		assert_string_equal(run_finish(&r), lc->sent);
		assert_false(r.peer.failed);
		assert_not_logged(lc->pass, strlen(lc->pass));
		assert_non_null(strstr(cap.text, "A001 LOGIN"));
		assert_non_null(strstr(cap.text, "<secret>"));
		run_free(&r);
	}
}

/* 500-character passwords and user names, quoted and literal. */
static void
login_long_credentials(void **state)
{
	static const char *const steps[] = { GREET_PLAIN, "R", "S:A001 OK done", NULL };
	static const char *const steps_lit[] = { GREET_LITPLUS, "R", "R", "S:A001 OK done", NULL };
	char user[501], pass[501], upass[504], want[2048];
	struct run r;
	size_t i;

	(void)state;
	for (i = 0; i < 500; i++) {
		user[i] = (char)('a' + i % 26);
		pass[i] = (char)(' ' + i % 95);		/* every printable byte */
	}
	user[500] = pass[500] = '\0';
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, user, pass, 500, &r.dl, &r.err), O365_OK);
	run_finish(&r);
	/* rebuild the quoted form independently */
	{
		size_t o = 0;

		o += (size_t)snprintf(want, sizeof(want), "A001 LOGIN \"%s\" \"", user);
		for (i = 0; i < 500; i++) {
			if (pass[i] == '"' || pass[i] == '\\')
				want[o++] = '\\';
			want[o++] = pass[i];
		}
		memcpy(want + o, "\"\r\n", 4);
	}
	assert_string_equal(r.peer.got, want);
	assert_not_logged(pass, 500);
	run_free(&r);

	memcpy(upass, pass, 497);
	memcpy(upass + 497, "\xe2\x82\xac", 4);		/* 500 bytes ending in UTF-8 */
	run_start(&r, steps_lit, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, user, upass, 500, &r.dl, &r.err), O365_OK);
	run_finish(&r);
	snprintf(want, sizeof(want), "A001 LOGIN \"%s\" {500+}\r\n%s\r\n", user, upass);
	assert_string_equal(r.peer.got, want);
	assert_not_logged(upass, 500);
	run_free(&r);
}

/* LITERAL- allows non-synchronising literals only up to 4096 bytes. */
/* (credentials are capped at 1024 bytes, so LITERAL-'s 4096 is never reached) */
static void
login_literal_minus_long(void **state)
{
	static const char *const steps[] = { GREET_LITMINUS, "R", "R", "S:A001 OK done", NULL };
	char pass[O365_MAX_CREDENTIAL + 1];
	char want[O365_MAX_CREDENTIAL + 64];
	struct run r;

	(void)state;
	memset(pass, 0xc3, sizeof(pass));
	pass[O365_MAX_CREDENTIAL] = '\0';		/* 1024 8-bit bytes: at the limit */
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, "u", pass, O365_MAX_CREDENTIAL, &r.dl, &r.err), O365_OK);
	run_finish(&r);
	snprintf(want, sizeof(want), "A001 LOGIN \"u\" {%d+}\r\n%s\r\n", O365_MAX_CREDENTIAL, pass);
	assert_string_equal(r.peer.got, want);
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* credentials refused before anything is sent                          */
/* ------------------------------------------------------------------ */

struct refuse_case {
	const char	*user;
	const char	*pass;
	size_t		 passlen;
};

static void
refused_credentials_send_nothing(void **state)
{
	static const char *const steps[] = { GREET_LITPLUS, NULL };
	static char longpw[O365_MAX_CREDENTIAL + 2];
	static char longuser[O365_MAX_CREDENTIAL + 2];
	const struct refuse_case cases[] = {
		{ "al\rice", "pw", 2 },
		{ "al\nice", "pw", 2 },
		{ "alice", "p\rw", 3 },
		{ "alice", "p\nw", 3 },
		{ "alice", "p\r\nA002 LOGOUT", 15 },
		{ "alice", "p\0w", 3 },
		{ "", "pw", 2 },
		{ NULL, "pw", 2 },
		{ "alice", "", 0 },
		{ "alice", NULL, 0 },
		{ "alice", longpw, O365_MAX_CREDENTIAL + 1 },
		{ longuser, "pw", 2 },
	};
	size_t i;
	int m;

	(void)state;
	memset(longpw, 'p', O365_MAX_CREDENTIAL + 1);
	memset(longuser, 'u', O365_MAX_CREDENTIAL + 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (m = 0; m < 3; m++) {
			struct run r;
			int rc;

			if (m == 2 && cases[i].pass == longpw)
				continue;	/* a token may be longer than a password */

			print_message("case %zu method %d\n", i, m);
			run_start(&r, steps, 5000);
			assert_int_equal(r.start_r, O365_OK);
			if (m == 0)
				rc = o365_imap_login(r.im, cases[i].user, cases[i].pass,
				    cases[i].passlen, &r.dl, &r.err);
			else if (m == 1)
				rc = o365_imap_auth_plain(r.im, cases[i].user, cases[i].pass,
				    cases[i].passlen, &r.dl, &r.err);
			else
				rc = o365_imap_auth_xoauth2(r.im, cases[i].user, cases[i].pass,
				    cases[i].passlen, &r.dl, &r.err);
			assert_int_equal(rc, O365_E_INVAL);
			assert_int_equal(r.err.code, O365_E_INVAL);
			assert_string_equal(run_finish(&r), "");	/* zero bytes sent */
			run_free(&r);
		}
	}
}

/* A password of exactly O365_MAX_CREDENTIAL bytes is sent. */
static void
login_credential_at_limit(void **state)
{
	static const char *const steps[] = { GREET_PLAIN, "R", "S:A001 OK done", NULL };
	char pw[O365_MAX_CREDENTIAL + 1];
	struct run r;

	(void)state;
	memset(pw, 'p', O365_MAX_CREDENTIAL);
	pw[O365_MAX_CREDENTIAL] = '\0';
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, "alice", pw, O365_MAX_CREDENTIAL, &r.dl, &r.err),
	    O365_OK);
	assert_int_equal(strlen(run_finish(&r)), strlen("A001 LOGIN \"alice\" \"\"\r\n") +
	    O365_MAX_CREDENTIAL);
	run_free(&r);
}

/*
 * Both credentials at O365_MAX_CREDENTIAL bytes, every byte one that quoting
 * escapes: the command (4114 bytes) must still be built and sent whole.
 */
static void
login_escaped_credentials_at_limit(void **state)
{
	static const char *const steps[] = { GREET_PLAIN, "R", "S:A001 OK done", NULL };
	char user[O365_MAX_CREDENTIAL + 1], pw[O365_MAX_CREDENTIAL + 1];
	struct run r;

	(void)state;
	memset(user, '"', O365_MAX_CREDENTIAL);
	user[O365_MAX_CREDENTIAL] = '\0';
	memset(pw, '\\', O365_MAX_CREDENTIAL);
	pw[O365_MAX_CREDENTIAL] = '\0';
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, user, pw, O365_MAX_CREDENTIAL, &r.dl, &r.err),
	    O365_OK);
	assert_int_equal(strlen(run_finish(&r)), strlen("A001 LOGIN \"\" \"\"\r\n") +
	    4 * O365_MAX_CREDENTIAL);
	assert_false(r.peer.failed);
	run_free(&r);
}

/*
 * A tagged OK that comes before the credentials were sent (the password
 * still waits behind a synchronising literal, or AUTHENTICATE without
 * SASL-IR got no "+") checked nothing: O365_E_PROTO, the password is never
 * sent, and the session takes no further command.
 */
static void
early_ok_is_not_a_login(void **state)
{
	static const char *const login_steps[] = { GREET_PLAIN, "R", "S:A001 OK LOGIN completed",
		NULL };
	static const char *const user_lit_steps[] = { GREET_PLAIN, "R", "S:+ go", "R",
		"S:A001 OK LOGIN completed", NULL };
	static const char *const plain_steps[] = { "S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi",
		"R", "S:A001 OK AUTHENTICATE completed", NULL };
	struct run r;

	(void)state;
	run_start(&r, login_steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, "alice", UTF8PW, strlen(UTF8PW), &r.dl, &r.err),
	    O365_E_PROTO);
	assert_non_null(strstr(r.err.why, "before the whole command"));
	assert_int_equal(o365_imap_login(r.im, "alice", UTF8PW, strlen(UTF8PW), &r.dl, &r.err),
	    O365_E_PROTO);
	assert_string_equal(run_finish(&r), "A001 LOGIN \"alice\" {13}\r\n");
	run_free(&r);

	/* OK after the user name literal, before the password literal */
	run_start(&r, user_lit_steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, UTF8USR, UTF8PW, strlen(UTF8PW), &r.dl, &r.err),
	    O365_E_PROTO);
	assert_string_equal(run_finish(&r), "A001 LOGIN {7}\r\n" UTF8USR " {13}\r\n");
	run_free(&r);

	run_start(&r, plain_steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", "MARKER-pw", 9, &r.dl, &r.err),
	    O365_E_PROTO);
	assert_non_null(strstr(r.err.why, "before the credentials"));
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", "MARKER-pw", 9, &r.dl, &r.err),
	    O365_E_PROTO);
	assert_string_equal(run_finish(&r), "A001 AUTHENTICATE PLAIN\r\n");
	run_free(&r);
}

static void
login_refused_when_logindisabled(void **state)
{
	static const char *const steps[] = {
		"S:* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready", NULL };
	struct run r;

	(void)state;
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_PERM);
	assert_string_equal(r.err.why, "server has LOGINDISABLED");
	assert_string_equal(run_finish(&r), "");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* results of LOGIN: a table of server answers                          */
/* ------------------------------------------------------------------ */

struct answer_case {
	const char	*name;
	const char	*steps[8];
	int		 want;
	const char	*why;		/* substring of err.why, or NULL */
};

#define EXO_GREETING "S:* OK The Microsoft Exchange IMAP4 service is ready. [TQBXADIAUABSADEAOABDAEEAMAAwADEANQAuAG4AYQBtAHAAcgBkADEAOAAuAHAAcgBvAGQALgBvAHUAdABsAG8AbwBrAC4AYwBvAG0A]"
#define EXO_CAPS "S:* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"

static const struct answer_case login_answers[] = {
	{ "ok", { GREET_PLAIN, "R", "S:A001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", NULL },
	  O365_OK, NULL },
	{ "dovecot auth failed", { GREET_PLAIN, "R",
	  "S:A001 NO [AUTHENTICATIONFAILED] Authentication failed.", NULL },
	  O365_E_AUTH, "NO [AUTHENTICATIONFAILED] Authentication failed." },
	{ "no code", { GREET_PLAIN, "R", "S:A001 NO Basic authentication is disabled.", NULL },
	  O365_E_AUTH, "Basic authentication is disabled." },
	{ "unavailable", { GREET_PLAIN, "R", "S:A001 NO [UNAVAILABLE] Temporary authentication failure.", NULL },
	  O365_E_TEMP, "UNAVAILABLE" },
	{ "serverbug", { GREET_PLAIN, "R", "S:A001 NO [SERVERBUG] oops", NULL }, O365_E_TEMP, "SERVERBUG" },
	{ "inuse", { GREET_PLAIN, "R", "S:A001 NO [INUSE] busy", NULL }, O365_E_TEMP, "INUSE" },
	{ "limit", { GREET_PLAIN, "R", "S:A001 NO [LIMIT] too many", NULL }, O365_E_TEMP, "LIMIT" },
	{ "contactadmin", { GREET_PLAIN, "R", "S:A001 NO [CONTACTADMIN] ask IT", NULL },
	  O365_E_AUTH, "CONTACTADMIN" },
	{ "expired", { GREET_PLAIN, "R", "S:A001 NO [EXPIRED] password expired", NULL },
	  O365_E_AUTH, "EXPIRED" },
	{ "bad", { GREET_PLAIN, "R", "S:A001 BAD Command Argument Error. 11", NULL },
	  O365_E_PROTO, "BAD" },
	{ "wrong tag", { GREET_PLAIN, "R", "S:A999 OK LOGIN completed", NULL },
	  O365_E_PROTO, "tagged A999" },
	{ "bye before the tagged reply", { GREET_PLAIN, "R", "S:* BYE shutting down", NULL },
	  O365_E_TEMP, "shutting down" },
	{ "untagged lines then ok", { GREET_PLAIN, "R", "S:* NO [ALERT] warning",
	  "S:* CAPABILITY IMAP4rev1 IDLE", "S:A001 OK done", NULL }, O365_OK, NULL },
	{ "garbage", { GREET_PLAIN, "R", "S:HTTP/1.1 400 Bad Request", NULL },
	  O365_E_PROTO, "malformed" },
	{ "binary garbage", { GREET_PLAIN, "R", "P:\x16\x03\x01\x02\xff\x01\r\n", NULL },
	  O365_E_PROTO, NULL },
	{ "bare lf", { GREET_PLAIN, "R", "P:A001 OK done\n", "C", NULL }, O365_E_PROTO, NULL },
	{ "close mid-reply", { GREET_PLAIN, "R", "P:A001 OK LOG", "C", NULL },
	  O365_E_NET, "closed" },
	{ "close at once", { GREET_PLAIN, "R", "C", NULL }, O365_E_NET, "closed" },
	{ "continuation to a quoted login", { GREET_PLAIN, "R", "S:+ what?", NULL },
	  O365_E_PROTO, "continuation" },
	{ "untagged literal skipped", { GREET_PLAIN, "R", "P:* 1 FETCH (BODY[] {12}\r\nA001 OK fake", "S:)",
	  "S:A001 OK real", NULL }, O365_OK, NULL },
	{ "two literals in one response", { GREET_PLAIN, "R", "P:* 1 FETCH (A {3}\r\nabc B {2}\r\nxy",
	  "S:)", "S:A001 OK real", NULL }, O365_OK, NULL },
	{ "literal at the limit", { GREET_PLAIN, "R", "S:* 1 FETCH (BODY[] {65536}", "G:65536", "S:)",
	  "S:A001 OK real", NULL }, O365_OK, NULL },
	{ "literal over the limit", { GREET_PLAIN, "R", "S:* 1 FETCH (BODY[] {65537}", "G:65537", "S:)",
	  "S:A001 OK real", NULL }, O365_E_TOOLONG, "literal" },
	{ "untagged lines at the limit", { GREET_PLAIN, "R", "F:1000", "S:A001 OK done", NULL },
	  O365_OK, NULL },
	{ "endless untagged lines", { GREET_PLAIN, "R", "F:1001", "S:A001 OK done", NULL },
	  O365_E_TOOLONG, "untagged" },
	{ "over-long line", { GREET_PLAIN, "R", "G:9000", NULL }, O365_E_TOOLONG, "longer" },
};

static void
login_maps_answers(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(login_answers) / sizeof(login_answers[0]); i++) {
		const struct answer_case *a = &login_answers[i];
		struct run r;

		print_message("case: %s\n", a->name);
		run_start(&r, a->steps, 5000);
		assert_int_equal(r.start_r, O365_OK);
		assert_int_equal(o365_imap_login(r.im, "alice", "MARKER-pw-1", 11, &r.dl, &r.err), a->want);
		assert_int_equal(r.err.code, a->want);
		if (a->why != NULL && strstr(r.err.why, a->why) == NULL)
			fail_msg("why \"%s\" lacks \"%s\"", r.err.why, a->why);
		assert_string_equal(run_finish(&r), "A001 LOGIN \"alice\" \"MARKER-pw-1\"\r\n");
		assert_not_logged("MARKER-pw-1", 11);
		run_free(&r);
	}
}

/* A line of exactly O365_MAX_IMAP_LINE bytes is read; one more is refused. */
static void
greeting_line_limit(void **state)
{
	char *line;
	const char *steps[2] = { NULL, NULL };
	struct run r;
	int extra;

	(void)state;
	for (extra = 0; extra <= 1; extra++) {
		size_t n = O365_MAX_IMAP_LINE + (size_t)extra;

		line = malloc(n + 3);
		assert_non_null(line);
		memcpy(line, "S:* OK [CAPABILITY IMAP4rev1] ", 30);
		memset(line + 30, 'x', n + 2 - 30);
		line[n + 2] = '\0';		/* "S:" + n bytes of line */
		steps[0] = line;
		run_start(&r, steps, 5000);
		assert_int_equal(r.start_r, extra ? O365_E_TOOLONG : O365_OK);
		if (!extra)
			assert_int_equal(strlen(o365_imap_greeting(r.im)), 255);	/* capped */
		assert_string_equal(run_finish(&r), "");
		run_free(&r);
		free(line);
	}
}

/* ------------------------------------------------------------------ */
/* greetings and capabilities                                          */
/* ------------------------------------------------------------------ */

static void
greeting_results(void **state)
{
	static const struct answer_case cases[] = {
		{ "preauth", { "S:* PREAUTH IMAP4rev1 server logged in as alice", NULL },
		  O365_E_PROTO, "server pre-authenticated" },
		{ "bye", { "S:* BYE Too many connections", NULL }, O365_E_TEMP, "Too many connections" },
		{ "tagged", { "S:A001 OK hello", NULL }, O365_E_PROTO, "greeting" },
		{ "continuation", { "S:+ hello", NULL }, O365_E_PROTO, "greeting" },
		{ "no", { "S:* NO go away", NULL }, O365_E_PROTO, "greeting" },
		{ "data", { "S:* CAPABILITY IMAP4rev1", NULL }, O365_E_PROTO, "greeting" },
		{ "smtp", { "S:220 smtp.example ESMTP", NULL }, O365_E_PROTO, "malformed" },
		{ "silence", { "C", NULL }, O365_E_NET, "closed" },
		{ "capability refused", { "S:* OK hi", "R", "S:A001 BAD no", NULL }, O365_E_PROTO, "BAD" },
		{ "capability wrong tag", { "S:* OK hi", "R", "S:A002 OK done", NULL }, O365_E_PROTO, "tag" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;

		print_message("case: %s\n", cases[i].name);
		run_start(&r, cases[i].steps, 5000);
		assert_int_equal(r.start_r, cases[i].want);
		assert_null(r.im);
		if (strstr(r.err.why, cases[i].why) == NULL)
			fail_msg("why \"%s\" lacks \"%s\"", r.err.why, cases[i].why);
		run_finish(&r);
		run_free(&r);
	}
}

static void
capabilities_from_command(void **state)
{
	static const char *const steps[] = { "S:* OK hi", "R",
		"S:* capability IMAP4rev1 sasl-ir AUTH=PLAIN", "S:A001 OK done", NULL };
	struct run r;

	(void)state;
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_true(o365_imap_has_cap(r.im, "SASL-IR"));
	assert_true(o365_imap_has_cap(r.im, "auth=plain"));
	assert_true(o365_imap_has_cap(r.im, "IMAP4REV1"));
	assert_false(o365_imap_has_cap(r.im, "AUTH"));
	assert_false(o365_imap_has_cap(r.im, "SASL"));
	assert_false(o365_imap_has_cap(r.im, "LITERAL+"));
	assert_non_null(o365_imap_conn(r.im));
	assert_string_equal(o365_imap_greeting(r.im), "hi");
	assert_string_equal(run_finish(&r), "A001 CAPABILITY\r\n");
	run_free(&r);
}

/* ------------------------------------------------------------------ */
/* Exchange Online transcripts                                          */
/* ------------------------------------------------------------------ */

static void
exchange_login_failed_then_bye(void **state)
{
	static const char *const steps[] = { EXO_GREETING, "R", EXO_CAPS,
		"S:A001 OK CAPABILITY completed.", "R", "S:A002 NO LOGIN failed.",
		"S:* BYE Microsoft Exchange Server IMAP4 server signing off.", "C", NULL };
	struct run r;

	(void)state;
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_string_equal(o365_imap_greeting(r.im), "The Microsoft Exchange IMAP4 service is ready. "
	    "[TQBXADIAUABSADEAOABDAEEAMAAwADEANQAuAG4AYQBtAHAAcgBkADEAOAAuAHAAcgBvAGQALgBvAHUAdABsAG8AbwBrAC4AYwBvAG0A]");
	assert_true(o365_imap_has_cap(r.im, "AUTH=XOAUTH2"));
	assert_true(o365_imap_has_cap(r.im, "SASL-IR"));
	assert_true(o365_imap_has_cap(r.im, "LITERAL+"));
	assert_int_equal(o365_imap_login(r.im, "alice@contoso.com", "MARKER-exo-pw", 13, &r.dl, &r.err),
	    O365_E_AUTH);
	assert_string_equal(r.err.why, "LOGIN refused: NO LOGIN failed.");
	assert_string_equal(run_finish(&r), "A001 CAPABILITY\r\n"
	    "A002 LOGIN \"alice@contoso.com\" \"MARKER-exo-pw\"\r\n");
	assert_not_logged("MARKER-exo-pw", 13);
	assert_non_null(strstr(cap.text, "C: A002 LOGIN \"alice@contoso.com\" <secret>"));
	run_free(&r);
}

static char *
b64(const char *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	assert_non_null(out);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)p, (int)n);
	return out;
}

static char *
xoauth2_b64(const char *user, const char *token)
{
	char *raw, *out;
	int n;

	n = asprintf(&raw, "user=%s\001auth=Bearer %s\001\001", user, token);
	assert_true(n > 0);
	out = b64(raw, (size_t)n);
	free(raw);
	return out;
}

static char *
make_token(size_t n)
{
	char *t = malloc(n + 1);
	size_t i;
	static const char cs[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

	assert_non_null(t);
	memcpy(t, "eyJ0eXAiOiJKV1QiMARKER", 22);
	for (i = 22; i < n; i++)
		t[i] = cs[(i * 7) % (sizeof(cs) - 1)];
	t[n] = '\0';
	return t;
}

/* tmpl with every "@B@" replaced by blob */
static char *
subst(const char *tmpl, const char *blob)
{
	size_t bl = strlen(blob), n = 0;
	const char *p;
	char *out, *o;

	for (p = tmpl; (p = strstr(p, "@B@")) != NULL; p += 3)
		n++;
	out = malloc(strlen(tmpl) + n * bl + 1);
	assert_non_null(out);
	for (o = out, p = tmpl; *p != '\0';) {
		if (strncmp(p, "@B@", 3) == 0) {
			memcpy(o, blob, bl);
			o += bl;
			p += 3;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

struct xoauth_case {
	const char	*name;
	const char	*steps[10];
	size_t		 toklen;
	const char	*sent;		/* what the client sends; @B@ is the blob */
	int		 want;
	const char	*why;
};

#define XO_GREET	"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Gimap ready"
#define EXO_PREFIX	EXO_GREETING, "R", EXO_CAPS, "S:A001 OK CAPABILITY completed.", "R"

static const struct xoauth_case xoauth_cases[] = {
	{ "exchange ok, SASL-IR", { EXO_PREFIX, "S:A002 OK AUTHENTICATE completed.", NULL },
	  1500, "A001 CAPABILITY\r\nA002 AUTHENTICATE XOAUTH2 @B@\r\n", O365_OK, NULL },
	{ "exchange bad token", { EXO_PREFIX, "S:A002 NO AUTHENTICATE failed.", NULL },
	  1500, "A001 CAPABILITY\r\nA002 AUTHENTICATE XOAUTH2 @B@\r\n", O365_E_AUTH,
	  "AUTHENTICATE XOAUTH2 refused: NO AUTHENTICATE failed." },
	{ "3 KB token, SASL-IR", { EXO_PREFIX, "S:A002 OK AUTHENTICATE completed.", NULL },
	  3072, "A001 CAPABILITY\r\nA002 AUTHENTICATE XOAUTH2 @B@\r\n", O365_OK, NULL },
	{ "6.4 KB token does not fit a line: no SASL-IR",
	  { EXO_PREFIX, "S:+ ", "R", "S:A002 OK AUTHENTICATE completed.", NULL },
	  6400, "A001 CAPABILITY\r\nA002 AUTHENTICATE XOAUTH2\r\n@B@\r\n", O365_OK, NULL },
	/* "A002 AUTHENTICATE XOAUTH2 " is 26 bytes; the blob of a 6086-byte
	 * token is 8164 bytes (line 8190 <= 8192), of 6087 bytes 8168 (8194) */
	{ "SASL-IR line just under the limit",
	  { EXO_PREFIX, "S:A002 OK AUTHENTICATE completed.", NULL },
	  6086, "A001 CAPABILITY\r\nA002 AUTHENTICATE XOAUTH2 @B@\r\n", O365_OK, NULL },
	{ "SASL-IR line just over the limit",
	  { EXO_PREFIX, "S:+ ", "R", "S:A002 OK AUTHENTICATE completed.", NULL },
	  6087, "A001 CAPABILITY\r\nA002 AUTHENTICATE XOAUTH2\r\n@B@\r\n", O365_OK, NULL },
	{ "no SASL-IR advertised",
	  { "S:* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi", "R", "S:+", "R", "S:A001 OK done", NULL },
	  3072, "A001 AUTHENTICATE XOAUTH2\r\n@B@\r\n", O365_OK, NULL },
	{ "refused before the continuation",
	  { "S:* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] hi", "R", "S:A001 NO [UNAVAILABLE] later", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2\r\n", O365_E_TEMP, "UNAVAILABLE" },
	{ "gmail-style error challenge",
	  { XO_GREET, "R",
	    "S:+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==",
	    "R", "S:A001 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", NULL },
	  2000, "A001 AUTHENTICATE XOAUTH2 @B@\r\n\r\n", O365_E_AUTH, "(status 400)" },
	{ "error challenge, numeric status",
	  { XO_GREET, "R", "S:+ eyJzdGF0dXMiOiA0MDEsICJzY2hlbWVzIjoiQmVhcmVyIn0=",	/* {"status": 401, ...} */
	    "R", "S:A001 NO failed", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2 @B@\r\n\r\n", O365_E_AUTH, "(status 401)" },
	{ "error challenge, not base64",
	  { XO_GREET, "R", "S:+ %%%not-base64", "R", "S:A001 NO failed", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2 @B@\r\n\r\n", O365_E_AUTH, "NO failed" },
	{ "second challenge is a protocol error",
	  { XO_GREET, "R", "S:+ e30=", "R", "S:+ e30=", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2 @B@\r\n\r\n", O365_E_PROTO, "continuation" },
	{ "unavailable", { XO_GREET, "R", "S:A001 NO [UNAVAILABLE] backend down", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2 @B@\r\n", O365_E_TEMP, "UNAVAILABLE" },
	{ "bye", { XO_GREET, "R", "S:* BYE Microsoft Exchange Server IMAP4 server signing off.", "C", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2 @B@\r\n", O365_E_TEMP, "signing off" },
	{ "ok after the error challenge is the server's word",
	  { XO_GREET, "R", "S:+ e30=", "R", "S:A001 OK fine", NULL },
	  100, "A001 AUTHENTICATE XOAUTH2 @B@\r\n\r\n", O365_OK, NULL },
};

static void
xoauth2_flows(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(xoauth_cases) / sizeof(xoauth_cases[0]); i++) {
		const struct xoauth_case *x = &xoauth_cases[i];
		char *tok = make_token(x->toklen), *blob = xoauth2_b64("alice@contoso.com", tok);
		char *want = subst(x->sent, blob);
		struct run r;

		print_message("case: %s\n", x->name);
		run_start(&r, x->steps, 5000);
		assert_int_equal(r.start_r, O365_OK);
		assert_int_equal(o365_imap_auth_xoauth2(r.im, "alice@contoso.com", tok, x->toklen,
		    &r.dl, &r.err), x->want);
		if (x->why != NULL && strstr(r.err.why, x->why) == NULL)
			fail_msg("why \"%s\" lacks \"%s\"", r.err.why, x->why);
		assert_string_equal(run_finish(&r), want);
		assert_not_logged(tok, strlen(tok));
		assert_not_logged(blob, strlen(blob));
		assert_not_logged("MARKER", 6);
		free(want);
		free(tok);
		free(blob);
		run_free(&r);
	}
}

/* A Ctrl-A in the user name or token would forge XOAUTH2 fields. */
static void
xoauth2_refuses_ctrl_a(void **state)
{
	static const char *const steps[] = { XO_GREET, NULL };
	struct run r;

	(void)state;
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_auth_xoauth2(r.im, "a\001b", "tok", 3, &r.dl, &r.err), O365_E_INVAL);
	assert_int_equal(o365_imap_auth_xoauth2(r.im, "alice", "t\001k", 3, &r.dl, &r.err), O365_E_INVAL);
	assert_string_equal(run_finish(&r), "");
	run_free(&r);
}

static void
plain_flows(void **state)
{
	static const char *const ir_steps[] = { "S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi",
		"R", "S:A001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in", NULL };
	static const char *const nonir_steps[] = { "S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi",
		"R", "S:+ ", "R", "S:A001 NO [AUTHENTICATIONFAILED] Authentication failed.", NULL };
	static const char pw[] = "MARKER p\xc3\xa4ss \"w\\{5}";
	char raw[128], *blob, *want;
	struct run r;
	size_t n;

	(void)state;
	n = (size_t)snprintf(raw, sizeof(raw), "%calice%c%s", 0, 0, pw);
	blob = b64(raw, n);

	run_start(&r, ir_steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", pw, strlen(pw), &r.dl, &r.err), O365_OK);
	assert_true(o365_imap_has_cap(r.im, "IDLE"));		/* caps from the tagged OK */
	run_finish(&r);
	assert_true(asprintf(&want, "A001 AUTHENTICATE PLAIN %s\r\n", blob) > 0);
	assert_string_equal(r.peer.got, want);
	assert_not_logged(blob, strlen(blob));
	assert_not_logged("MARKER", 6);
	assert_non_null(strstr(cap.text, "C: A001 AUTHENTICATE PLAIN <secret>"));
	free(want);
	run_free(&r);

	run_start(&r, nonir_steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", pw, strlen(pw), &r.dl, &r.err), O365_E_AUTH);
	assert_string_equal(r.err.why,
	    "AUTHENTICATE PLAIN refused: NO [AUTHENTICATIONFAILED] Authentication failed.");
	run_finish(&r);
	assert_true(asprintf(&want, "A001 AUTHENTICATE PLAIN\r\n%s\r\n", blob) > 0);
	assert_string_equal(r.peer.got, want);
	assert_not_logged(blob, strlen(blob));
	assert_not_logged("MARKER", 6);
	free(want);
	run_free(&r);
	free(blob);
}

/* ------------------------------------------------------------------ */
/* deadlines and LOGOUT                                                 */
/* ------------------------------------------------------------------ */

static void
silent_server_times_out(void **state)
{
	static const char *const steps[] = { GREET_PLAIN, "R", NULL };	/* then silence */
	static const char *const trickle[] = { GREET_PLAIN, "R", "P:* 1 EX", NULL };
	struct timespec t0;
	struct run r;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_start(&r, steps, 300);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_TIMEOUT);
	assert_true(o365_elapsed_ms(&t0) < 5000);	/* generous: the deadline was 300 ms */
	/* out of step now: a late reply could be misread, so no more commands */
	o365_deadline_in(&r.dl, 5000);
	assert_int_equal(o365_imap_login(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_PROTO);
	assert_non_null(strstr(r.err.why, "unusable"));
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_PROTO);
	assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_E_PROTO);
	assert_string_equal(run_finish(&r), "A001 LOGIN \"alice\" \"pw\"\r\n");
	run_free(&r);

	run_start(&r, trickle, 300);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_TIMEOUT);
	run_finish(&r);
	run_free(&r);

	/* a server that trickles untagged lines forever: the one deadline
	 * for the whole command ends it, however often bytes arrive */
	{
		static const char *const drip[] = { GREET_PLAIN, "R", "K", NULL };

		run_start(&r, drip, 500);
		assert_int_equal(r.start_r, O365_OK);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(o365_imap_login(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_TIMEOUT);
		assert_true(o365_elapsed_ms(&t0) < 5000);
		run_finish(&r);
		run_free(&r);
	}

	/* the greeting never comes */
	{
		static const char *const none[] = { NULL };

		run_start(&r, none, 300);
		assert_int_equal(r.start_r, O365_E_TIMEOUT);
		run_finish(&r);
		run_free(&r);
	}
}

static void
logout_flows(void **state)
{
	static const char *const ok[] = { GREET_PLAIN, "R",
		"S:* BYE IMAP4rev1 Server logging out", "S:A001 OK LOGOUT completed", NULL };
	static const char *const closed[] = { GREET_PLAIN, "R", "S:* BYE bye", "C", NULL };
	static const char *const rude[] = { GREET_PLAIN, "R", "C", NULL };
	struct run r;

	(void)state;
	run_start(&r, ok, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_OK);
	assert_string_equal(run_finish(&r), "A001 LOGOUT\r\n");
	run_free(&r);

	run_start(&r, closed, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_OK);
	run_finish(&r);
	run_free(&r);

	/* after Exchange's "NO LOGIN failed." and BYE, LOGOUT still ends cleanly */
	{
		static const char *const exo[] = { GREET_PLAIN, "R", "S:A001 NO LOGIN failed.",
			"S:* BYE Microsoft Exchange Server IMAP4 server signing off.", "C", NULL };

		run_start(&r, exo, 5000);
		assert_int_equal(r.start_r, O365_OK);
		assert_int_equal(o365_imap_login(r.im, "a", "b", 1, &r.dl, &r.err), O365_E_AUTH);
		assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_OK);
		run_finish(&r);
		run_free(&r);
	}

	run_start(&r, rude, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_E_NET);
	run_finish(&r);
	run_free(&r);
}

/* A full session with debug logging: LOGIN, then LOGOUT; tags advance. */
static void
session_tags_advance(void **state)
{
	static const char *const steps[] = { "S:* OK hi", "R", "S:* CAPABILITY IMAP4rev1 LITERAL+",
		"S:A001 OK done", "R", "R", "R", "S:A002 OK [CAPABILITY IMAP4rev1] in", "R",
		"S:* BYE out", "S:A003 OK done", NULL };
	struct run r;

	(void)state;
	run_start(&r, steps, 5000);
	assert_int_equal(r.start_r, O365_OK);
	assert_int_equal(o365_imap_login(r.im, UTF8USR, "MARKER-\xe2\x82\xac", 10, &r.dl, &r.err), O365_OK);
	assert_false(o365_imap_has_cap(r.im, "LITERAL+"));	/* replaced by the new list */
	/* RFC 3501 section 3: no second authentication; nothing is sent */
	assert_int_equal(o365_imap_login(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_PROTO);
	assert_string_equal(r.err.why, "IMAP command not allowed when authenticated");
	assert_int_equal(o365_imap_auth_xoauth2(r.im, "alice", "tok", 3, &r.dl, &r.err), O365_E_PROTO);
	assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_OK);
	assert_int_equal(o365_imap_logout(r.im, &r.dl, &r.err), O365_E_PROTO);
	assert_int_equal(o365_imap_auth_plain(r.im, "alice", "pw", 2, &r.dl, &r.err), O365_E_PROTO);
	assert_string_equal(run_finish(&r), "A001 CAPABILITY\r\nA002 LOGIN {7+}\r\n" UTF8USR
	    " {10+}\r\nMARKER-\xe2\x82\xac\r\nA003 LOGOUT\r\n");
	assert_not_logged("MARKER", 6);
	assert_non_null(strstr(cap.text, "C: A003 LOGOUT"));
	assert_non_null(strstr(cap.text, "S: * BYE out"));
	assert_non_null(strstr(cap.text, "imap: not authenticated -> authenticated"));
	run_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_accepts_good_lines),
		cmocka_unit_test(parse_refuses_bad_lines),
		cmocka_unit_test(parse_respects_length),
		cmocka_unit_test(login_sends_exact_lines),
		cmocka_unit_test(login_long_credentials),
		cmocka_unit_test(login_literal_minus_long),
		cmocka_unit_test(refused_credentials_send_nothing),
		cmocka_unit_test(login_credential_at_limit),
		cmocka_unit_test(login_escaped_credentials_at_limit),
		cmocka_unit_test(early_ok_is_not_a_login),
		cmocka_unit_test(login_refused_when_logindisabled),
		cmocka_unit_test(login_maps_answers),
		cmocka_unit_test(greeting_line_limit),
		cmocka_unit_test(greeting_results),
		cmocka_unit_test(capabilities_from_command),
		cmocka_unit_test(exchange_login_failed_then_bye),
		cmocka_unit_test(xoauth2_flows),
		cmocka_unit_test(xoauth2_refuses_ctrl_a),
		cmocka_unit_test(plain_flows),
		cmocka_unit_test(silent_server_times_out),
		cmocka_unit_test(logout_flows),
		cmocka_unit_test(session_tags_advance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
