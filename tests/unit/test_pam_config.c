/*
 * test_pam_config.c: pam_o365's key table and cross-key rules, and the
 * shipped etc/o365/pam_o365.conf.  The sources are compiled in directly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "../../pam_o365/config.c"
#include "../../pam_o365/policy.c"

static void
check_defaults(const struct pam_o365_conf *c)
{
	assert_string_equal(c->auth.method, "imap-login");
	assert_int_equal(c->method, PAM_O365_IMAP_LOGIN);
	assert_int_equal(c->auth.verify_imap, 1);
	assert_string_equal(c->oauth.authority, "https://login.microsoftonline.com");
	assert_string_equal(c->imap.host, "outlook.office365.com");
	assert_int_equal(c->imap.port, 993);
	assert_int_equal(c->imap.timeout, 10);
	assert_string_equal(c->tls.min_version, "1.2");
	assert_int_equal(c->tls_opts.min_version, TLS1_2_VERSION);
	assert_string_equal(c->user.map, "%u");
	assert_int_equal(c->user.lowercase, 0);
	assert_int_equal(c->scope.min_uid, 1000);
	assert_int_equal(c->scope.allow_root, 0);
	assert_true(c->scope.allow_users == NULL || c->scope.allow_users[0] == NULL);
	assert_true(c->scope.deny_groups == NULL || c->scope.deny_groups[0] == NULL);
	assert_null(c->tls_opts.ca_file);
	assert_null(c->tls_opts.ca_dir);
}

static void
empty_config_gives_defaults(void **state)
{
	struct pam_o365_conf c;
	struct o365_error err;

	(void)state;
	assert_int_equal(pam_o365_conf_load_string("", &c, &err), O365_OK);
	check_defaults(&c);
	pam_o365_conf_free(&c);
}

static void
shipped_config_loads(void **state)
{
	struct pam_o365_conf c;
	struct o365_error err;
	char path[1024];

	(void)state;
	(void)snprintf(path, sizeof(path), "%s/etc/o365/pam_o365.conf", O365_SOURCE_DIR);
	if (pam_o365_conf_load(path, &c, &err) != O365_OK)
		fail_msg("%s", err.why);
	check_defaults(&c);
	pam_o365_conf_free(&c);
}

static void
entra_example_loads(void **state)
{
	/* the commented example of the shipped file, uncommented */
	static const char text[] =
	    "auth = { method = \"entra-ropc\"; verify_imap = true; };\n"
	    "oauth = { tenant = \"contoso.onmicrosoft.com\";\n"
	    "          client_id = \"00000000-0000-0000-0000-000000000000\"; };\n"
	    "imap = { host = \"outlook.office365.com\"; port = 993; timeout = 10; };\n"
	    "user = { map = \"%u@contoso.com\"; lowercase = true; };\n"
	    "tls = { ca_file = \"/etc/ssl/certs/x.pem\"; min_version = \"1.3\"; };\n"
	    "scope = { allow_users = [ \"alice\", \"bob\" ]; deny_groups = \"wheel\";\n"
	    "          min_uid = 0; allow_root = true; };\n";
	struct pam_o365_conf c;
	struct o365_error err;

	(void)state;
	if (pam_o365_conf_load_string(text, &c, &err) != O365_OK)
		fail_msg("%s", err.why);
	assert_int_equal(c.method, PAM_O365_ENTRA_ROPC);
	assert_string_equal(c.oauth.tenant, "contoso.onmicrosoft.com");
	assert_string_equal(c.user.map, "%u@contoso.com");
	assert_int_equal(c.user.lowercase, 1);
	assert_int_equal(c.tls_opts.min_version, TLS1_3_VERSION);
	assert_string_equal(c.tls_opts.ca_file, "/etc/ssl/certs/x.pem");
	assert_string_equal(c.scope.allow_users[0], "alice");
	assert_string_equal(c.scope.allow_users[1], "bob");
	assert_null(c.scope.allow_users[2]);
	assert_string_equal(c.scope.deny_groups[0], "wheel");	/* one string is a list */
	assert_int_equal(c.scope.min_uid, 0);
	assert_int_equal(c.scope.allow_root, 1);
	pam_o365_conf_free(&c);
}

static void
bad_configs_refused(void **state)
{
	static const struct {
		const char	*text;
		const char	*why;	/* in err.why */
	} t[] = {
		{ "imap = { prot = 993; };", "imap.prot" },
		{ "imap = { port = \"993\"; };", "imap.port" },
		{ "imap = { port = 0; };", "imap.port" },
		{ "imap = { port = 65536; };", "imap.port" },
		{ "imap = { timeout = 0; };", "imap.timeout" },
		{ "imap = { timeout = 301; };", "imap.timeout" },
		{ "imap = { host = \"\"; };", "imap.host" },
		{ "auth = { method = \"kerberos\"; };", "auth.method" },
		{ "auth = { method = \"entra-ropc\"; };", "oauth.tenant" },
		{ "auth = { method = \"entra-ropc\"; };\n"
		  "oauth = { tenant = \"t\"; client_id = \"c\"; authority = \"http://x\"; };",
		  "https" },
		{ "user = { map = \"%d\"; };", "user.map" },
		{ "user = { map = \"contoso\"; };", "user.map" },
		{ "tls = { min_version = \"1.1\"; };", "tls.min_version" },
		{ "scope = { min_uid = -1; };", "scope.min_uid" },
		{ "scope = { allow_users = [ 1, 2 ]; };", "scope.allow_users" },
		{ "auth = { verify_imap = \"yes\"; };", "auth.verify_imap" },
		{ "imap = { port = 993 ", "test.conf" },	/* syntax */
	};
	struct pam_o365_conf c;
	struct o365_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		o365_error_clear(&err);
		if (pam_o365_conf_load_string(t[i].text, &c, &err) == O365_OK)
			fail_msg("accepted: %s", t[i].text);
		if (strstr(err.why, t[i].why) == NULL)
			fail_msg("%s: \"%s\" does not name %s", t[i].text, err.why, t[i].why);
		assert_null(c.auth.method);	/* freed and zeroed */
	}
}

static void
timeout_limits(void **state)
{
	struct pam_o365_conf c;
	struct o365_error err;

	(void)state;
	assert_int_equal(pam_o365_conf_load_string("imap = { timeout = 1; };", &c, &err), O365_OK);
	assert_int_equal(c.imap.timeout, 1);
	pam_o365_conf_free(&c);
	assert_int_equal(pam_o365_conf_load_string("imap = { timeout = 300; };", &c, &err), O365_OK);
	assert_int_equal(c.imap.timeout, 300);
	pam_o365_conf_free(&c);
}

static void
missing_file(void **state)
{
	struct pam_o365_conf c;
	struct o365_error err;

	(void)state;
	assert_int_equal(pam_o365_conf_load("/nonexistent/pam_o365.conf", &c, &err), O365_E_IO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_config_gives_defaults),
		cmocka_unit_test(shipped_config_loads),
		cmocka_unit_test(entra_example_loads),
		cmocka_unit_test(bad_configs_refused),
		cmocka_unit_test(timeout_limits),
		cmocka_unit_test(missing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
