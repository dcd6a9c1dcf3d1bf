/*
 * test_pam_policy.c: the pure decisions of pam_o365: module arguments, user
 * mapping, scope rules, outcome tables (core and Entra ID results to PAM
 * codes) and the log line.  The sources are compiled in directly: they need
 * libpam's headers only, not libpam.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../pam_o365/policy.c"
#include "../../pam_o365/scope.c"

/* ---- a log sink that keeps the last line ---- */

struct capture {
	int	n;
	int	prio;
	char	last[1024];
};

static void
cap_sink(void *ctx, int prio, const char *msg)
{
	struct capture *c = ctx;

	c->n++;
	c->prio = prio;
	(void)snprintf(c->last, sizeof(c->last), "%s", msg);
}

/* ---- arguments ---- */

static void
args_defaults(void **state)
{
	struct pam_o365_args a;

	(void)state;
	pam_o365_parse_args(0, NULL, NULL, &a);
	assert_string_equal(a.config, "/etc/o365/pam_o365.conf");
	assert_int_equal(a.debug, 0);
	assert_int_equal(a.pass, PAM_O365_PASS_TRY);
	assert_int_equal(a.nunknown, 0);
}

static void
args_known(void **state)
{
	const char *argv[] = { "config=/tmp/x.conf", "debug", "use_first_pass" };
	const char *argv2[] = { "use_authtok" };
	const char *argv3[] = { "use_first_pass", "try_first_pass" };
	struct pam_o365_args a;

	(void)state;
	pam_o365_parse_args(3, argv, NULL, &a);
	assert_string_equal(a.config, "/tmp/x.conf");
	assert_int_equal(a.debug, 1);
	assert_int_equal(a.pass, PAM_O365_PASS_USE);
	pam_o365_parse_args(1, argv2, NULL, &a);
	assert_int_equal(a.pass, PAM_O365_PASS_USE);
	pam_o365_parse_args(2, argv3, NULL, &a);	/* the last one wins */
	assert_int_equal(a.pass, PAM_O365_PASS_TRY);
}

static void
args_unknown_logged_and_ignored(void **state)
{
	const char *argv[] = { "nullok", "config=", "debug", "bad\r\narg" };
	struct capture c = { 0 };
	struct o365_log lg = { cap_sink, &c, 0 };
	struct pam_o365_args a;

	(void)state;
	pam_o365_parse_args(4, argv, &lg, &a);
	assert_int_equal(a.nunknown, 3);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.prio, LOG_ERR);
	assert_string_equal(a.config, PAM_O365_DEFAULT_CONFIG);	/* empty config= ignored */
	assert_int_equal(a.debug, 1);
	assert_null(strchr(c.last, '\r'));	/* escaped in the log */
	assert_non_null(strstr(c.last, "bad\\x0d\\x0aarg"));
}

/* ---- user mapping ---- */

static void
map_table(void **state)
{
	static const struct {
		const char	*map;
		int		 lower;
		const char	*user;
		int		 rc;
		const char	*want;
	} t[] = {
		{ "%u", 0, "alice", O365_OK, "alice" },
		{ "%u@contoso.com", 0, "alice", O365_OK, "alice@contoso.com" },
		{ "%u@Contoso.COM", 1, "Alice", O365_OK, "alice@contoso.com" },
		{ "%u@contoso.com", 0, "Alice", O365_OK, "Alice@contoso.com" },
		{ "100%%-%u", 0, "bob", O365_OK, "100%-bob" },
		{ "%u", 1, "J\xc3\x96RG", O365_OK, "j\xc3\x96rg" },	/* UTF-8 bytes kept */
		{ "%u", 0, "", O365_E_INVAL, "" },
		{ "%u", 0, "alice\r\nA1 LOGOUT", O365_E_INVAL, "" },
		{ "%u", 0, "alice\n", O365_E_INVAL, "" },
		{ "%u@%d", 0, "alice", O365_E_CONFIG, "" },
		{ "contoso", 0, "alice", O365_E_CONFIG, "" },
		{ "", 0, "alice", O365_E_CONFIG, "" },
		{ "%u%", 0, "alice", O365_E_CONFIG, "" },
	};
	struct o365_error err;
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		o365_error_clear(&err);
		assert_int_equal(pam_o365_map_user(t[i].map, t[i].lower, t[i].user, out,
		    sizeof(out), &err), t[i].rc);
		if (t[i].rc == O365_OK)
			assert_string_equal(out, t[i].want);
		else
			assert_true(err.why[0] != '\0');
	}
}

static void
map_limits(void **state)
{
	char user[O365_MAX_CREDENTIAL + 2];
	char out[O365_MAX_CREDENTIAL + 8];
	struct o365_error err;

	(void)state;
	memset(user, 'a', sizeof(user));
	user[O365_MAX_CREDENTIAL] = '\0';		/* at the limit */
	assert_int_equal(pam_o365_map_user("%u", 0, user, out, sizeof(out), &err), O365_OK);
	assert_int_equal(strlen(out), O365_MAX_CREDENTIAL);
	user[O365_MAX_CREDENTIAL] = 'a';		/* one over */
	user[O365_MAX_CREDENTIAL + 1] = '\0';
	assert_int_equal(pam_o365_map_user("%u", 0, user, out, sizeof(out), &err),
	    O365_E_INVAL);
	/* the mapped name over the limit even though the user is not */
	user[O365_MAX_CREDENTIAL - 2] = '\0';
	assert_int_equal(pam_o365_map_user("%u@x.y", 0, user, out, sizeof(out), &err),
	    O365_E_INVAL);
	/* output buffer too small: refused, never truncated */
	assert_int_equal(pam_o365_map_user("%u@contoso.com", 0, "alice", out, 10, &err),
	    O365_E_TOOLONG);
}

/* ---- scope ---- */

static char *none[] = { NULL };

static void
conf_defaults(struct pam_o365_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->scope.min_uid = 1000;
	c->scope.allow_users = none;
	c->scope.deny_users = none;
	c->scope.allow_groups = none;
	c->scope.deny_groups = none;
}

static void
scope_table(void **state)
{
	static char *staff[] = { "staff", NULL };
	static char *wheel[] = { "wheel", NULL };
	static char *bob[] = { "bob", NULL };
	static char *mallory[] = { "mallory", NULL };
	static char *g_staff_users[] = { "users", "staff" };
	static char *g_users[] = { "users" };
	static char *g_wheel[] = { "wheel", "staff" };
	static const struct {
		const char	*name;
		char		**allow_u, **deny_u, **allow_g, **deny_g;
		int		 allow_root;
		const char	*user;
		int		 exists;
		uid_t		 uid;
		char		**groups;
		size_t		 ngroups;
		enum pam_o365_scope want;
	} t[] = {
		{ "plain user", none, none, none, none, 0, "alice", 1, 1000, g_users, 1,
		  PAM_O365_IN_SCOPE },
		{ "no local account", none, none, none, none, 0, "ghost", 0, 0, NULL, 0,
		  PAM_O365_IN_SCOPE },
		{ "root by uid", none, none, none, none, 0, "toor", 1, 0, NULL, 0,
		  PAM_O365_OUT_ROOT },
		{ "root by name, no account", none, none, none, none, 0, "root", 0, 0, NULL, 0,
		  PAM_O365_OUT_ROOT },
		{ "root allowed", none, none, none, none, 1, "root", 1, 0, NULL, 0,
		  PAM_O365_IN_SCOPE },
		{ "below min_uid", none, none, none, none, 0, "daemon", 1, 999, g_users, 1,
		  PAM_O365_OUT_MIN_UID },
		{ "at min_uid", none, none, none, none, 0, "alice", 1, 1000, NULL, 0,
		  PAM_O365_IN_SCOPE },
		{ "deny user", none, mallory, none, none, 0, "mallory", 1, 1500, NULL, 0,
		  PAM_O365_OUT_DENY_USER },
		{ "deny user, no account", none, mallory, none, none, 0, "mallory", 0, 0, NULL, 0,
		  PAM_O365_OUT_DENY_USER },
		{ "deny group", none, none, none, wheel, 0, "carol", 1, 1500, g_wheel, 2,
		  PAM_O365_OUT_DENY_GROUP },
		{ "deny group, not member", none, none, none, wheel, 0, "alice", 1, 1500, g_users, 1,
		  PAM_O365_IN_SCOPE },
		{ "allow group, member", none, none, staff, none, 0, "dave", 1, 1500,
		  g_staff_users, 2, PAM_O365_IN_SCOPE },
		{ "allow group, not member", none, none, staff, none, 0, "alice", 1, 1500,
		  g_users, 1, PAM_O365_OUT_NOT_ALLOWED },
		{ "allow group, no account: group rules do not apply", none, none, staff, none, 0,
		  "ghost", 0, 0, NULL, 0, PAM_O365_IN_SCOPE },
		{ "allow user", bob, none, none, none, 0, "bob", 1, 1500, NULL, 0,
		  PAM_O365_IN_SCOPE },
		{ "allow user, other", bob, none, none, none, 0, "alice", 1, 1500, NULL, 0,
		  PAM_O365_OUT_NOT_ALLOWED },
		{ "allow user, other, no account", bob, none, none, none, 0, "ghost", 0, 0, NULL, 0,
		  PAM_O365_OUT_NOT_ALLOWED },
		{ "allow user or group", bob, none, staff, none, 0, "dave", 1, 1500,
		  g_staff_users, 2, PAM_O365_IN_SCOPE },
		{ "deny beats allow", bob, bob, none, none, 0, "bob", 1, 1500, NULL, 0,
		  PAM_O365_OUT_DENY_USER },
		{ "deny group beats allow user", bob, none, none, staff, 0, "bob", 1, 1500,
		  g_staff_users, 2, PAM_O365_OUT_DENY_GROUP },
		{ "case matters in lists", bob, none, none, none, 0, "Bob", 1, 1500, NULL, 0,
		  PAM_O365_OUT_NOT_ALLOWED },
	};
	struct pam_o365_conf c;
	struct pam_o365_account acct;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		conf_defaults(&c);
		c.scope.allow_users = t[i].allow_u;
		c.scope.deny_users = t[i].deny_u;
		c.scope.allow_groups = t[i].allow_g;
		c.scope.deny_groups = t[i].deny_g;
		c.scope.allow_root = t[i].allow_root;
		memset(&acct, 0, sizeof(acct));
		acct.exists = t[i].exists;
		acct.uid = t[i].uid;
		acct.groups = t[i].groups;
		acct.ngroups = t[i].ngroups;
		why = NULL;
		if (pam_o365_scope_decide(&c, t[i].user, &acct, &why) != t[i].want)
			fail_msg("scope case \"%s\": got %d (%s)", t[i].name,
			    pam_o365_scope_decide(&c, t[i].user, &acct, &why), why);
		assert_non_null(why);
	}
}

static void
scope_null_lists(void **state)
{
	struct pam_o365_conf c;
	struct pam_o365_account acct = { 1, 1000, NULL, 0 };
	const char *why;

	(void)state;
	memset(&c, 0, sizeof(c));	/* lists NULL, as when no key is set */
	c.scope.min_uid = 1000;
	assert_int_equal(pam_o365_scope_decide(&c, "alice", &acct, &why), PAM_O365_IN_SCOPE);
}

static void
account_lookup_nss(void **state)
{
	struct pam_o365_account acct;
	struct o365_error err;
	size_t i;
	int has_root_group = 0;

	(void)state;
	assert_int_equal(pam_o365_account_lookup("root", &acct, &err), O365_OK);
	assert_int_equal(acct.exists, 1);
	assert_int_equal(acct.uid, 0);
	for (i = 0; i < acct.ngroups; i++)
		if (strcmp(acct.groups[i], "root") == 0)
			has_root_group = 1;
	assert_true(has_root_group);
	pam_o365_account_free(&acct);
	assert_int_equal(pam_o365_account_lookup("no-such-user-o365-test", &acct, &err), O365_OK);
	assert_int_equal(acct.exists, 0);
	assert_int_equal(acct.ngroups, 0);
	pam_o365_account_free(&acct);
}

/* ---- outcomes ---- */

static void
outcome_imap_only_ok_succeeds(void **state)
{
	static const struct { int rc; int pam; } t[] = {
		{ O365_OK, PAM_SUCCESS },
		{ O365_E_AUTH, PAM_AUTH_ERR },
		{ O365_E_INVAL, PAM_AUTH_ERR },
		{ O365_E_NOMEM, PAM_BUF_ERR },
		{ O365_E_CONFIG, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_NET, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_TIMEOUT, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_TLS, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_PROTO, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_TOOLONG, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_TEMP, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_PERM, PAM_AUTHINFO_UNAVAIL },
		{ O365_E_IO, PAM_AUTHINFO_UNAVAIL },
		{ -99, PAM_AUTHINFO_UNAVAIL },
		{ 1, PAM_AUTHINFO_UNAVAIL },
	};
	struct pam_o365_outcome oc;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		pam_o365_outcome_imap(t[i].rc, &oc);
		assert_int_equal(oc.pam, t[i].pam);
		assert_true(oc.prio >= LOG_EMERG && oc.prio <= LOG_DEBUG);
		pam_o365_outcome_xoauth2(t[i].rc, &oc);
		if (t[i].rc == O365_E_AUTH)
			assert_int_equal(oc.pam, PAM_PERM_DENIED);	/* token refused by IMAP */
		else
			assert_int_equal(oc.pam, t[i].pam);
	}
}

static void
outcome_ropc_table(void **state)
{
	static const struct {
		const char	*error;
		long		 aadsts;
		int		 pam;
		int		 has_msg;
		int		 prio;
	} t[] = {
		{ "invalid_grant", 50126, PAM_AUTH_ERR, 0, LOG_NOTICE },
		{ "invalid_grant", 50034, PAM_AUTH_ERR, 0, LOG_NOTICE },
		{ "invalid_grant", 50056, PAM_AUTH_ERR, 0, LOG_NOTICE },
		{ "invalid_grant", 50053, PAM_AUTH_ERR, 1, LOG_NOTICE },
		{ "invalid_grant", 50055, PAM_PERM_DENIED, 1, LOG_NOTICE },
		{ "invalid_grant", 50057, PAM_PERM_DENIED, 1, LOG_NOTICE },
		{ "invalid_grant", 53003, PAM_PERM_DENIED, 1, LOG_NOTICE },
		{ "invalid_grant", 65001, PAM_AUTHINFO_UNAVAIL, 0, LOG_ALERT },
		{ "invalid_grant", 0, PAM_AUTH_ERR, 0, LOG_NOTICE },
		{ "invalid_grant", 99999, PAM_AUTH_ERR, 0, LOG_NOTICE },
		{ "interaction_required", 50076, PAM_PERM_DENIED, 1, LOG_NOTICE },
		{ "interaction_required", 50079, PAM_PERM_DENIED, 1, LOG_NOTICE },
		{ "interaction_required", 0, PAM_PERM_DENIED, 1, LOG_NOTICE },
		{ "unauthorized_client", 700016, PAM_AUTHINFO_UNAVAIL, 0, LOG_ALERT },
		{ "invalid_client", 7000218, PAM_AUTHINFO_UNAVAIL, 0, LOG_ALERT },
		{ "invalid_scope", 70011, PAM_AUTHINFO_UNAVAIL, 0, LOG_ALERT },
		{ "invalid_request", 900144, PAM_AUTHINFO_UNAVAIL, 0, LOG_ERR },
		{ "temporarily_unavailable", 0, PAM_AUTHINFO_UNAVAIL, 0, LOG_ERR },
		{ "", 0, PAM_AUTHINFO_UNAVAIL, 0, LOG_ERR },
		/* the number alone never decides: 50126 under another error */
		{ "invalid_client", 50126, PAM_AUTHINFO_UNAVAIL, 0, LOG_ALERT },
	};
	struct o365_oauth_error oerr;
	struct pam_o365_outcome oc;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&oerr, 0, sizeof(oerr));
		oerr.http_status = 400;
		(void)snprintf(oerr.error, sizeof(oerr.error), "%s", t[i].error);
		oerr.aadsts = t[i].aadsts;
		pam_o365_outcome_ropc(O365_E_AUTH, &oerr, &oc);
		if (oc.pam != t[i].pam || oc.prio != t[i].prio)
			fail_msg("%s/%ld: got pam %d prio %d", t[i].error, t[i].aadsts,
			    oc.pam, oc.prio);
		assert_int_equal(oc.user_msg != NULL, t[i].has_msg);
		assert_non_null(oc.reason);
	}
}

static void
outcome_ropc_expired_message(void **state)
{
	struct o365_oauth_error oerr = { .http_status = 400, .error = "invalid_grant",
		.aadsts = 50055 };
	struct pam_o365_outcome oc;

	(void)state;
	pam_o365_outcome_ropc(O365_E_AUTH, &oerr, &oc);
	assert_non_null(strstr(oc.user_msg, "expired"));
	assert_non_null(strstr(oc.user_msg, "https://aka.ms/sspr"));
}

static void
outcome_ropc_transport(void **state)
{
	static const int fail[] = { O365_E_TEMP, O365_E_NET, O365_E_TIMEOUT, O365_E_TLS,
		O365_E_PROTO, O365_E_TOOLONG, O365_E_PERM, O365_E_CONFIG };
	struct o365_oauth_error oerr = { .http_status = 429 };
	struct pam_o365_outcome oc;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
		pam_o365_outcome_ropc(fail[i], &oerr, &oc);
		assert_int_equal(oc.pam, PAM_AUTHINFO_UNAVAIL);
	}
	pam_o365_outcome_ropc(O365_E_INVAL, &oerr, &oc);
	assert_int_equal(oc.pam, PAM_AUTH_ERR);
	pam_o365_outcome_ropc(O365_OK, &oerr, &oc);
	assert_int_equal(oc.pam, PAM_SUCCESS);
	pam_o365_outcome_ropc(O365_E_AUTH, NULL, &oc);	/* no details: never success */
	assert_int_equal(oc.pam, PAM_AUTHINFO_UNAVAIL);
}

/* ---- log line ---- */

static void
log_line_format(void **state)
{
	struct pam_o365_attempt a = {
		.user = "alice", .login = "alice@contoso.com", .method = "imap-login",
		.server = "imap.example:993", .pam = PAM_AUTH_ERR, .reason = "auth: NO LOGIN failed.",
		.ms = 41,
	};
	char line[1024];

	(void)state;
	pam_o365_format_line(&a, line, sizeof(line));
	assert_string_equal(line, "user=alice login=alice@contoso.com method=imap-login "
	    "server=imap.example:993 result=auth_err reason=\"auth: NO LOGIN failed.\" ms=41");
}

static void
log_line_escapes_untrusted(void **state)
{
	struct pam_o365_attempt a = {
		.user = "eve\r\nfake=1 x\"y", .login = NULL, .method = NULL, .server = NULL,
		.pam = PAM_AUTH_ERR, .reason = "say \"hi\" \\ \x1b[31m", .ms = 0,
	};
	char line[1024], small[40];

	(void)state;
	pam_o365_format_line(&a, line, sizeof(line));
	assert_null(strchr(line, '\r'));
	assert_null(strchr(line, '\n'));
	assert_null(strchr(line, '\x1b'));
	assert_non_null(strstr(line, "user=eve\\x0d\\x0afake=1_x_y login=- method=- server=- "));
	assert_non_null(strstr(line, "reason=\"say \\\"hi\\\" \\\\ \\x1b[31m\""));
	pam_o365_format_line(&a, small, sizeof(small));		/* cut, still terminated */
	assert_true(strlen(small) < sizeof(small));
}

static void
result_names(void **state)
{
	(void)state;
	assert_string_equal(pam_o365_result_name(PAM_SUCCESS), "success");
	assert_string_equal(pam_o365_result_name(PAM_AUTHINFO_UNAVAIL), "authinfo_unavail");
	assert_string_equal(pam_o365_result_name(PAM_PERM_DENIED), "perm_denied");
	assert_string_equal(pam_o365_result_name(PAM_IGNORE), "ignore");
	assert_string_equal(pam_o365_result_name(12345), "other");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(args_defaults),
		cmocka_unit_test(args_known),
		cmocka_unit_test(args_unknown_logged_and_ignored),
		cmocka_unit_test(map_table),
		cmocka_unit_test(map_limits),
		cmocka_unit_test(scope_table),
		cmocka_unit_test(scope_null_lists),
		cmocka_unit_test(account_lookup_nss),
		cmocka_unit_test(outcome_imap_only_ok_succeeds),
		cmocka_unit_test(outcome_ropc_table),
		cmocka_unit_test(outcome_ropc_expired_message),
		cmocka_unit_test(outcome_ropc_transport),
		cmocka_unit_test(log_line_format),
		cmocka_unit_test(log_line_escapes_untrusted),
		cmocka_unit_test(result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
