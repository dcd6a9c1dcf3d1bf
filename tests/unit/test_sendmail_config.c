/* test_sendmail_config.c: the shipped sendmail.conf and the key table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static void
shipped_file_loads(void **state)
{
	struct sm_conf c;
	struct o365_error err;

	(void)state;
	o365_error_clear(&err);
	assert_int_equal(sm_conf_load(O365_SOURCE_DIR "/etc/o365/sendmail.conf", &c, &err), O365_OK);
	assert_string_equal(c.smtp_host, "smtp.office365.com");
	assert_int_equal(c.smtp_port, 587);
	assert_int_equal(c.smtp_timeout, 30);
	assert_string_equal(c.smtp_tls, "starttls");
	assert_string_equal(c.auth_mechanism, "login");
	assert_string_equal(c.from_address, "relay@contoso.com");
	assert_int_equal(sm_conf_rewrite(&c), SM_REWRITE_LOCAL);
	assert_string_equal(sm_conf_domain(&c), "contoso.com");
	assert_string_equal(c.queue_dir, "/var/spool/o365-sendmail");
	assert_string_equal(c.queue_user, "o365-sendmail");
	assert_int_equal(c.queue_max_age, 5 * 86400);
	assert_non_null(c.aliases);
	assert_string_equal(c.aliases[0].name, "root");
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_OK);
	sm_conf_free(&c);
}

static void
defaults_and_refusals(void **state)
{
	struct sm_conf c;
	struct o365_error err;

	(void)state;
	o365_error_clear(&err);
	assert_int_equal(sm_conf_load_string("", &c, &err), O365_OK);
	assert_int_equal(c.smtp_port, 587);
	assert_null(c.from_address);
	assert_int_not_equal(sm_conf_check_relay(&c, &err), O365_OK);
	assert_non_null(strstr(err.why, "from.address"));
	sm_conf_free(&c);

	assert_int_equal(sm_conf_load_string("smtp = { hots = \"x\"; };", &c, &err), O365_E_CONFIG);
	assert_int_equal(sm_conf_load_string("from = { rewrite = \"sometimes\"; };", &c, &err), O365_E_CONFIG);
	assert_int_equal(sm_conf_load_string("smtp = { port = 70000; };", &c, &err), O365_E_CONFIG);

	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "oauth.tenant"));
	sm_conf_free(&c);

	/* xoauth2: exactly one grant */
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\"; client_id = \"abc\"; };", &c, &err), O365_OK);
	assert_string_equal(c.oauth_authority, "https://login.microsoftonline.com");
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "exactly one"));
	sm_conf_free(&c);
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\"; client_id = \"abc\";\n"
	    "  client_secret_file = \"/etc/o365/a\"; refresh_token_file = \"/var/b\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_E_CONFIG);
	sm_conf_free(&c);
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\"; client_id = \"abc\";\n"
	    "  refresh_token_file = \"/var/b\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_OK);
	sm_conf_free(&c);
	/* a certificate credential: both files, and alone */
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\"; client_id = \"abc\";\n"
	    "  certificate_file = \"/etc/o365/app.pem\"; private_key_file = \"/etc/o365/app.key\"; };",
	    &c, &err), O365_OK);
	assert_string_equal(c.oauth_certificate_file, "/etc/o365/app.pem");
	assert_string_equal(c.oauth_private_key_file, "/etc/o365/app.key");
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_OK);
	sm_conf_free(&c);
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\"; client_id = \"abc\";\n"
	    "  private_key_file = \"/etc/o365/app.key\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "oauth.private_key_file needs oauth.certificate_file"));
	sm_conf_free(&c);
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\"; client_id = \"abc\";\n"
	    "  certificate_file = \"/etc/o365/app.pem\"; private_key_file = \"/etc/o365/app.key\";\n"
	    "  client_secret_file = \"/etc/o365/a\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "exactly one credential, not 2"));
	sm_conf_free(&c);
	assert_int_equal(sm_conf_load_string("auth = { mechanism = \"xoauth2\"; user = \"r@c.com\"; };\n"
	    "from = { address = \"r@c.com\"; };\n"
	    "oauth = { authority = \"http://x\"; tenant = \"t\"; client_id = \"abc\";\n"
	    "  client_secret_file = \"/etc/o365/a\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_check_relay(&c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "https://"));
	sm_conf_free(&c);

	assert_int_equal(sm_conf_load_string("from = { rewrite = \"always\"; };", &c, &err), O365_OK);
	assert_int_equal(sm_conf_rewrite(&c), SM_REWRITE_ALWAYS);
	sm_conf_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shipped_file_loads),
		cmocka_unit_test(defaults_and_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
