/*
 * test_sendmail_probe.c: o365-sendmail --probe (sendmail-shim/probe.c)
 * against fakeserver.py playing Exchange Online over STARTTLS with the test
 * PKI: the printed report (greeting, capabilities before and after
 * STARTTLS, TLS details, AUTH result, the reply table's advice) and that
 * the password never shows up in it, even when a server echoes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "o365/sasl.h"
#include "fakeserver.h"
#include "probe.h"
#include "spawn.h"

#define USER	"relay@contoso.com"
#define PASS	"Pr0be-Marker-Pa55word"

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

static const char *GREETING =
    "S: 220 BN8PR.outlook.office365.com Microsoft ESMTP MAIL Service ready at Thu, "
    "26 Nov 2026 01:00:00 +0000\n";
static const char *EHLO_PLAIN =
    "C: EHLO web1.example.com\n"
    "S: 250-BN8PR.outlook.office365.com Hello [203.0.113.5]\n"
    "S: 250-SIZE 157286400\nS: 250-PIPELINING\nS: 250-DSN\nS: 250-ENHANCEDSTATUSCODES\n"
    "S: 250-STARTTLS\nS: 250-8BITMIME\nS: 250-BINARYMIME\nS: 250-CHUNKING\nS: 250 SMTPUTF8\n"
    "C: STARTTLS\nS: 220 2.0.0 SMTP server ready\nstarttls\n";
static const char *EHLO_TLS =
    "C: EHLO web1.example.com\n"
    "S: 250-BN8PR.outlook.office365.com Hello [203.0.113.5]\n"
    "S: 250-SIZE 157286400\nS: 250-PIPELINING\nS: 250-DSN\nS: 250-ENHANCEDSTATUSCODES\n"
    "S: 250-AUTH LOGIN XOAUTH2\nS: 250-8BITMIME\nS: 250-BINARYMIME\nS: 250-CHUNKING\n"
    "S: 250 SMTPUTF8\n";

static void
b64(const char *in, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));

	out[n] = '\0';
}

/* The AUTH LOGIN exchange, ending with the server's final line. */
static void
login_script(char *buf, size_t size, const char *final)
{
	char u[128], p[128];

	b64(USER, u);
	b64(PASS, p);
	snprintf(buf, size, "%s%s%sC: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: %s\n"
	    "S: 334 UGFzc3dvcmQ6\nC: %s\nS: %s\nC: QUIT\nS: 221 2.0.0 Service closing\n",
	    GREETING, EHLO_PLAIN, EHLO_TLS, u, p, final);
}

/* Run the probe against the fake; returns the report (caller frees). */
static char *
run_probe(const char *script, const char *cert, int with_auth, int *r_out, char **transcript)
{
	struct o365_tls_opts tls = { cafile, NULL, 0 };
	struct sm_probe_opts o;
	struct o365_error err;
	struct o365_fake f;
	char *report = NULL;
	size_t len = 0;
	FILE *out;

	assert_int_equal(o365_fake_start(&f, script, pki, cert, "none", (char *)NULL), 0);
	memset(&o, 0, sizeof(o));
	o.host = "localhost";
	o.port = (unsigned)f.port;
	o.tls_mode = O365_SMTP_STARTTLS;
	o.tls = &tls;
	o.helo = "web1.example.com";
	o.timeout_ms = 10000;
	if (with_auth) {
		o.auth_user = USER;
		o.auth_mech = O365_SASL_LOGIN;
		o.secret = PASS;
		o.secretlen = strlen(PASS);
	}
	assert_non_null(out = open_memstream(&report, &len));
	o365_error_clear(&err);
	*r_out = sm_probe(&o, out, &err);
	assert_int_equal(fclose(out), 0);
	*transcript = o365_fake_finish(&f, 10000);
	assert_non_null(*transcript);
	return report;
}

static void
assert_no_secret(const char *report)
{
	char p[128];

	b64(PASS, p);
	assert_null(strstr(report, PASS));
	assert_null(strstr(report, p));
	assert_null(strstr(report, "Pr0be-Marker"));
}

static void
exchange_probe_reports_everything(void **state)
{
	char script[8192], *rep, *t;
	int r;

	(void)state;
	login_script(script, sizeof(script), "235 2.7.0 Authentication successful");
	rep = run_probe(script, "server", 1, &r, &t);
	if (r != O365_OK)
		print_error("%s\n", rep);
	assert_int_equal(r, O365_OK);
	assert_null(strstr(t, "MISMATCH"));
	assert_null(strstr(t, "MAIL FROM"));			/* no mail sent */
	assert_non_null(strstr(t, "C: QUIT\nEOF\n"));
	assert_non_null(strstr(rep, "Probing localhost port "));
	assert_non_null(strstr(rep, "  S: 220 BN8PR.outlook.office365.com Microsoft ESMTP"));
	assert_non_null(strstr(rep, "Capabilities before STARTTLS: SIZE 157286400, PIPELINING, "
	    "DSN, ENHANCEDSTATUSCODES, STARTTLS, 8BITMIME, BINARYMIME, CHUNKING, SMTPUTF8\n"));
	assert_non_null(strstr(rep, "Capabilities after STARTTLS: SIZE 157286400, PIPELINING, "
	    "DSN, ENHANCEDSTATUSCODES, AUTH LOGIN XOAUTH2, 8BITMIME, BINARYMIME, CHUNKING, "
	    "SMTPUTF8\n"));
	assert_non_null(strstr(rep, "TLS: TLSv1."));
	assert_non_null(strstr(rep, ", cipher "));
	assert_non_null(strstr(rep, "Certificate: "));
	assert_non_null(strstr(rep, "localhost"));
	assert_non_null(strstr(rep, "  issuer: "));
	assert_non_null(strstr(rep, "  not after: "));
	assert_non_null(strstr(rep, "verification: ok\n"));
	assert_non_null(strstr(rep, "  C: <secret>\n"));
	assert_non_null(strstr(rep, "AUTH LOGIN as " USER ": ok (235 2.7.0 Authentication "
	    "successful)\n"));
	assert_non_null(strstr(rep, "Result: ok\n"));
	assert_no_secret(rep);
	free(rep);
	free(t);
}

static void
refused_auth_gets_the_table_advice(void **state)
{
	char script[8192], *rep, *t;
	int r;

	(void)state;
	login_script(script, sizeof(script), "535 5.7.139 Authentication unsuccessful, "
	    "SmtpClientAuthentication is disabled for the Tenant. Visit "
	    "https://aka.ms/smtp_auth_disabled for more information.");
	rep = run_probe(script, "server", 1, &r, &t);
	assert_int_equal(r, O365_E_AUTH);
	assert_null(strstr(t, "MISMATCH"));
	assert_non_null(strstr(rep, "AUTH LOGIN as " USER ": failed: "));
	assert_non_null(strstr(rep, "Queue action: hold-queue (rule auth-disabled-tenant)\n"));
	assert_non_null(strstr(rep, "Set-CASMailbox"));
	assert_non_null(strstr(rep, "Result: auth\n"));
	assert_no_secret(rep);
	free(rep);
	free(t);
}

/* A server that quotes the password back: the report still masks it. */
static void
echoed_password_is_masked(void **state)
{
	char script[8192], *rep, *t;
	int r;

	(void)state;
	login_script(script, sizeof(script), "535 5.7.3 Authentication unsuccessful for "
	    "password " PASS);
	rep = run_probe(script, "server", 1, &r, &t);
	assert_int_equal(r, O365_E_AUTH);
	assert_non_null(strstr(rep, "rule auth-failed"));
	assert_non_null(strstr(rep, "for password <secret>"));
	assert_no_secret(rep);
	free(rep);
	free(t);
}

static void
untrusted_certificate_is_reported(void **state)
{
	char script[8192], *rep, *t;
	int r;

	(void)state;
	snprintf(script, sizeof(script), "%s%s", GREETING, EHLO_PLAIN);
	rep = run_probe(script, "untrusted", 1, &r, &t);
	assert_int_equal(r, O365_E_TLS);
	assert_non_null(strstr(rep, "Capabilities before STARTTLS: SIZE 157286400"));
	assert_non_null(strstr(rep, "Connection failed: "));
	assert_non_null(strstr(rep, "Queue action: retry (rule tls)\n"));
	assert_non_null(strstr(rep, "Result: tls\n"));
	assert_null(strstr(rep, "AUTH LOGIN as"));
	assert_null(strstr(t, "AUTH"));			/* nothing sent after the failure */
	assert_no_secret(rep);
	free(rep);
	free(t);
}

static void
without_credentials_auth_is_not_tried(void **state)
{
	char script[8192], *rep, *t;
	int r;

	(void)state;
	snprintf(script, sizeof(script), "%s%s%sC: QUIT\nS: 221 bye\n", GREETING, EHLO_PLAIN,
	    EHLO_TLS);
	rep = run_probe(script, "server", 0, &r, &t);
	assert_int_equal(r, O365_OK);
	assert_null(strstr(t, "MISMATCH"));
	assert_null(strstr(t, "AUTH"));
	assert_non_null(strstr(rep, "AUTH: not tried"));
	assert_non_null(strstr(rep, "Result: ok\n"));
	free(rep);
	free(t);
}

/* A 5xx greeting: the session is refused, the queue would be held. */
static void
refused_greeting_holds_the_queue(void **state)
{
	char *rep, *t;
	int r;

	(void)state;
	rep = run_probe("S: 554 5.7.1 Service unavailable; Client host blocked\n"
	    "C: QUIT\nS: 221 bye\n", "server", 1, &r, &t);
	assert_int_equal(r, O365_E_PERM);
	assert_non_null(strstr(rep, "Capabilities before STARTTLS: (none seen)\n"));
	assert_non_null(strstr(rep, "Queue action: hold-queue (rule session-refused)\n"));
	assert_non_null(strstr(rep, "Result: permanent\n"));
	free(rep);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exchange_probe_reports_everything),
		cmocka_unit_test(refused_auth_gets_the_table_advice),
		cmocka_unit_test(echoed_password_is_masked),
		cmocka_unit_test(untrusted_certificate_is_reported),
		cmocka_unit_test(without_credentials_auth_is_not_tried),
		cmocka_unit_test(refused_greeting_holds_the_queue),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
