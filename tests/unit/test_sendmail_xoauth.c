/* test_sendmail_xoauth.c: xoauth.c's config, refusal and alert decisions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "xoauth.h"

#define BASE "auth = { mechanism = \"xoauth2\"; user = \"relay@contoso.com\"; };\n" \
	"from = { address = \"relay@contoso.com\"; };\nqueue = { dir = \"/var/spool/x\"; };\n"

static void
reply(struct o365_error *e, int code, const char *enh)
{
	o365_error_clear(e);
	e->reply = code;
	snprintf(e->enhanced, sizeof(e->enhanced), "%s", enh);
}

static void
refused_replies(void **state)
{
	struct o365_error e;

	(void)state;
	reply(&e, 535, "5.7.3");
	assert_true(sm_xoauth_refused(&e));
	reply(&e, 535, "5.7.139");
	assert_true(sm_xoauth_refused(&e));
	reply(&e, 501, "5.5.124");
	assert_true(sm_xoauth_refused(&e));
	reply(&e, 432, "4.3.2");	/* too many connections: temporary, not the token */
	assert_false(sm_xoauth_refused(&e));
	reply(&e, 501, "5.5.2");
	assert_false(sm_xoauth_refused(&e));
	reply(&e, 0, "");		/* no answer at all */
	assert_false(sm_xoauth_refused(&e));
	assert_true(sm_xoauth_needs_admin(O365_E_AUTH));
	assert_true(sm_xoauth_needs_admin(O365_E_CONFIG));
	assert_false(sm_xoauth_needs_admin(O365_E_TEMP));
	assert_false(sm_xoauth_needs_admin(O365_E_NET));
	assert_false(sm_xoauth_needs_admin(O365_E_TLS));
	assert_false(sm_xoauth_needs_admin(O365_E_TIMEOUT));
}

static void
alerts_say_what_to_fix(void **state)
{
	struct sm_conf c;
	struct sm_xoauth x;
	struct o365_tls_opts tls = { 0 };
	struct o365_oauth_error oe;
	struct o365_error e;
	char a[1200];

	(void)state;
	o365_error_clear(&e);
	assert_int_equal(sm_conf_load_string(BASE "oauth = { tenant = \"contoso.onmicrosoft.com\"; "
	    "client_id = \"app-1\"; client_secret_file = \"/etc/o365/s\"; };", &c, &e), O365_OK);
	assert_int_equal(sm_xoauth_init(&x, &c, &tls, 1000, 0, &e), O365_OK);
	assert_int_equal(x.cfg.grant, O365_TOKSTORE_CLIENT_CREDENTIALS);
	assert_string_equal(x.cfg.cache_dir, "/var/spool/x/state");
	assert_null(x.cfg.client_secret);	/* not read without read_secret */
	reply(&e, 535, "5.7.3");
	sm_xoauth_alert_text(&x, 0, O365_E_AUTH, &oe, &e, a, sizeof(a));
	assert_non_null(strstr(a, "SMTP.SendAsApp"));
	assert_non_null(strstr(a, "relay@contoso.com"));
	assert_non_null(strstr(a, "app-1"));
	reply(&e, 535, "5.7.139");
	sm_xoauth_alert_text(&x, 0, O365_E_AUTH, &oe, &e, a, sizeof(a));
	assert_non_null(strstr(a, "SmtpClientAuthenticationDisabled"));
	memset(&oe, 0, sizeof(oe));
	snprintf(oe.error, sizeof(oe.error), "invalid_client");
	oe.aadsts = 7000215;
	o365_error_clear(&e);
	sm_xoauth_alert_text(&x, 1, O365_E_AUTH, &oe, &e, a, sizeof(a));
	assert_non_null(strstr(a, "AADSTS7000215"));
	assert_non_null(strstr(a, "/etc/o365/s"));
	sm_xoauth_free(&x);
	sm_conf_free(&c);

	assert_int_equal(sm_conf_load_string(BASE "oauth = { tenant = \"t\"; client_id = \"pub\"; "
	    "refresh_token_file = \"/var/spool/x/state/rt\"; };", &c, &e), O365_OK);
	assert_int_equal(sm_xoauth_init(&x, &c, &tls, 1000, 1, &e), O365_OK);
	assert_int_equal(x.cfg.grant, O365_TOKSTORE_REFRESH_TOKEN);
	memset(&oe, 0, sizeof(oe));
	snprintf(oe.error, sizeof(oe.error), "invalid_grant");
	oe.aadsts = 700082;
	sm_xoauth_alert_text(&x, 1, O365_E_AUTH, &oe, &e, a, sizeof(a));
	assert_non_null(strstr(a, "AADSTS700082"));
	assert_non_null(strstr(a, "--oauth-login"));
	sm_xoauth_free(&x);
	sm_conf_free(&c);

	/* a certificate: the alert names it (the key is not read without read_secret) */
	assert_int_equal(sm_conf_load_string(BASE "oauth = { tenant = \"t\"; client_id = \"app-2\"; "
	    "certificate_file = \"/etc/o365/app.pem\"; private_key_file = \"/etc/o365/app.key\"; };",
	    &c, &e), O365_OK);
	assert_int_equal(sm_xoauth_init(&x, &c, &tls, 1000, 0, &e), O365_OK);
	assert_int_equal(x.cfg.grant, O365_TOKSTORE_CLIENT_CREDENTIALS);
	assert_null(x.cfg.client_key);
	assert_null(x.cfg.client_secret_file);
	memset(&oe, 0, sizeof(oe));
	snprintf(oe.error, sizeof(oe.error), "invalid_client");
	oe.aadsts = 700027;
	o365_error_clear(&e);
	sm_xoauth_alert_text(&x, 1, O365_E_AUTH, &oe, &e, a, sizeof(a));
	assert_non_null(strstr(a, "certificate credential of app app-2 (invalid_client AADSTS700027)"));
	assert_non_null(strstr(a, "upload /etc/o365/app.pem"));
	assert_non_null(strstr(a, "/etc/o365/app.key"));
	sm_xoauth_free(&x);
	sm_conf_free(&c);

	/* neither grant, or both: refused before any request */
	assert_int_equal(sm_conf_load_string(BASE "oauth = { tenant = \"t\"; client_id = \"pub\"; };",
	    &c, &e), O365_OK);
	assert_int_equal(sm_xoauth_init(&x, &c, &tls, 1000, 0, &e), O365_E_CONFIG);
	sm_conf_free(&c);
}

/* When a queue run starts a new session for a fresh token. */
static void
session_renewed_before_the_token_expires(void **state)
{
	static const struct {
		long	left_at_auth;	/* seconds the token had at AUTH */
		long	left_now;	/* and has now */
		int	stale;
	} t[] = {
		{ 3599, 3599, 0 }, { 3599, 601, 0 }, { 3599, 600, 0 }, { 3599, 599, 1 },
		{ 3599, 0, 1 }, { 3599, -5, 1 },
		{ 603, 603, 0 }, { 603, 600, 0 }, { 603, 599, 1 },	/* just over the margin */
		{ 300, 300, 0 }, { 300, 150, 0 }, { 300, 149, 1 },	/* under it: half its life */
		{ 1, 1, 0 }, { 1, 0, 1 },
	};
	struct sm_xoauth x;
	time_t now = 1795660000;
	size_t i;

	(void)state;
	memset(&x, 0, sizeof(x));
	assert_false(sm_xoauth_session_stale(&x, now));	/* no session token yet */
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		x.sess_left = t[i].left_at_auth;
		x.sess_expires = now + t[i].left_now;
		assert_int_equal(sm_xoauth_session_stale(&x, now), t[i].stale);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refused_replies),
		cmocka_unit_test(alerts_say_what_to_fix),
		cmocka_unit_test(session_renewed_before_the_token_expires),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
