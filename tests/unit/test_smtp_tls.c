/*
 * test_smtp_tls.c: o365_smtp_connect over real TCP and TLS against the
 * scripted fakeserver.py: STARTTLS, capabilities after TLS, implicit TLS,
 * certificate failures, STARTTLS injection and the SMTP hostile-scenario
 * catalogue.  Transcripts are compared exactly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "o365/sasl.h"
#include "o365/smtp.h"
#include "fakeserver.h"
#include "spawn.h"
#include "testutil.h"

static char pki[256];
static char cafile[300];

static int
group_setup(void **state)
{
	(void)state;
	if (o365_fake_make_pki(pki, sizeof(pki)) != 0)
		return -1;
	snprintf(cafile, sizeof(cafile), "%s/ca.pem", pki);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	o365_test_rmtree(pki);
	return 0;
}

/* Connect to the fake server on port with mode; returns the result. */
static int
smtp_to(int port, enum o365_smtp_tls_mode mode, unsigned ms, const struct o365_log *lg,
    struct o365_smtp **s, struct o365_error *err)
{
	struct o365_tls_opts tls = { cafile, NULL, 0 };
	struct o365_smtp_opts o = { "localhost", (unsigned)port, mode, &tls, "client.example" };
	struct o365_deadline dl;

	o365_deadline_in(&dl, ms);
	return o365_smtp_connect(&o, &dl, lg, s, err);
}

static void
quit(struct o365_smtp **s)
{
	struct o365_deadline dl;

	o365_deadline_in(&dl, 5000);
	o365_smtp_quit(s, &dl);
}

static const char *EXO_GREETING =
    "S: 220 BN8PR.outlook.office365.com Microsoft ESMTP MAIL Service ready at Thu, "
    "26 Nov 2026 01:00:00 +0000\n";
/* Exchange Online's EHLO lists (EXCHANGE-ONLINE.md) */
static const char *EXO_EHLO_PLAIN =
    "S: 250-BN8PR.outlook.office365.com Hello [203.0.113.5]\n"
    "S: 250-SIZE 157286400\nS: 250-PIPELINING\nS: 250-DSN\nS: 250-ENHANCEDSTATUSCODES\n"
    "S: 250-STARTTLS\nS: 250-8BITMIME\nS: 250-BINARYMIME\nS: 250-CHUNKING\nS: 250 SMTPUTF8\n";
static const char *EXO_EHLO_TLS =
    "S: 250-BN8PR.outlook.office365.com Hello [203.0.113.5]\n"
    "S: 250-SIZE 157286400\nS: 250-PIPELINING\nS: 250-DSN\nS: 250-ENHANCEDSTATUSCODES\n"
    "S: 250-AUTH LOGIN XOAUTH2\nS: 250-8BITMIME\nS: 250-BINARYMIME\nS: 250-CHUNKING\n"
    "S: 250 SMTPUTF8\n";

/* The whole Exchange Online way: STARTTLS, AUTH only after it, XOAUTH2 with
 * a 3 KB token, pipelined envelope, DATA; debug log without the secret. */
static void
exchange_session_over_starttls(void **state)
{
	const char *marker = "Tok3n-M4rker-";
	size_t tl = 3000;
	char *tok = malloc(tl + 1), *raw = malloc(tl + 128), *b64 = malloc(2 * tl + 256);
	char *script = malloc(16384), *t;
	struct o365_test_capture *cap = calloc(1, sizeof(*cap));
	struct o365_log lg = { o365_test_capture_sink, cap, 1 };
	const char *rcpts[] = { "bob@example.com" };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s = NULL;
	struct o365_fake f;
	int rl, n, codes[1];
	char msgpath[300], chunk[41];
	FILE *fp;
	int fd;

	(void)state;
	assert_non_null(tok);
	assert_non_null(cap);
	memset(tok, 'k', tl);
	memcpy(tok, marker, strlen(marker));
	tok[tl] = '\0';
	rl = snprintf(raw, tl + 128, "user=alice@contoso.com\001auth=Bearer %s\001\001", tok);
	n = EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)raw, rl);
	b64[n] = '\0';
	snprintf(script, 16384,
	    "%sC: EHLO client.example\n%sC: STARTTLS\nS: 220 2.0.0 SMTP server ready\nstarttls\n"
	    "C: EHLO client.example\n%s"
	    "C: AUTH XOAUTH2\nS: 334 \nC: %s\nS: 235 2.7.0 Authentication successful\n"
	    "C: MAIL FROM:<alice@contoso.com> SIZE=16 BODY=8BITMIME\nC: RCPT TO:<bob@example.com>\n"
	    "S: 250 2.1.0 Sender OK\nS: 250 2.1.5 Recipient OK\n"
	    "C: DATA\nS: 354 Start mail input; end with <CRLF>.<CRLF>\n"
	    "C: Subject: x\nC: \nC: ..hi\nC: .\n"
	    "S: 250 2.0.0 OK <id@BN8PR.prod.outlook.com> [Hostname=BN8PR]\n"
	    "C: QUIT\nS: 221 2.0.0 Service closing transmission channel\n",
	    EXO_GREETING, EXO_EHLO_PLAIN, EXO_EHLO_TLS, b64);
	assert_int_equal(o365_fake_start(&f, script, pki, "server", "none", (char *)NULL), 0);
	assert_int_equal(smtp_to(f.port, O365_SMTP_STARTTLS, 10000, &lg, &s, &err), O365_OK);
	/* capabilities are those after TLS: AUTH now, no STARTTLS */
	assert_false(o365_smtp_caps(s)->starttls);
	assert_int_equal(o365_smtp_caps(s)->auth, O365_SASL_LOGIN | O365_SASL_XOAUTH2);
	o365_deadline_in(&dl, 10000);
	assert_int_equal(o365_smtp_auth(s, O365_SASL_XOAUTH2, "alice@contoso.com", tok, tl, &dl,
	    &err), O365_OK);
	assert_int_equal(o365_smtp_envelope(s, "alice@contoso.com", 16, O365_SMTP_8BIT, rcpts, 1,
	    codes, NULL, &dl, &err), O365_OK);
	assert_int_equal(codes[0], 250);
	snprintf(msgpath, sizeof(msgpath), "%s/msg", pki);
	assert_non_null(fp = fopen(msgpath, "w"));
	fputs("Subject: x\n\n.hi", fp);
	fclose(fp);
	assert_true((fd = open(msgpath, O_RDONLY)) >= 0);
	assert_int_equal(o365_smtp_data_fd(s, fd, &dl, &err), O365_OK);
	close(fd);
	unlink(msgpath);
	quit(&s);
	t = o365_fake_finish(&f, 10000);
	assert_non_null(t);
	assert_null(strstr(t, "MISMATCH"));
	assert_non_null(strstr(t, "C: STARTTLS\nTLS TLSv1."));
	assert_non_null(strstr(t, "C: QUIT\nEOF\n"));
	assert_non_null(strstr(cap->text, "C: <secret>"));
	assert_null(strstr(cap->text, marker));
	/* no part of the blob: where the marker is, and from the middle */
	memcpy(chunk, b64 + 48, 16);
	chunk[16] = '\0';
	assert_null(strstr(cap->text, chunk));
	memcpy(chunk, b64 + 2000, 40);
	chunk[40] = '\0';
	assert_null(strstr(cap->text, chunk));
	free(t);
	free(tok);
	free(raw);
	free(b64);
	free(script);
	free(cap);
}

/* A fake that offers AUTH only after TLS: the client must not remember the
 * pre-TLS capabilities, and must see the new ones. */
static void
capabilities_are_read_again_after_tls(void **state)
{
	static const char *script =
	    "S: 220 fake.example ESMTP\n"
	    "C: EHLO client.example\n"
	    "S: 250-fake.example\nS: 250-PIPELINING\nS: 250-SIZE 1000\nS: 250 STARTTLS\n"
	    "C: STARTTLS\nS: 220 go ahead\nstarttls\n"
	    "C: EHLO client.example\n"
	    "S: 250-fake.example\nS: 250 AUTH PLAIN\n"
	    "C: QUIT\nS: 221 bye\n";
	struct o365_error err;
	struct o365_smtp *s = NULL;
	struct o365_fake f;
	char *t;

	(void)state;
	assert_int_equal(o365_fake_start(&f, script, pki, "server", "none", (char *)NULL), 0);
	assert_int_equal(smtp_to(f.port, O365_SMTP_STARTTLS, 10000, NULL, &s, &err), O365_OK);
	assert_int_equal(o365_smtp_caps(s)->auth, O365_SASL_PLAIN);
	assert_false(o365_smtp_caps(s)->pipelining);
	assert_false(o365_smtp_caps(s)->size_given);
	assert_false(o365_smtp_caps(s)->starttls);
	quit(&s);
	t = o365_fake_finish(&f, 10000);
	assert_non_null(t);
	assert_string_equal(t, "C: EHLO client.example\nC: STARTTLS\nTLS TLSv1.3\n"
	    "C: EHLO client.example\nC: QUIT\nEOF\n");
	free(t);
}

static void
starttls_not_offered_sends_no_auth(void **state)
{
	static const char *script =
	    "S: 220 fake.example ESMTP\n"
	    "C: EHLO client.example\n"
	    "S: 250-fake.example\nS: 250-AUTH PLAIN LOGIN\nS: 250 PIPELINING\n"
	    "C: QUIT\nS: 221 bye\n";
	struct o365_error err;
	struct o365_smtp *s = NULL;
	struct o365_fake f;
	char *t;

	(void)state;
	assert_int_equal(o365_fake_start(&f, script, pki, "server", "none", (char *)NULL), 0);
	assert_int_equal(smtp_to(f.port, O365_SMTP_STARTTLS, 10000, NULL, &s, &err), O365_E_TLS);
	assert_string_equal(err.why, "server does not offer STARTTLS");
	assert_null(s);
	t = o365_fake_finish(&f, 10000);
	assert_non_null(t);
	assert_string_equal(t, "C: EHLO client.example\nC: QUIT\nEOF\n");
	free(t);
}

static void
starttls_injection_is_proto(void **state)
{
	char path[300], buf[4096], *t;
	struct o365_error err;
	struct o365_smtp *s = NULL;
	struct o365_fake f;
	size_t n;
	FILE *fp;

	(void)state;
	assert_non_null(o365_test_src("tests/fake/scenarios/starttls-injection-smtp.txt", path,
	    sizeof(path)));
	assert_non_null(fp = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_int_equal(o365_fake_start(&f, buf, pki, "server", "none", (char *)NULL), 0);
	assert_int_equal(smtp_to(f.port, O365_SMTP_STARTTLS, 10000, NULL, &s, &err), O365_E_PROTO);
	assert_null(s);
	t = o365_fake_finish(&f, 10000);
	assert_non_null(t);
	/* no handshake, and nothing after STARTTLS */
	assert_null(strstr(t, "TLS TLSv"));
	assert_null(strstr(t, "AUTH"));
	assert_non_null(strstr(t, "C: STARTTLS\n"));
	free(t);
}

static void
bad_certificate_sends_no_auth(void **state)
{
	static const char *names[] = { "wronghost", "expired", "selfsigned", "untrusted" };
	static const char *script =
	    "S: 220 fake.example ESMTP\n"
	    "C: EHLO client.example\n"
	    "S: 250-fake.example\nS: 250 STARTTLS\n"
	    "C: STARTTLS\nS: 220 go ahead\nstarttls\n";
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct o365_error err;
		struct o365_smtp *s = NULL;
		struct o365_fake f;
		char *t;

		assert_int_equal(o365_fake_start(&f, script, pki, names[i], "none", (char *)NULL), 0);
		assert_int_equal(smtp_to(f.port, O365_SMTP_STARTTLS, 10000, NULL, &s, &err),
		    O365_E_TLS);
		assert_null(s);
		t = o365_fake_finish(&f, 10000);
		assert_non_null(t);
		assert_null(strstr(t, "AUTH"));
		assert_null(strstr(t, "C: EHLO client.example\nC: STARTTLS\nTLS TLSv1"));
		free(t);
	}
}

static void
implicit_tls_sends_no_starttls(void **state)
{
	static const char *script =
	    "S: 220 fake.example ESMTP\n"
	    "C: EHLO client.example\n"
	    "S: 250-fake.example\nS: 250 AUTH LOGIN\n"
	    "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: Ym9i\nS: 334 UGFzc3dvcmQ6\n"
	    "C: cGFzcyB3b3JkICJxIiAncyc=\n"
	    "S: 535 5.7.3 Authentication unsuccessful\n"
	    "C: QUIT\nS: 221 bye\n";
	const char *pw = "pass word \"q\" 's'";
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s = NULL;
	struct o365_fake f;
	char *t;

	(void)state;
	assert_int_equal(o365_fake_start(&f, script, pki, "server", "implicit", (char *)NULL), 0);
	assert_int_equal(smtp_to(f.port, O365_SMTP_IMPLICIT, 10000, NULL, &s, &err), O365_OK);
	o365_deadline_in(&dl, 10000);
	assert_int_equal(o365_smtp_auth(s, O365_SASL_LOGIN, "bob", pw, strlen(pw), &dl, &err),
	    O365_E_AUTH);
	assert_int_equal(err.reply, 535);
	assert_string_equal(err.enhanced, "5.7.3");
	quit(&s);
	t = o365_fake_finish(&f, 10000);
	assert_non_null(t);
	assert_null(strstr(t, "MISMATCH"));
	assert_null(strstr(t, "STARTTLS"));
	assert_true(strncmp(t, "TLS TLSv1.3\nC: EHLO client.example\n", 35) == 0);
	free(t);
}

/* The SMTP entries of the hostile-scenario catalogue (tests/fake/scenarios). */
static void
scenarios_fail_as_catalogued(void **state)
{
	static const struct {
		const char *name;
		enum o365_smtp_tls_mode mode;
		int want;
	} t[] = {
		{ "smtp-bad-reply-code", O365_SMTP_STARTTLS, O365_E_PROTO },
		{ "smtp-close-mid-reply", O365_SMTP_STARTTLS, O365_E_NET },
		{ "smtp-endless-multiline", O365_SMTP_STARTTLS, O365_E_TOOLONG },
		{ "smtp-never-answers", O365_SMTP_STARTTLS, O365_E_TIMEOUT },
		{ "tls-silent-handshake", O365_SMTP_IMPLICIT, O365_E_TIMEOUT },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char rel[128], path[300], buf[8192];
		struct o365_error err;
		struct o365_smtp *s = NULL;
		struct o365_fake f;
		size_t n;
		FILE *fp;
		int r;

		snprintf(rel, sizeof(rel), "tests/fake/scenarios/%s.txt", t[i].name);
		assert_non_null(o365_test_src(rel, path, sizeof(path)));
		assert_non_null(fp = fopen(path, "r"));
		n = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		assert_int_equal(o365_fake_start(&f, buf, pki, "server", "none", (char *)NULL), 0);
		r = smtp_to(f.port, t[i].mode, 700, NULL, &s, &err);
		if (r != t[i].want)
			fail_msg("%s: got %s (%s)", t[i].name, o365_err_name(r), err.why);
		assert_null(s);
		o365_fake_stop(&f);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exchange_session_over_starttls),
		cmocka_unit_test(capabilities_are_read_again_after_tls),
		cmocka_unit_test(starttls_not_offered_sends_no_auth),
		cmocka_unit_test(starttls_injection_is_proto),
		cmocka_unit_test(bad_certificate_sends_no_auth),
		cmocka_unit_test(implicit_tls_sends_no_starttls),
		cmocka_unit_test(scenarios_fail_as_catalogued),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
