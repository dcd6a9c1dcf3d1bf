/*
 * test_oauth.c: the token endpoint client.  Parser tests on the answer shapes
 * Entra ID sends, then live tests against tests/fake/fake_token.py over TLS
 * with a per-run test CA.
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
#include <openssl/evp.h>
#include <openssl/tls1.h>

#include "o365/limits.h"
#include "o365/oauth.h"
#include "spawn.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* parser tests                                                             */

#define OK_TOKEN_BODY \
	"{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office.com/IMAP.AccessAsUser.All " \
	"https://outlook.office.com/SMTP.Send\",\"expires_in\":3599,\"ext_expires_in\":3599," \
	"\"access_token\":\"eyJ0eXAiOiJKV1QiLCJub25jZSI6.eyJhdWQiOiJodHRwczovL291dGxvb2su.sig-_x\"," \
	"\"refresh_token\":\"0.AXoAabc-def_ghi.AgABAAEAAAD\"}"

static int
parse(long status, const char *body, struct o365_token **tok, struct o365_oauth_error *oerr,
    struct o365_error *err)
{
	return o365_oauth_parse_token(status, body, strlen(body), tok, oerr, err);
}

static void
parse_success_with_refresh_token(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	time_t before = time(NULL);

	(void)state;
	o365_error_set(&err, O365_E_NET, "stale");
	assert_int_equal(parse(200, OK_TOKEN_BODY, &tok, &oerr, &err), O365_OK);
	assert_int_equal(err.code, O365_OK);		/* cleared on success */
	assert_non_null(tok);
	assert_string_equal(tok->access_token->data,
	    "eyJ0eXAiOiJKV1QiLCJub25jZSI6.eyJhdWQiOiJodHRwczovL291dGxvb2su.sig-_x");
	assert_int_equal(tok->access_token->len, strlen(tok->access_token->data));
	assert_non_null(tok->refresh_token);
	assert_string_equal(tok->refresh_token->data, "0.AXoAabc-def_ghi.AgABAAEAAAD");
	assert_string_equal(tok->token_type, "Bearer");
	assert_string_equal(tok->scope, "https://outlook.office.com/IMAP.AccessAsUser.All "
	    "https://outlook.office.com/SMTP.Send");
	assert_int_equal(tok->expires_in, 3599);
	assert_true(tok->expires_at >= before + 3599 && tok->expires_at <= time(NULL) + 3599);
	o365_token_free(&tok);
	assert_null(tok);
}

static void
parse_success_without_refresh_token_and_string_expiry(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;

	(void)state;
	assert_int_equal(parse(200, "{\"token_type\":\"bearer\",\"expires_in\":\"3600\","
	    "\"access_token\":\"abc.def\"}", &tok, &oerr, &err), O365_OK);
	assert_null(tok->refresh_token);
	assert_int_equal(tok->expires_in, 3600);
	assert_string_equal(tok->scope, "");
	o365_token_free(&tok);
}

/* Each row of the AADSTS table in EXCHANGE-ONLINE.md, in Entra's exact shape. */
static const struct {
	long	status;
	long	code;
	const char *error;
} aadsts_rows[] = {
	{ 400, 50126, "invalid_grant" },
	{ 400, 50034, "invalid_grant" },
	{ 400, 50056, "invalid_grant" },
	{ 400, 50053, "invalid_grant" },
	{ 400, 50055, "invalid_grant" },
	{ 400, 50057, "invalid_grant" },
	{ 400, 50076, "interaction_required" },
	{ 400, 50079, "interaction_required" },
	{ 400, 50072, "interaction_required" },
	{ 400, 50074, "interaction_required" },
	{ 400, 53003, "invalid_grant" },
	{ 400, 700016, "unauthorized_client" },
	{ 401, 7000218, "invalid_client" },
	{ 400, 65001, "invalid_grant" },
	{ 400, 700082, "invalid_grant" },
};

static void
parse_every_aadsts_row(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	char body[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(aadsts_rows) / sizeof(aadsts_rows[0]); i++) {
		snprintf(body, sizeof(body),
		    "{\"error\":\"%s\",\"error_description\":\"AADSTS%ld: Some text.\\r\\n"
		    "Trace ID: 0f1e2d3c-aaaa-bbbb-cccc-000000000001 Correlation ID: "
		    "11111111-2222-3333-4444-555555555555 Timestamp: 2025-06-01 10:00:00Z\","
		    "\"error_codes\":[%ld],\"timestamp\":\"2025-06-01 10:00:00Z\","
		    "\"trace_id\":\"0f1e2d3c-aaaa-bbbb-cccc-000000000001\","
		    "\"correlation_id\":\"11111111-2222-3333-4444-555555555555\","
		    "\"error_uri\":\"https://login.microsoftonline.com/error?code=%ld\"}",
		    aadsts_rows[i].error, aadsts_rows[i].code, aadsts_rows[i].code,
		    aadsts_rows[i].code);
		assert_int_equal(parse(aadsts_rows[i].status, body, &tok, &oerr, &err), O365_E_AUTH);
		assert_null(tok);
		assert_int_equal(err.code, O365_E_AUTH);
		assert_string_equal(oerr.error, aadsts_rows[i].error);
		assert_int_equal(oerr.aadsts, aadsts_rows[i].code);
		assert_int_equal(oerr.http_status, aadsts_rows[i].status);
		assert_string_equal(oerr.trace_id, "0f1e2d3c-aaaa-bbbb-cccc-000000000001");
		assert_string_equal(oerr.correlation_id, "11111111-2222-3333-4444-555555555555");
		/* the CR LF from the JSON escape is sanitised, not passed on */
		assert_null(strchr(oerr.description, '\r'));
		assert_non_null(strstr(oerr.description, "Some text."));
	}
}

static void
parse_aadsts_from_description_when_no_codes(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;

	(void)state;
	assert_int_equal(parse(400, "{\"error\":\"invalid_grant\",\"error_description\":"
	    "\"AADSTS50055: The password is expired.\"}", &tok, &oerr, &err), O365_E_AUTH);
	assert_int_equal(oerr.aadsts, 50055);
	assert_string_equal(oerr.trace_id, "");
	assert_int_equal(parse(400, "{\"error\":\"invalid_request\"}", &tok, &oerr, &err),
	    O365_E_AUTH);
	assert_int_equal(oerr.aadsts, 0);
	assert_string_equal(oerr.description, "");
}

/* Bodies that must be refused as O365_E_PROTO (HTTP 200 unless noted). */
static const struct {
	long	status;
	const char *body;
} proto_bodies[] = {
	{ 200, "{\"token_type\":\"MAC\",\"expires_in\":3599,\"access_token\":\"abc\"}" },
	{ 200, "{\"expires_in\":3599,\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":42}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"a b\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"a\\u0001b\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":[\"abc\"]}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":-5,\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":0,\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599.5,\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":\"35x\",\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":\"-1\",\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":99999999999,\"access_token\":\"abc\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"abc\","
	    "\"refresh_token\":7}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"abc\","
	    "\"refresh_token\":\"\"}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"abc\","
	    "\"scope\":[1]}" },
	{ 200, "{\"token_type\":1,\"expires_in\":3599,\"access_token\":\"abc\"}" },
	{ 200, "<html><body>Sign in to your proxy</body></html>" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_tok" },
	{ 200, "[{\"access_token\":\"abc\"}]" },
	{ 200, "\"abc\"" },
	{ 200, "" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"abc\"} x" },
	{ 200, "{'token_type':'Bearer','expires_in':3599,'access_token':'abc'}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"abc\",}" },
	{ 200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"\xff\xfe\"}" },
	{ 400, "{\"error_description\":\"AADSTS50126: no error field\"}" },
	{ 400, "{\"error\":5}" },
	{ 400, "<html>Bad Request</html>" },
	{ 403, "{\"error\":\"access_denied\"}" },
	{ 302, "" },
	{ 0, "" },
};

static void
parse_refuses_wrong_shapes(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(proto_bodies) / sizeof(proto_bodies[0]); i++) {
		tok = (struct o365_token *)&tok;	/* must be reset */
		if (parse(proto_bodies[i].status, proto_bodies[i].body, &tok, &oerr, &err) !=
		    O365_E_PROTO)
			fail_msg("body %zu was not refused as PROTO: %s", i, proto_bodies[i].body);
		assert_null(tok);
		assert_int_equal(err.code, O365_E_PROTO);
	}
}

static void
parse_refuses_nul_byte(void **state)
{
	static const char body[] = "{\"token_type\":\"Bearer\",\"expires_in\":3599,"
	    "\"access_token\":\"abc\"}\0";
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;

	(void)state;
	/* sizeof counts the explicit \0 and the literal's own NUL */
	assert_int_equal(o365_oauth_parse_token(200, body, sizeof(body) - 2, &tok, &oerr, &err),
	    O365_OK);
	o365_token_free(&tok);
	assert_int_equal(o365_oauth_parse_token(200, body, sizeof(body) - 1, &tok, &oerr, &err),
	    O365_E_PROTO);
}

static void
parse_accepts_trailing_white_space(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;

	(void)state;
	assert_int_equal(parse(200, "\r\n {\"token_type\":\"Bearer\",\"expires_in\":1,"
	    "\"access_token\":\"x\"}\r\n", &tok, &oerr, &err), O365_OK);
	o365_token_free(&tok);
}

static char *
token_body(size_t toklen)
{
	static const char head[] = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"";
	char *b = malloc(sizeof(head) + toklen + 8);

	assert_non_null(b);
	memcpy(b, head, sizeof(head) - 1);
	memset(b + sizeof(head) - 1, 'A', toklen);
	memcpy(b + sizeof(head) - 1 + toklen, "\"}", 3);
	return b;
}

static void
parse_token_length_limit(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	char *b;

	(void)state;
	b = token_body(O365_MAX_TOKEN);
	assert_int_equal(parse(200, b, &tok, &oerr, &err), O365_OK);
	assert_int_equal(tok->access_token->len, O365_MAX_TOKEN);
	o365_token_free(&tok);
	free(b);
	b = token_body(O365_MAX_TOKEN + 1);
	assert_int_equal(parse(200, b, &tok, &oerr, &err), O365_E_PROTO);
	assert_null(tok);
	free(b);
}

static void
parse_body_size_limit(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	char *b;
	size_t n;

	(void)state;
	/* exactly O365_MAX_HTTP_BODY bytes: white space padding is fine */
	b = malloc(70 * 1024 + 1);
	assert_non_null(b);
	n = (size_t)snprintf(b, 200, "{\"token_type\":\"Bearer\",\"expires_in\":1,"
	    "\"access_token\":\"x\"}");
	memset(b + n, ' ', O365_MAX_HTTP_BODY - n);
	assert_int_equal(o365_oauth_parse_token(200, b, O365_MAX_HTTP_BODY, &tok, &oerr, &err),
	    O365_OK);
	o365_token_free(&tok);
	assert_int_equal(o365_oauth_parse_token(200, b, O365_MAX_HTTP_BODY + 1, &tok, &oerr,
	    &err), O365_E_TOOLONG);
	/* a 70 KB answer */
	memset(b + n, ' ', 70 * 1024 - n);
	assert_int_equal(o365_oauth_parse_token(200, b, 70 * 1024, &tok, &oerr, &err),
	    O365_E_TOOLONG);
	assert_null(tok);
	free(b);
}

static char *
nested_body(int levels)
{
	/* the top object is level 1; "x" holds levels-1 nested arrays */
	char *b = malloc(256 + 2 * (size_t)levels);
	size_t n;
	int i;

	assert_non_null(b);
	n = (size_t)snprintf(b, 200, "{\"token_type\":\"Bearer\",\"expires_in\":1,"
	    "\"access_token\":\"x\",\"x\":");
	for (i = 1; i < levels; i++)
		b[n++] = '[';
	b[n++] = '1';
	for (i = 1; i < levels; i++)
		b[n++] = ']';
	b[n++] = '}';
	b[n] = '\0';
	return b;
}

static void
parse_nesting_limit(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	char *b;

	(void)state;
	b = nested_body(10);
	assert_int_equal(parse(200, b, &tok, &oerr, &err), O365_OK);
	o365_token_free(&tok);
	free(b);
	b = nested_body(11);
	assert_int_equal(parse(200, b, &tok, &oerr, &err), O365_E_PROTO);
	free(b);
	b = nested_body(5000);
	assert_int_equal(parse(200, b, &tok, &oerr, &err), O365_E_PROTO);
	free(b);
}

static void
parse_temporary_answers(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;

	(void)state;
	assert_int_equal(parse(429, "{\"error\":\"temporarily_unavailable\",\"error_codes\":[90055]}",
	    &tok, &oerr, &err), O365_E_TEMP);
	assert_int_equal(oerr.http_status, 429);
	assert_string_equal(oerr.error, "temporarily_unavailable");
	assert_int_equal(oerr.aadsts, 90055);
	assert_int_equal(parse(503, "<html>Service Unavailable</html>", &tok, &oerr, &err),
	    O365_E_TEMP);
	assert_int_equal(oerr.http_status, 503);
	assert_string_equal(oerr.error, "");
	assert_int_equal(parse(500, "", &tok, &oerr, &err), O365_E_TEMP);
	assert_null(tok);
}

#define DEVICE_BODY \
	"{\"user_code\":\"ABCD1234E\",\"device_code\":\"DAQABAAEAAAD--abc_def\"," \
	"\"verification_uri\":\"https://microsoft.com/devicelogin\",\"expires_in\":900," \
	"\"interval\":5,\"message\":\"To sign in, use a web browser to open the page " \
	"https://microsoft.com/devicelogin and enter the code ABCD1234E to authenticate.\"}"

static void
parse_devicecode_answers(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_devicecode dc;
	struct o365_error err;
	const char *b;

	(void)state;
	assert_int_equal(o365_oauth_parse_devicecode(200, DEVICE_BODY, strlen(DEVICE_BODY), &dc,
	    &oerr, &err), O365_OK);
	assert_string_equal(dc.user_code, "ABCD1234E");
	assert_string_equal(dc.device_code, "DAQABAAEAAAD--abc_def");
	assert_string_equal(dc.verification_uri, "https://microsoft.com/devicelogin");
	assert_int_equal(dc.expires_in, 900);
	assert_int_equal(dc.interval, 5);
	assert_non_null(strstr(dc.message, "enter the code ABCD1234E"));

	b = "{\"user_code\":\"U\",\"device_code\":\"D\",\"verification_uri\":\"https://x\","
	    "\"expires_in\":\"900\"}";
	assert_int_equal(o365_oauth_parse_devicecode(200, b, strlen(b), &dc, &oerr, &err), O365_OK);
	assert_int_equal(dc.interval, 5);		/* RFC 8628 default */
	assert_string_equal(dc.message, "");

	b = "{\"device_code\":\"D\",\"verification_uri\":\"https://x\",\"expires_in\":900}";
	assert_int_equal(o365_oauth_parse_devicecode(200, b, strlen(b), &dc, &oerr, &err),
	    O365_E_PROTO);
	assert_string_equal(dc.device_code, "");
	b = "{\"user_code\":\"U\",\"device_code\":\"D\",\"verification_uri\":\"https://x\","
	    "\"expires_in\":900,\"interval\":\"soon\"}";
	assert_int_equal(o365_oauth_parse_devicecode(200, b, strlen(b), &dc, &oerr, &err),
	    O365_E_PROTO);
	b = "{\"user_code\":\"U\",\"device_code\":\"D\\n\",\"verification_uri\":\"https://x\","
	    "\"expires_in\":900}";
	assert_int_equal(o365_oauth_parse_devicecode(200, b, strlen(b), &dc, &oerr, &err),
	    O365_E_PROTO);
	b = "{\"error\":\"unauthorized_client\",\"error_codes\":[700016]}";
	assert_int_equal(o365_oauth_parse_devicecode(400, b, strlen(b), &dc, &oerr, &err),
	    O365_E_AUTH);
	assert_string_equal(oerr.error, "unauthorized_client");
	assert_int_equal(oerr.aadsts, 700016);
}

/* ------------------------------------------------------------------------ */
/* live tests against fake_token.py                                         */

#define CLIENT_PUBLIC	"11111111-2222-3333-4444-555555555555"
#define CLIENT_CONF	"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define CLIENT_SECRET	"Cs~8Q~secret.marker_value-XYZ"
#define ALICE		"alice@contoso.com"
#define DEADLINE_MS	15000

struct fixture {
	char		 dir[256];
	char		 pki[300], state[300], cafile[320], cadir[320], otherca[320];
	char		 keylog[320];
	struct o365_proc proc;
	char		 authority[64];
	char		 password[512];		/* 500 bytes of hard characters */
};

static struct fixture fx;

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];

	o365_test_path_join(path, sizeof(path), dir, name);
	assert_int_equal(o365_test_write_file(path, text, 0644), 0);
}

static void
add_user(struct json_object *users, const char *name, const char *password, const char *c)
{
	struct json_object *u = json_object_new_object();

	json_object_object_add(u, "password", json_object_new_string(password));
	json_object_object_add(u, "case", json_object_new_string(c));
	json_object_object_add(users, name, u);
}

static void
add_client(struct json_object *clients, const char *id, int public, const char *secret,
    const char *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "public", json_object_new_boolean(public));
	if (secret != NULL)
		json_object_object_add(o, "secret", json_object_new_string(secret));
	json_object_object_add(o, "case", json_object_new_string(c));
	json_object_object_add(clients, id, o);
}

static const char *user_cases[] = {
	"50126", "50034", "50053", "50055", "50056", "50057", "50076", "53003",
};

/* users.json: alice (hard password) plus one user per AADSTS case. */
static void
set_conf(const char *mode, int rotate)
{
	struct json_object *root = json_object_new_object();
	struct json_object *users = json_object_new_object();
	struct json_object *clients = json_object_new_object();
	char name[64];
	size_t i;

	add_user(users, ALICE, fx.password, "ok");
	for (i = 0; i < sizeof(user_cases) / sizeof(user_cases[0]); i++) {
		snprintf(name, sizeof(name), "u%s@contoso.com", user_cases[i]);
		add_user(users, name, "pw", user_cases[i]);
	}
	add_client(clients, CLIENT_PUBLIC, 1, NULL, "ok");
	add_client(clients, CLIENT_CONF, 0, CLIENT_SECRET, "ok");
	add_client(clients, "c700016", 1, NULL, "700016");
	add_client(clients, "c7000218", 1, NULL, "7000218");
	add_client(clients, "c65001", 1, NULL, "65001");
	json_object_object_add(root, "users", users);
	json_object_object_add(root, "clients", clients);
	json_object_object_add(root, "mode", json_object_new_string(mode));
	json_object_object_add(root, "expires_in", json_object_new_int(3599));
	json_object_object_add(root, "rotate_refresh", json_object_new_boolean(rotate));
	json_object_object_add(root, "device_interval", json_object_new_int(1));
	write_file(fx.state, "users.json", json_object_to_json_string_ext(root,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
}

static void
make_password(char *p, size_t target)
{
	/* every character a form encoder can get wrong, UTF-8 included */
	static const char hard[] = " \"'&=+%;~#?/\\<>:@[]{}|^`!$()*,\t"
	    "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80";	/* u-umlaut, euro, emoji */
	size_t n = 0;

	while (n + sizeof(hard) - 1 <= target - 10) {
		memcpy(p + n, hard, sizeof(hard) - 1);
		n += sizeof(hard) - 1;
	}
	while (n < target)
		p[n++] = 'x';
	p[n] = '\0';
}

static int
live_setup(void **state)
{
	char *rehash[] = { "openssl", "rehash", fx.cadir, NULL };
	char hashed[400];
	struct o365_proc p;
	int status;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.proc.pid = -1;
	make_password(fx.password, 500);
	if (o365_test_tmpdir(fx.dir, sizeof(fx.dir)) != 0)
		return -1;
	o365_test_path_join(fx.pki, sizeof(fx.pki), fx.dir, "pki");
	o365_test_path_join(fx.state, sizeof(fx.state), fx.dir, "state");
	o365_test_path_join(fx.cafile, sizeof(fx.cafile), fx.pki, "ca.pem");
	o365_test_path_join(fx.keylog, sizeof(fx.keylog), fx.dir, "keylog.txt");
	o365_test_path_join(fx.cadir, sizeof(fx.cadir), fx.dir, "cadir");
	o365_test_path_join(fx.otherca, sizeof(fx.otherca), fx.pki, "other-ca.pem");
	o365_test_path_join(hashed, sizeof(hashed), fx.cadir, "ca.pem");
	if (mkdir(fx.state, 0700) != 0 || o365_test_mkcerts(fx.pki) != 0)
		return -1;
	/* a hashed CA directory holding only the test CA */
	if (mkdir(fx.cadir, 0700) != 0 || symlink(fx.cafile, hashed) != 0 ||
	    o365_proc_start(&p, rehash, 0, 0) != 0 || o365_proc_wait(&p, 30000, &status) != 0 ||
	    status != 0) {
		fprintf(stderr, "openssl rehash failed\n");
		return -1;
	}
	set_conf("normal", 1);
	if (o365_test_fake_token_start(&fx.proc, fx.pki, fx.state) != 0)
		return -1;
	snprintf(fx.authority, sizeof(fx.authority), "https://127.0.0.1:%d", fx.proc.port);
	/*
	 * libcurl reads SSLKEYLOGFILE once, at its initialisation (our first
	 * request): set it now so keylog_is_never_written can check it.
	 */
	setenv("SSLKEYLOGFILE", fx.keylog, 1);
	return 0;
}

static int
live_teardown(void **state)
{
	(void)state;
	if (fx.proc.pid > 0)
		o365_proc_stop(&fx.proc, 2000);
	unsetenv("SSLKEYLOGFILE");
	if (fx.dir[0] != '\0')
		o365_test_rmtree(fx.dir);
	return 0;
}

static struct o365_tls_opts tls_test = { .ca_file = NULL };

static struct o365_oauth_opts
opts_for(const char *client_id, const struct o365_tls_opts *tls)
{
	struct o365_oauth_opts o = {
		.authority = fx.authority,
		.tenant = "contoso.onmicrosoft.com",
		.client_id = client_id,
		.tls = tls,
	};

	tls_test.ca_file = fx.cafile;
	return o;
}

static struct o365_secret *
secret(const char *s)
{
	struct o365_secret *sec;

	assert_int_equal(o365_secret_dup(s, strlen(s), &sec), O365_OK);
	return sec;
}

/* A password grant for user with password pw through client. */
static int
ropc(const char *client, const char *user, const char *pw, const char *scope,
    const struct o365_log *lg, struct o365_token **tok, struct o365_oauth_error *oerr,
    struct o365_error *err)
{
	struct o365_oauth_opts o = opts_for(client, &tls_test);
	struct o365_secret *sec = secret(pw);
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_PASSWORD, .scope = scope, .username = user, .password = sec,
	};
	struct o365_deadline dl;
	int r;

	o365_deadline_in(&dl, DEADLINE_MS);
	r = o365_oauth_token(&o, &rq, &dl, lg, tok, oerr, err);
	o365_secret_free(&sec);
	return r;
}

/* The last line of requests.log, parsed; NULL if there is none. */
static struct json_object *
last_request(void)
{
	char path[512], line[65536], last[65536] = "";
	FILE *f;

	o365_test_path_join(path, sizeof(path), fx.state, "requests.log");
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	while (fgets(line, sizeof(line), f) != NULL)
		memcpy(last, line, sizeof(last));
	fclose(f);
	return last[0] != '\0' ? json_tokener_parse(last) : NULL;
}

static int
request_count(void)
{
	char path[512];

	o365_test_path_join(path, sizeof(path), fx.state, "requests.log");
	return o365_test_count_lines(path);
}

static const char *
form_field(struct json_object *req, const char *name)
{
	struct json_object *form, *v;

	if (req == NULL || !json_object_object_get_ex(req, "form", &form) ||
	    !json_object_object_get_ex(form, name, &v))
		return NULL;
	return json_object_get_string(v);
}

static void
sha256_hex(const char *s, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int i;

	assert_int_equal(EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL), 1);
	assert_int_equal(mdlen, 32);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
live_password_grant_ok_and_password_arrives_intact(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct json_object *req;
	char want[65];

	(void)state;
	set_conf("normal", 1);
	assert_int_equal(strlen(fx.password), 500);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok,
	    &oerr, &err), O365_OK);
	assert_true(tok->access_token->len >= 2048);
	assert_null(tok->refresh_token);		/* no offline_access asked */
	assert_string_equal(tok->scope, O365_SCOPE_IMAP);
	assert_int_equal(tok->expires_in, 3599);
	o365_token_free(&tok);

	assert_non_null(req = last_request());
	sha256_hex(fx.password, strlen(fx.password), want);
	assert_string_equal(form_field(req, "password"), want);
	assert_string_equal(form_field(req, "username"), ALICE);
	assert_string_equal(form_field(req, "grant_type"), "password");
	assert_string_equal(form_field(req, "client_id"), CLIENT_PUBLIC);
	assert_string_equal(form_field(req, "scope"), O365_SCOPE_IMAP);
	assert_null(form_field(req, "client_secret"));
	{
		struct json_object *v;

		assert_true(json_object_object_get_ex(req, "user_agent", &v));
		assert_string_equal(json_object_get_string(v), "o365-unix/0.1");
		assert_true(json_object_object_get_ex(req, "accept", &v));
		assert_string_equal(json_object_get_string(v), "application/json");
		assert_true(json_object_object_get_ex(req, "content_type", &v));
		assert_string_equal(json_object_get_string(v),
		    "application/x-www-form-urlencoded");
		assert_true(json_object_object_get_ex(req, "form_error", &v));
		assert_null(v);
	}
	json_object_put(req);
}

static void
live_tls13_minimum_works(void **state)
{
	struct o365_tls_opts t13 = { .ca_file = fx.cafile, .min_version = TLS1_3_VERSION };
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, &t13);
	struct o365_secret *pw = secret(fx.password);
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_PASSWORD, .scope = O365_SCOPE_SMTP, .username = ALICE,
		.password = pw,
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;

	(void)state;
	set_conf("normal", 1);
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_OK);
	o365_token_free(&tok);
	t13.min_version = 0x0301;		/* TLS 1.0: refused before connecting */
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o365_secret_free(&pw);
}

static void
live_client_credentials(void **state)
{
	struct o365_oauth_opts o = opts_for(CLIENT_CONF, &tls_test);
	struct o365_secret *cs = secret(CLIENT_SECRET), *bad = secret("wrong-secret");
	struct o365_secret *jwt = secret("eyJhbGciOiJQUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln");
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_CLIENT_CREDENTIALS, .scope = O365_SCOPE_APP, .client_secret = cs,
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;
	struct json_object *req;
	char url[512], want[512];
	int n;

	(void)state;
	set_conf("normal", 1);
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_OK);
	assert_string_equal(tok->scope, O365_SCOPE_APP);
	o365_token_free(&tok);
	assert_non_null(req = last_request());
	assert_string_equal(form_field(req, "client_secret"), CLIENT_SECRET);
	assert_string_equal(form_field(req, "grant_type"), "client_credentials");
	json_object_put(req);

	rq.client_secret = bad;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "invalid_client");
	assert_int_equal(oerr.aadsts, 7000215);
	assert_int_equal(oerr.http_status, 401);

	/* a client assertion instead (RFC 7523 2.2): sent as is, no secret; the
	 * fake knows no certificate for this app: "the key was not found" */
	rq.client_secret = NULL;
	rq.client_assertion = jwt;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "invalid_client");
	assert_int_equal(oerr.aadsts, 700027);
	assert_non_null(req = last_request());
	assert_string_equal(form_field(req, "client_assertion_type"),
	    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	assert_string_equal(form_field(req, "client_assertion"), jwt->data);
	assert_null(form_field(req, "client_secret"));
	json_object_put(req);
	/* one of the two, not both, not none: refused before sending */
	n = request_count();
	rq.client_secret = cs;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	rq.client_secret = NULL;
	rq.client_assertion = NULL;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	assert_int_equal(request_count(), n);
	assert_null(tok);

	/* the assertion's audience is the URL the request goes to */
	assert_int_equal(o365_oauth_endpoint_url(&o, "token", url, sizeof(url), &err), O365_OK);
	snprintf(want, sizeof(want), "%s/contoso.onmicrosoft.com/oauth2/v2.0/token", fx.authority);
	assert_string_equal(url, want);
	assert_int_equal(o365_oauth_endpoint_url(&o, "token", url, strlen(want), &err),
	    O365_E_CONFIG);
	o.authority = "http://login.example";
	assert_int_equal(o365_oauth_endpoint_url(&o, "token", url, sizeof(url), &err),
	    O365_E_CONFIG);
	o365_secret_free(&cs);
	o365_secret_free(&bad);
	o365_secret_free(&jwt);
}

static void
live_error_cases(void **state)
{
	static const struct {
		const char *client, *user, *pw, *error;
		long aadsts, status;
	} rows[] = {
		{ CLIENT_PUBLIC, ALICE, "wrong", "invalid_grant", 50126, 400 },
		{ CLIENT_PUBLIC, "u50126@contoso.com", "pw", "invalid_grant", 50126, 400 },
		{ CLIENT_PUBLIC, "nobody@contoso.com", "pw", "invalid_grant", 50034, 400 },
		{ CLIENT_PUBLIC, "u50034@contoso.com", "pw", "invalid_grant", 50034, 400 },
		{ CLIENT_PUBLIC, "u50053@contoso.com", "pw", "invalid_grant", 50053, 400 },
		{ CLIENT_PUBLIC, "u50055@contoso.com", "pw", "invalid_grant", 50055, 400 },
		{ CLIENT_PUBLIC, "u50056@contoso.com", "pw", "invalid_grant", 50056, 400 },
		{ CLIENT_PUBLIC, "u50057@contoso.com", "pw", "invalid_grant", 50057, 400 },
		{ CLIENT_PUBLIC, "u50076@contoso.com", "pw", "interaction_required", 50076, 400 },
		{ CLIENT_PUBLIC, "u53003@contoso.com", "pw", "invalid_grant", 53003, 400 },
		{ "c700016", ALICE, "pw", "unauthorized_client", 700016, 400 },
		{ "unknown-client", ALICE, "pw", "unauthorized_client", 700016, 400 },
		{ "c7000218", ALICE, "pw", "invalid_client", 7000218, 401 },
		{ CLIENT_CONF, ALICE, "pw", "invalid_client", 7000218, 401 },
		{ "c65001", ALICE, "pw", "invalid_grant", 65001, 400 },
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	size_t i;

	(void)state;
	set_conf("normal", 1);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (ropc(rows[i].client, rows[i].user, rows[i].pw, O365_SCOPE_IMAP, NULL, &tok,
		    &oerr, &err) != O365_E_AUTH)
			fail_msg("row %zu (%s): %s", i, rows[i].user, err.why);
		assert_null(tok);
		assert_string_equal(oerr.error, rows[i].error);
		assert_int_equal(oerr.aadsts, rows[i].aadsts);
		assert_int_equal(oerr.http_status, rows[i].status);
		assert_int_equal(strlen(oerr.trace_id), 36);
		assert_int_equal(strlen(oerr.correlation_id), 36);
		assert_non_null(strstr(oerr.description, "AADSTS"));
	}
}

static void
live_temporary_failures(void **state)
{
	static const struct {
		const char *mode;
		long status, retry_after;
	} rows[] = {
		{ "429", 429, 7 },
		{ "500", 500, 0 },
		{ "503", 503, 0 },
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		set_conf(rows[i].mode, 1);
		assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL,
		    &tok, &oerr, &err), O365_E_TEMP);
		assert_null(tok);
		assert_int_equal(oerr.http_status, rows[i].status);
		assert_int_equal(oerr.retry_after, rows[i].retry_after);
	}
	set_conf("normal", 1);
}

static void
live_broken_answers(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	int r, before;

	(void)state;
	set_conf("truncated", 1);
	r = ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok, &oerr, &err);
	assert_true(r == O365_E_NET || r == O365_E_PROTO);
	assert_null(tok);
	set_conf("html", 1);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok,
	    &oerr, &err), O365_E_PROTO);
	assert_int_equal(oerr.http_status, 200);
	assert_non_null(strstr(err.why, "text/html"));		/* says what it got */
	set_conf("garbage", 1);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok,
	    &oerr, &err), O365_E_PROTO);
	set_conf("huge", 1);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok,
	    &oerr, &err), O365_E_TOOLONG);
	/* a redirect is not followed, least of all to http:// */
	set_conf("redirect", 1);
	before = request_count();
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok,
	    &oerr, &err), O365_E_PROTO);
	assert_int_equal(oerr.http_status, 302);
	assert_int_equal(request_count(), before + 1);
	assert_null(tok);
	set_conf("normal", 1);
}

static void
live_slow_server_times_out(void **state)
{
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, &tls_test);
	struct o365_secret *pw = secret(fx.password);
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_PASSWORD, .scope = O365_SCOPE_IMAP, .username = ALICE,
		.password = pw,
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;
	struct timespec t0;
	long ms;

	(void)state;
	set_conf("slow", 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	o365_deadline_in(&dl, 1500);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_TIMEOUT);
	ms = o365_elapsed_ms(&t0);
	assert_true(ms >= 1000);		/* it did wait */
	assert_true(ms < 1500 + 5000);		/* and stopped near the deadline */
	assert_null(tok);
	/* a deadline already passed: nothing is sent */
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_TIMEOUT);
	set_conf("normal", 1);
	o365_secret_free(&pw);
}

static void
live_untrusted_ca_is_refused(void **state)
{
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, NULL);	/* system store */
	struct o365_tls_opts sys = { .ca_file = NULL };
	struct o365_secret *pw = secret(fx.password);
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_PASSWORD, .scope = O365_SCOPE_IMAP, .username = ALICE,
		.password = pw,
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;
	int before;

	(void)state;
	set_conf("normal", 1);
	before = request_count();
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_TLS);
	assert_true(strlen(err.why) > 20);		/* curl's reason is passed on */
	/* the environment must not make the test CA trusted */
	setenv("SSL_CERT_FILE", fx.cafile, 1);
	setenv("SSL_CERT_DIR", fx.pki, 1);
	setenv("CURL_CA_BUNDLE", fx.cafile, 1);
	o.tls = &sys;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_TLS);
	o.tls = NULL;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_TLS);
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
	unsetenv("CURL_CA_BUNDLE");
	assert_null(tok);
	assert_int_equal(request_count(), before);	/* no password went anywhere */
	o365_secret_free(&pw);
}

static void
live_ca_dir_is_trusted(void **state)
{
	struct o365_tls_opts dir = { .ca_dir = fx.cadir };
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, &dir);
	struct o365_secret *pw = secret(fx.password);
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_PASSWORD, .scope = O365_SCOPE_IMAP, .username = ALICE,
		.password = pw,
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;

	(void)state;
	set_conf("normal", 1);
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_OK);
	o365_token_free(&tok);
	/* a file that is not the CA: refused, not silently the system store */
	dir.ca_dir = NULL;
	dir.ca_file = fx.otherca;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_TLS);
	o365_secret_free(&pw);
}

static void
live_proxy_environment_is_ignored(void **state)
{
	static const char *vars[] = { "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
	    "http_proxy" };
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	size_t i;
	int r;

	(void)state;
	set_conf("normal", 1);
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		setenv(vars[i], "http://127.0.0.1:9", 1);	/* discard port: dead */
	r = ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP, NULL, &tok, &oerr, &err);
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	assert_int_equal(r, O365_OK);
	o365_token_free(&tok);
}

static void
live_config_and_input_refused_before_sending(void **state)
{
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, &tls_test);
	struct o365_secret *pw = secret("pw"), *crpw = secret("p\r\nw");
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_PASSWORD, .scope = O365_SCOPE_IMAP, .username = ALICE,
		.password = pw,
	};
	struct o365_oauth_error oerr;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;
	char http[64];
	int before;

	(void)state;
	set_conf("normal", 1);
	before = request_count();
	o365_deadline_in(&dl, DEADLINE_MS);
	snprintf(http, sizeof(http), "http://127.0.0.1:%d", fx.proc.port);
	o.authority = http;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.authority = "https://127.0.0.1:1/x?y";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.authority = "https://";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.authority = fx.authority;
	o.tenant = "contoso/../evil";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.tenant = "contoso%2f";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.tenant = "contoso.onmicrosoft.com";
	o.client_id = "abc def";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.client_id = NULL;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_CONFIG);
	o.client_id = CLIENT_PUBLIC;
	rq.password = crpw;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	assert_null(strstr(err.why, "p\r\nw"));
	rq.password = pw;
	rq.username = "";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	rq.username = ALICE;
	rq.scope = "";
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	rq.scope = O365_SCOPE_IMAP;
	rq.grant = O365_GRANT_REFRESH_TOKEN;		/* without a refresh token */
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	rq.grant = (enum o365_oauth_grant)42;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, &oerr, &err), O365_E_INVAL);
	assert_null(tok);
	assert_int_equal(request_count(), before);
	o365_secret_free(&pw);
	o365_secret_free(&crpw);
}

static void
live_refresh_token_rotation(void **state)
{
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, &tls_test);
	struct o365_oauth_request rq = { .grant = O365_GRANT_REFRESH_TOKEN,
	    .scope = O365_SCOPE_IMAP " offline_access" };
	struct o365_token *tok, *tok2, *tok3;
	struct o365_oauth_error oerr;
	struct o365_error err;
	struct o365_deadline dl;
	struct json_object *req;

	(void)state;
	set_conf("normal", 1);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP " offline_access",
	    NULL, &tok, &oerr, &err), O365_OK);
	assert_non_null(tok->refresh_token);
	o365_deadline_in(&dl, DEADLINE_MS);
	rq.refresh_token = tok->refresh_token;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok2, &oerr, &err), O365_OK);
	assert_non_null(tok2->refresh_token);
	assert_string_not_equal(tok2->refresh_token->data, tok->refresh_token->data);
	assert_string_not_equal(tok2->access_token->data, tok->access_token->data);
	assert_non_null(req = last_request());
	assert_string_equal(form_field(req, "refresh_token"), tok->refresh_token->data);
	assert_string_equal(form_field(req, "grant_type"), "refresh_token");
	json_object_put(req);
	/* the old one was used: rotation refuses it */
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok3, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "invalid_grant");
	assert_int_equal(oerr.aadsts, 700082);
	/* the new one works */
	rq.refresh_token = tok2->refresh_token;
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok3, &oerr, &err), O365_OK);
	o365_token_free(&tok);
	o365_token_free(&tok2);
	o365_token_free(&tok3);
}

static int
device_poll(const struct o365_oauth_opts *o, const char *code, struct o365_token **tok,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_oauth_request rq = { .grant = O365_GRANT_DEVICE_CODE,
	    .scope = O365_SCOPE_IMAP, .device_code = code };
	struct o365_deadline dl;

	o365_deadline_in(&dl, DEADLINE_MS);
	return o365_oauth_token(o, &rq, &dl, NULL, tok, oerr, err);
}

static void
live_device_code_states(void **state)
{
	struct o365_oauth_opts o = opts_for(CLIENT_PUBLIC, &tls_test);
	struct o365_oauth_error oerr;
	struct o365_devicecode dc;
	struct o365_token *tok;
	struct o365_error err;
	struct o365_deadline dl;
	struct json_object *req;

	(void)state;
	set_conf("normal", 1);
	write_file(fx.state, "device.json", "[\"authorization_pending\", \"slow_down\", \"ok\"]");
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_devicecode(&o, O365_SCOPE_IMAP, &dl, NULL, &dc, &oerr, &err),
	    O365_OK);
	assert_true(strlen(dc.device_code) > 100);
	assert_int_equal(strlen(dc.user_code), 9);
	assert_string_equal(dc.verification_uri, "https://microsoft.com/devicelogin");
	assert_int_equal(dc.interval, 1);
	assert_int_equal(dc.expires_in, 900);
	assert_non_null(strstr(dc.message, dc.user_code));

	assert_int_equal(device_poll(&o, dc.device_code, &tok, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "authorization_pending");
	assert_non_null(req = last_request());
	assert_string_equal(form_field(req, "grant_type"),
	    "urn:ietf:params:oauth:grant-type:device_code");
	assert_string_equal(form_field(req, "device_code"), dc.device_code);
	json_object_put(req);
	assert_int_equal(device_poll(&o, dc.device_code, &tok, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "slow_down");
	assert_int_equal(device_poll(&o, dc.device_code, &tok, &oerr, &err), O365_OK);
	assert_true(tok->access_token->len >= 2048);
	o365_token_free(&tok);

	write_file(fx.state, "device.json", "[\"authorization_declined\"]");
	assert_int_equal(o365_oauth_devicecode(&o, O365_SCOPE_IMAP, &dl, NULL, &dc, &oerr, &err),
	    O365_OK);
	assert_int_equal(device_poll(&o, dc.device_code, &tok, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "authorization_declined");

	write_file(fx.state, "device.json", "[\"expired_token\"]");
	assert_int_equal(o365_oauth_devicecode(&o, O365_SCOPE_IMAP, &dl, NULL, &dc, &oerr, &err),
	    O365_OK);
	assert_int_equal(device_poll(&o, dc.device_code, &tok, &oerr, &err), O365_E_AUTH);
	assert_string_equal(oerr.error, "expired_token");
	assert_null(tok);

	/* a device code the endpoint never issued */
	assert_int_equal(device_poll(&o, "DAQABAAEAAAD-never-issued", &tok, &oerr, &err),
	    O365_E_AUTH);
	assert_string_equal(oerr.error, "invalid_grant");

	o.client_id = "c700016";
	assert_int_equal(o365_oauth_devicecode(&o, O365_SCOPE_IMAP, &dl, NULL, &dc, &oerr, &err),
	    O365_E_AUTH);
	assert_string_equal(oerr.error, "unauthorized_client");
}

static void
assert_not_in(const struct o365_test_capture *c, const char *secret_text, size_t len)
{
	assert_true(len >= 8);
	if (memmem(c->text, c->len, secret_text, len) != NULL)
		fail_msg("a secret reached the log");
}

static void
live_log_never_holds_a_secret(void **state)
{
	static struct o365_test_capture cap;
	struct o365_log lg = { .fn = o365_test_capture_sink, .ctx = &cap, .debug = 1 };
	struct o365_oauth_opts o = opts_for(CLIENT_CONF, &tls_test);
	struct o365_secret *cs = secret(CLIENT_SECRET);
	struct o365_oauth_request rq = { .grant = O365_GRANT_CLIENT_CREDENTIALS,
	    .scope = O365_SCOPE_APP, .client_secret = cs };
	struct o365_oauth_error oerr;
	struct o365_token *tok, *tok2, *tok3;
	struct o365_error err;
	struct o365_deadline dl;

	(void)state;
	cap.len = 0;
	cap.text[0] = '\0';
	set_conf("normal", 1);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, fx.password, O365_SCOPE_IMAP " offline_access",
	    &lg, &tok, &oerr, &err), O365_OK);
	assert_int_equal(ropc(CLIENT_PUBLIC, ALICE, "wrong-password-marker", O365_SCOPE_IMAP, &lg,
	    &tok3, &oerr, &err), O365_E_AUTH);
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, &lg, &tok2, &oerr, &err), O365_OK);
	rq.grant = O365_GRANT_REFRESH_TOKEN;
	rq.scope = O365_SCOPE_IMAP;
	rq.refresh_token = tok->refresh_token;
	rq.client_secret = NULL;
	o = opts_for(CLIENT_PUBLIC, &tls_test);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, &lg, &tok3, &oerr, &err), O365_OK);

	/* the sink saw the requests ... */
	assert_non_null(strstr(cap.text, "grant=password"));
	assert_non_null(strstr(cap.text, "grant=client_credentials"));
	assert_non_null(strstr(cap.text, "grant=refresh_token"));
	assert_non_null(strstr(cap.text, "error=invalid_grant"));
	assert_non_null(strstr(cap.text, "host=127.0.0.1"));
	/* ... and none of the secrets */
	assert_not_in(&cap, fx.password, strlen(fx.password));
	assert_not_in(&cap, fx.password + 100, 40);
	assert_not_in(&cap, "wrong-password-marker", 21);
	assert_not_in(&cap, CLIENT_SECRET, strlen(CLIENT_SECRET));
	assert_not_in(&cap, tok->access_token->data, tok->access_token->len);
	assert_not_in(&cap, tok->access_token->data + 40, 40);
	assert_not_in(&cap, tok->refresh_token->data, tok->refresh_token->len);
	assert_not_in(&cap, tok->refresh_token->data + 10, 40);
	assert_not_in(&cap, tok2->access_token->data + 40, 40);
	assert_not_in(&cap, tok3->access_token->data + 40, 40);
	assert_not_in(&cap, tok3->refresh_token->data + 10, 40);
	o365_token_free(&tok);
	o365_token_free(&tok2);
	o365_token_free(&tok3);
	o365_secret_free(&cs);
}

/* Runs last: every request above went over TLS with SSLKEYLOGFILE set. */
static void
live_keylog_is_never_written(void **state)
{
	struct stat st;

	(void)state;
	if (stat(fx.keylog, &st) == 0)
		assert_int_equal(st.st_size, 0);
	else
		assert_int_equal(errno, ENOENT);
}

int
main(void)
{
	const struct CMUnitTest parsers[] = {
		cmocka_unit_test(parse_success_with_refresh_token),
		cmocka_unit_test(parse_success_without_refresh_token_and_string_expiry),
		cmocka_unit_test(parse_every_aadsts_row),
		cmocka_unit_test(parse_aadsts_from_description_when_no_codes),
		cmocka_unit_test(parse_refuses_wrong_shapes),
		cmocka_unit_test(parse_refuses_nul_byte),
		cmocka_unit_test(parse_accepts_trailing_white_space),
		cmocka_unit_test(parse_token_length_limit),
		cmocka_unit_test(parse_body_size_limit),
		cmocka_unit_test(parse_nesting_limit),
		cmocka_unit_test(parse_temporary_answers),
		cmocka_unit_test(parse_devicecode_answers),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(live_password_grant_ok_and_password_arrives_intact),
		cmocka_unit_test(live_tls13_minimum_works),
		cmocka_unit_test(live_client_credentials),
		cmocka_unit_test(live_error_cases),
		cmocka_unit_test(live_temporary_failures),
		cmocka_unit_test(live_broken_answers),
		cmocka_unit_test(live_slow_server_times_out),
		cmocka_unit_test(live_untrusted_ca_is_refused),
		cmocka_unit_test(live_ca_dir_is_trusted),
		cmocka_unit_test(live_proxy_environment_is_ignored),
		cmocka_unit_test(live_config_and_input_refused_before_sending),
		cmocka_unit_test(live_refresh_token_rotation),
		cmocka_unit_test(live_device_code_states),
		cmocka_unit_test(live_log_never_holds_a_secret),
		cmocka_unit_test(live_keylog_is_never_written),
	};
	int failed;

	failed = cmocka_run_group_tests_name("oauth parsers", parsers, NULL, NULL);
	failed += cmocka_run_group_tests_name("oauth live", live, live_setup, live_teardown);
	return failed;
}
