/*
 * test_xoauth_smtp.c: XOAUTH2 end to end.  Tokens from tests/fake/
 * fake_token.py through the token store, a message submitted with the SMTP
 * client to tests/fake/fake_exo_smtp.py, and the delivered bytes compared.
 * Also the relay's rule for a refused token (issue 5): one forced refresh
 * and one retry, never more; and every log line searched for the secrets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "o365/oauth.h"
#include "o365/sasl.h"
#include "o365/smtp.h"
#include "o365/tokstore.h"
#include "spawn.h"
#include "testutil.h"

#define CLIENT_PUBLIC	"11111111-2222-3333-4444-555555555555"
#define CLIENT_CONF	"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define CLIENT_SECRET	"Cs~8Q~xoauth.smtp.secret_marker"
#define ALICE		"alice@contoso.com"
#define ALICE_PW	"alice-Password-marker-77"
#define RELAY		"relay@contoso.com"
#define DENIED		"denied@contoso.com"
#define DEADLINE_MS	20000

static struct {
	char		 dir[256];
	char		 pki[300], state[300], out[300], cache[300], cafile[320];
	char		 secret_file[340], rt_file[340], sendas[340], exolog[340];
	struct o365_proc token, exo;
	char		 authority[64];
	struct o365_tls_opts tls;
	struct o365_test_capture cap;
	struct o365_log	 lg;
	int		 delivered;
} fx;

static void
write_path(const char *path, const char *text, mode_t mode)
{
	assert_int_equal(o365_test_write_file(path, text, mode), 0);
}

static int
request_count(void)
{
	char path[400];

	o365_test_path_join(path, sizeof(path), fx.state, "requests.log");
	return o365_test_count_lines(path);
}

static void
set_conf(void)
{
	char path[400], text[1024];

	snprintf(text, sizeof(text),
	    "{\"users\": {\"" ALICE "\": {\"password\": \"" ALICE_PW "\", \"case\": \"ok\"}},"
	    " \"clients\": {\"" CLIENT_PUBLIC "\": {\"public\": true, \"case\": \"ok\"},"
	    " \"" CLIENT_CONF "\": {\"public\": false, \"secret\": \"" CLIENT_SECRET "\","
	    " \"case\": \"ok\"}}, \"mode\": \"normal\", \"expires_in\": 3599,"
	    " \"rotate_refresh\": true}");
	o365_test_path_join(path, sizeof(path), fx.state, "users.json");
	write_path(path, text, 0644);
}

/* Make a token the fake token endpoint issued look expired to the SMTP fake. */
static void
expire_token(const struct o365_secret *tok)
{
	char path[400], tmp[420];
	struct json_object *root, *ent;

	o365_test_path_join(path, sizeof(path), fx.state, "tokens.json");
	assert_non_null(root = json_object_from_file(path));
	assert_true(json_object_object_get_ex(root, tok->data, &ent));
	json_object_object_add(ent, "expires_at", json_object_new_int64((int64_t)time(NULL) - 5));
	snprintf(tmp, sizeof(tmp), "%s.x", path);
	assert_int_equal(json_object_to_file(tmp, root), 0);
	assert_int_equal(rename(tmp, path), 0);
	json_object_put(root);
}

static int
setup(void **state)
{
	char exo_py[512], certprefix[320];
	char tokens[340];
	char *esrv[] = { "/usr/bin/python3", exo_py, "--cert", certprefix, "--tokens", tokens,
	    "--outdir", fx.out, "--sendas-map", fx.sendas, "--log", fx.exolog,
	    "--lifetime", "300", NULL };

	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.token.pid = fx.exo.pid = -1;
	fx.lg.fn = o365_test_capture_sink;
	fx.lg.ctx = &fx.cap;
	fx.lg.debug = 1;		/* SMTP traces included: they must say <secret> */
	if (o365_test_tmpdir(fx.dir, sizeof(fx.dir)) != 0)
		return -1;
	o365_test_path_join(fx.pki, sizeof(fx.pki), fx.dir, "pki");
	o365_test_path_join(fx.state, sizeof(fx.state), fx.dir, "state");
	o365_test_path_join(fx.out, sizeof(fx.out), fx.dir, "out");
	o365_test_path_join(fx.cache, sizeof(fx.cache), fx.dir, "cache");
	o365_test_path_join(fx.cafile, sizeof(fx.cafile), fx.pki, "ca.pem");
	o365_test_path_join(fx.secret_file, sizeof(fx.secret_file), fx.dir, "client-secret");
	o365_test_path_join(fx.rt_file, sizeof(fx.rt_file), fx.dir, "refresh-token");
	o365_test_path_join(fx.sendas, sizeof(fx.sendas), fx.dir, "sendas.json");
	o365_test_path_join(fx.exolog, sizeof(fx.exolog), fx.dir, "exo.log");
	o365_test_path_join(tokens, sizeof(tokens), fx.state, "tokens.json");
	o365_test_path_join(certprefix, sizeof(certprefix), fx.pki, "server");
	fx.tls.ca_file = fx.cafile;
	if (mkdir(fx.state, 0700) != 0 || mkdir(fx.out, 0700) != 0 || mkdir(fx.cache, 0700) != 0)
		return -1;
	o365_test_src("tests/fake/fake_exo_smtp.py", exo_py, sizeof(exo_py));
	if (o365_test_mkcerts(fx.pki) != 0)
		return -1;
	set_conf();
	write_path(fx.secret_file, CLIENT_SECRET "\n", 0600);
	/* the app may send as relay; nobody lists the app for DENIED */
	write_path(fx.sendas, "{\"" RELAY "\": {\"apps\": [\"" CLIENT_CONF "\"], \"sendas\": []},"
	    " \"" DENIED "\": {\"apps\": [], \"sendas\": []}}", 0644);
	if (o365_test_fake_token_start(&fx.token, fx.pki, fx.state) != 0)
		return -1;
	if (o365_proc_start(&fx.exo, esrv, 1, 20000) != 0) {
		fprintf(stderr, "fake_exo_smtp.py did not start\n");
		return -1;
	}
	snprintf(fx.authority, sizeof(fx.authority), "https://127.0.0.1:%d", fx.token.port);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (fx.exo.pid > 0)
		o365_proc_stop(&fx.exo, 2000);
	if (fx.token.pid > 0)
		o365_proc_stop(&fx.token, 2000);
	if (fx.dir[0] != '\0')
		o365_test_rmtree(fx.dir);
	return 0;
}

static struct o365_tokstore_cfg
cfg_app(const char *identity)
{
	struct o365_tokstore_cfg c = {
		.oauth = { .authority = fx.authority, .tenant = "contoso.onmicrosoft.com",
		    .client_id = CLIENT_CONF, .tls = &fx.tls },
		.grant = O365_TOKSTORE_CLIENT_CREDENTIALS,
		.identity = identity,
		.client_secret_file = fx.secret_file,
		.cache_dir = fx.cache,
		.owner_uid = geteuid(),
	};

	return c;
}

static int
smtp_open(struct o365_smtp **s, struct o365_error *err)
{
	struct o365_smtp_opts o = { .host = "127.0.0.1", .port = (unsigned)fx.exo.port,
	    .tls_mode = O365_SMTP_STARTTLS, .tls = &fx.tls, .helo = "client.example" };
	struct o365_deadline dl;

	o365_deadline_in(&dl, DEADLINE_MS);
	return o365_smtp_connect(&o, &dl, &fx.lg, s, err);
}

/*
 * What relay.c must do with a token (issue 5): AUTH with the store's token;
 * if the server refuses it, one forced refresh and one more AUTH; a second
 * refusal is the caller's to report (hold the queue, alert), not retried.
 * *refreshes_out counts the forced refreshes.
 */
static int
relay_auth(struct o365_smtp *s, const struct o365_tokstore_cfg *c, int *refreshes_out,
    struct o365_error *err)
{
	struct o365_secret *tok = NULL;
	struct o365_deadline dl;
	int r, attempt;

	*refreshes_out = 0;
	for (attempt = 0; attempt < 2; attempt++) {
		o365_deadline_in(&dl, DEADLINE_MS);
		if ((r = o365_tokstore_get(c, attempt > 0, &dl, &fx.lg, &tok, NULL, NULL,
		    err)) != O365_OK)
			return r;
		*refreshes_out += attempt > 0;
		r = o365_smtp_auth(s, O365_SASL_XOAUTH2, c->identity, tok->data, tok->len, &dl, err);
		o365_secret_free(&tok);
		if (r != O365_E_AUTH)
			return r;
	}
	return r;
}

/* Submit msg (LF line ends) from `from` to one recipient; O365_OK or the failure. */
static int
submit(struct o365_smtp *s, const char *from, const char *rcpt, const char *msg,
    struct o365_error *err)
{
	const char *rcpts[1] = { rcpt };
	int codes[1] = { 0 };
	char path[400];
	struct o365_deadline dl;
	int fd, r;

	o365_test_path_join(path, sizeof(path), fx.dir, "msg.txt");
	write_path(path, msg, 0600);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	o365_deadline_in(&dl, DEADLINE_MS);
	if ((r = o365_smtp_envelope(s, from, (off_t)strlen(msg), 0, rcpts, 1, codes, NULL, &dl,
	    err)) == O365_OK)
		r = o365_smtp_data_fd(s, fd, &dl, err);
	close(fd);
	if (r == O365_OK)
		fx.delivered++;
	return r;
}

static void
assert_delivered(int n, const char *want_eml, const char *want_user, const char *want_from)
{
	char path[400], name[32], line[400];
	size_t len;
	char *got;

	snprintf(name, sizeof(name), "%d.eml", n);
	o365_test_path_join(path, sizeof(path), fx.out, name);
	assert_non_null(got = o365_test_slurp(path, &len));
	assert_int_equal(len, strlen(want_eml));
	assert_memory_equal(got, want_eml, len);
	free(got);
	snprintf(name, sizeof(name), "%d.env", n);
	o365_test_path_join(path, sizeof(path), fx.out, name);
	assert_non_null(got = o365_test_slurp(path, NULL));
	snprintf(line, sizeof(line), "User: %s\nMail-From: %s\n", want_user, want_from);
	assert_non_null(strstr(got, line));
	free(got);
}

/* ------------------------------------------------------------------------ */

static void
app_token_message_delivered_byte_for_byte(void **state)
{
	struct o365_tokstore_cfg c = cfg_app(RELAY);
	struct o365_smtp *s = NULL;
	struct o365_deadline dl;
	struct o365_error err;
	int refreshes;

	(void)state;
	assert_int_equal(smtp_open(&s, &err), O365_OK);
	assert_true(o365_smtp_caps(s)->auth & O365_SASL_XOAUTH2);
	assert_int_equal(relay_auth(s, &c, &refreshes, &err), O365_OK);
	assert_int_equal(refreshes, 0);
	assert_int_equal(submit(s, RELAY, "bob@example.org",
	    "From: Relay <" RELAY ">\nTo: bob@example.org\nSubject: xoauth2\n\n"
	    "line one\n.leading dot\n..two\n.\nno final newline", &err), O365_OK);
	assert_delivered(fx.delivered,
	    "From: Relay <" RELAY ">\r\nTo: bob@example.org\r\nSubject: xoauth2\r\n\r\n"
	    "line one\r\n.leading dot\r\n..two\r\n.\r\nno final newline\r\n", RELAY, RELAY);
	o365_deadline_in(&dl, 5000);
	o365_smtp_quit(&s, &dl);
	assert_null(s);
}

static void
refresh_token_message_delivered(void **state)
{
	struct o365_oauth_opts o = { .authority = fx.authority,
	    .tenant = "contoso.onmicrosoft.com", .client_id = CLIENT_PUBLIC, .tls = &fx.tls };
	struct o365_oauth_request rq = { .grant = O365_GRANT_PASSWORD,
	    .scope = O365_TOKSTORE_SCOPE_DELEGATED, .username = ALICE };
	struct o365_tokstore_cfg c = {
		.oauth = o, .grant = O365_TOKSTORE_REFRESH_TOKEN, .identity = ALICE,
		.refresh_token_file = fx.rt_file, .cache_dir = fx.cache, .owner_uid = geteuid(),
	};
	struct o365_secret *pw;
	struct o365_token *tok;
	struct o365_smtp *s = NULL;
	struct o365_deadline dl;
	struct o365_error err;
	char line[O365_MAX_TOKEN + 2];
	int refreshes;

	(void)state;
	/* seed a delegated refresh token (what --oauth-login leaves behind) */
	assert_int_equal(o365_secret_dup(ALICE_PW, strlen(ALICE_PW), &pw), O365_OK);
	rq.password = pw;
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, NULL, &err), O365_OK);
	snprintf(line, sizeof(line), "%s\n", tok->refresh_token->data);
	write_path(fx.rt_file, line, 0600);
	o365_token_free(&tok);
	o365_secret_free(&pw);

	assert_int_equal(smtp_open(&s, &err), O365_OK);
	assert_int_equal(relay_auth(s, &c, &refreshes, &err), O365_OK);
	assert_int_equal(submit(s, ALICE, "carol@example.org", "From: " ALICE "\n\nhi\n", &err),
	    O365_OK);
	assert_delivered(fx.delivered, "From: " ALICE "\r\n\r\nhi\r\n", ALICE, ALICE);
	/* SendAs is the server's to enforce: the relay only reports it */
	assert_int_equal(submit(s, ALICE, "carol@example.org", "From: ceo@contoso.com\n\nx\n",
	    &err), O365_E_PERM);
	assert_int_equal(err.reply, 554);
	assert_string_equal(err.enhanced, "5.2.252");
	o365_deadline_in(&dl, 5000);
	o365_smtp_quit(&s, &dl);
}

static void
token_expired_mid_run_one_refresh_and_retry(void **state)
{
	struct o365_tokstore_cfg c = cfg_app(RELAY);
	struct o365_secret *tok;
	struct o365_smtp *s = NULL;
	struct o365_deadline dl;
	struct o365_error err;
	int refreshes, n0;

	(void)state;
	/* a cached token, still valid by the cache's clock ... */
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_tokstore_get(&c, 0, &dl, &fx.lg, &tok, NULL, NULL, &err), O365_OK);
	/* ... that the server no longer takes (expired, or revoked) */
	expire_token(tok);
	o365_secret_free(&tok);
	n0 = request_count();

	assert_int_equal(smtp_open(&s, &err), O365_OK);
	assert_int_equal(relay_auth(s, &c, &refreshes, &err), O365_OK);
	assert_int_equal(refreshes, 1);
	assert_int_equal(request_count(), n0 + 1);		/* exactly one refresh */
	assert_int_equal(submit(s, RELAY, "dave@example.org", "From: " RELAY "\n\nafter\n", &err),
	    O365_OK);
	assert_delivered(fx.delivered, "From: " RELAY "\r\n\r\nafter\r\n", RELAY, RELAY);
	o365_deadline_in(&dl, 5000);
	o365_smtp_quit(&s, &dl);

	/* the next run uses the refreshed, cached token without a request */
	assert_int_equal(smtp_open(&s, &err), O365_OK);
	assert_int_equal(relay_auth(s, &c, &refreshes, &err), O365_OK);
	assert_int_equal(refreshes, 0);
	assert_int_equal(request_count(), n0 + 1);
	o365_deadline_in(&dl, 5000);
	o365_smtp_quit(&s, &dl);
}

static void
refused_after_refresh_is_not_retried_again(void **state)
{
	struct o365_tokstore_cfg c = cfg_app(DENIED);	/* the app has no rights on it */
	struct o365_smtp *s = NULL;
	struct o365_deadline dl;
	struct o365_error err;
	int refreshes, n0;

	(void)state;
	n0 = request_count();
	assert_int_equal(smtp_open(&s, &err), O365_OK);
	assert_int_equal(relay_auth(s, &c, &refreshes, &err), O365_E_AUTH);
	assert_int_equal(err.reply, 535);
	assert_string_equal(err.enhanced, "5.7.3");
	assert_int_equal(refreshes, 1);
	assert_int_equal(request_count(), n0 + 2);	/* the first token and one refresh */
	o365_deadline_in(&dl, 5000);
	o365_smtp_quit(&s, &dl);
}

/* Last: nothing logged (tokstore, oauth, SMTP traces, the fake's log) holds a secret. */
static void
logs_never_hold_a_secret(void **state)
{
	char path[400];
	struct json_object *root;
	char *exolog;
	int n = 0;

	(void)state;
	assert_non_null(strstr(fx.cap.text, "<secret>"));	/* the AUTH lines were traced */
	assert_non_null(exolog = o365_test_slurp(fx.exolog, NULL));
	assert_non_null(strstr(exolog, "auth xoauth2 user=" RELAY " ok"));
	assert_null(strstr(fx.cap.text, CLIENT_SECRET));
	assert_null(strstr(fx.cap.text, ALICE_PW));
	o365_test_path_join(path, sizeof(path), fx.state, "tokens.json");
	assert_non_null(root = json_object_from_file(path));
	json_object_object_foreach(root, at, v1) {
		(void)v1;
		assert_null(strstr(fx.cap.text, at + 40));
		assert_null(strstr(exolog, at + 40));
		n++;
	}
	json_object_put(root);
	o365_test_path_join(path, sizeof(path), fx.state, "refresh.json");
	assert_non_null(root = json_object_from_file(path));
	json_object_object_foreach(root, rt, v2) {
		(void)v2;
		assert_null(strstr(fx.cap.text, rt + 8));
		n++;
	}
	json_object_put(root);
	free(exolog);
	assert_true(n >= 6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(app_token_message_delivered_byte_for_byte),
		cmocka_unit_test(refresh_token_message_delivered),
		cmocka_unit_test(token_expired_mid_run_one_refresh_and_retry),
		cmocka_unit_test(refused_after_refresh_is_not_retried_again),
		cmocka_unit_test(logs_never_hold_a_secret),
	};

	return cmocka_run_group_tests_name("xoauth2 over smtp", tests, setup, teardown);
}
