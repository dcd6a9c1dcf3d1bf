/*
 * test_tokstore.c: the token store against tests/fake/fake_token.py over TLS
 * (per-run test CA): caching, expiry, rotation written atomically, the error
 * shapes, two racing runners, the device code flow's states, and a search of
 * every log line for the secrets.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "o365/limits.h"
#include "o365/oauth.h"
#include "o365/tokstore.h"
#include "spawn.h"
#include "testutil.h"

#define CLIENT_PUBLIC	"11111111-2222-3333-4444-555555555555"
#define CLIENT_CONF	"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define CLIENT_SECRET	"Cs~8Q~tokstore.secret_marker-XYZ"
#define ALICE		"alice@contoso.com"
#define ALICE_PW	"alice-Password-marker-42"
#define RELAY		"relay@contoso.com"
#define DEADLINE_MS	20000

static struct {
	char		 dir[256];
	char		 pki[300], state[300], cafile[320], cache[300], secrets[300];
	char		 secret_file[340], rt_file[340];
	struct o365_proc proc;
	char		 authority[64];
	struct o365_tls_opts tls;
	struct o365_test_capture cap;
	struct o365_log	 lg;
	unsigned int	 sleeps[64];
	size_t		 nsleeps;
	int		 shown;
	char		 user_code[64];
	char		 polls[512];	/* "state/interval/left " per poll_fn call */
} fx;

static void
write_path(const char *path, const char *text, mode_t mode)
{
	assert_int_equal(o365_test_write_file(path, text, mode), 0);
}

static char *
read_path(const char *path)
{
	static char buf[65536];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY)) < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static void
add_client(struct json_object *clients, const char *id, int public, const char *secret)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "public", json_object_new_boolean(public));
	if (secret != NULL)
		json_object_object_add(o, "secret", json_object_new_string(secret));
	json_object_object_add(o, "case", json_object_new_string("ok"));
	json_object_object_add(clients, id, o);
}

/* users.json: mode, access token lifetime; refresh tokens always rotate. */
static void
set_conf(const char *mode, int expires_in)
{
	struct json_object *root = json_object_new_object();
	struct json_object *users = json_object_new_object();
	struct json_object *clients = json_object_new_object();
	struct json_object *u = json_object_new_object();
	char path[400];

	json_object_object_add(u, "password", json_object_new_string(ALICE_PW));
	json_object_object_add(u, "case", json_object_new_string("ok"));
	json_object_object_add(users, ALICE, u);
	add_client(clients, CLIENT_PUBLIC, 1, NULL);
	add_client(clients, CLIENT_CONF, 0, CLIENT_SECRET);
	json_object_object_add(root, "users", users);
	json_object_object_add(root, "clients", clients);
	json_object_object_add(root, "mode", json_object_new_string(mode));
	json_object_object_add(root, "expires_in", json_object_new_int(expires_in));
	json_object_object_add(root, "rotate_refresh", json_object_new_boolean(1));
	json_object_object_add(root, "device_interval", json_object_new_int(1));
	o365_test_path_join(path, sizeof(path), fx.state, "users.json");
	write_path(path, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), 0644);
	json_object_put(root);
}

static void
set_device(const char *json)
{
	char path[400];

	o365_test_path_join(path, sizeof(path), fx.state, "device.json");
	write_path(path, json, 0644);
}

static int
request_count(void)
{
	char path[400];

	o365_test_path_join(path, sizeof(path), fx.state, "requests.log");
	return o365_test_count_lines(path);
}

static struct json_object *
state_json(const char *name)
{
	char path[400];

	o365_test_path_join(path, sizeof(path), fx.state, name);
	return json_object_from_file(path);
}

/* The entry tokens.json holds for an access token, or NULL (caller puts root). */
static struct json_object *
issued(struct json_object *root, const char *token)
{
	struct json_object *e;

	return root != NULL && json_object_object_get_ex(root, token, &e) ? e : NULL;
}

static int
token_was_issued_to(const char *token, const char *who)
{
	struct json_object *root = state_json("tokens.json"), *e, *u;
	int ok;

	ok = (e = issued(root, token)) != NULL && json_object_object_get_ex(e, "user", &u) &&
	    strcmp(json_object_get_string(u), who) == 0;
	json_object_put(root);
	return ok;
}

/*
 * How many refresh tokens the fake has issued (refresh.json), and whether
 * the one in rt_file is known and not yet spent (*fresh = 1).  A lost
 * rotation leaves a spent token in the file.
 */
static int
refresh_state(int *fresh)
{
	struct json_object *root = state_json("refresh.json"), *e, *used;
	char tok[O365_MAX_TOKEN + 2], *file;
	int n;

	*fresh = 0;
	if (root == NULL)
		return -1;
	n = json_object_object_length(root);
	if ((file = read_path(fx.rt_file)) != NULL) {
		if (snprintf(tok, sizeof(tok), "%s", file) >= (int)sizeof(tok))
			tok[0] = '\0';		/* longer than any token: matches none */
		tok[strcspn(tok, "\n")] = '\0';
		if (json_object_object_get_ex(root, tok, &e) &&
		    json_object_object_get_ex(e, "used", &used) && !json_object_get_boolean(used))
			*fresh = 1;
	}
	json_object_put(root);
	return n;
}

static void
sleep_hook(void *ctx, unsigned int secs)
{
	(void)ctx;
	if (fx.nsleeps < sizeof(fx.sleeps) / sizeof(fx.sleeps[0]))
		fx.sleeps[fx.nsleeps++] = secs;
}

static void
poll_hook(void *ctx, const char *st, long interval, long left)
{
	size_t n = strlen(fx.polls);

	(void)ctx;
	snprintf(fx.polls + n, sizeof(fx.polls) - n, "%s/%ld/%ld ", st, interval, left);
}

static void
show_hook(void *ctx, const struct o365_devicecode *dc)
{
	(void)ctx;
	fx.shown++;
	snprintf(fx.user_code, sizeof(fx.user_code), "%s", dc->user_code);
}

static struct o365_tokstore_cfg
cfg_cc(void)
{
	struct o365_tokstore_cfg c = {
		.oauth = { .authority = fx.authority, .tenant = "contoso.onmicrosoft.com",
		    .client_id = CLIENT_CONF, .tls = &fx.tls },
		.grant = O365_TOKSTORE_CLIENT_CREDENTIALS,
		.identity = RELAY,
		.client_secret_file = fx.secret_file,
		.cache_dir = fx.cache,
		.owner_uid = geteuid(),
	};

	return c;
}

static struct o365_tokstore_cfg
cfg_rt(void)
{
	struct o365_tokstore_cfg c = {
		.oauth = { .authority = fx.authority, .tenant = "contoso.onmicrosoft.com",
		    .client_id = CLIENT_PUBLIC, .tls = &fx.tls },
		.grant = O365_TOKSTORE_REFRESH_TOKEN,
		.identity = ALICE,
		.refresh_token_file = fx.rt_file,
		.cache_dir = fx.cache,
		.owner_uid = geteuid(),
		.sleep_fn = sleep_hook,
		.poll_fn = poll_hook,
	};

	return c;
}

static int
get(const struct o365_tokstore_cfg *c, int force, struct o365_secret **tok, time_t *exp,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_deadline dl;

	o365_deadline_in(&dl, DEADLINE_MS);
	return o365_tokstore_get(c, force, &dl, &fx.lg, tok, exp, oerr, err);
}

static void
drop_cache(void)
{
	char path[400];

	o365_test_path_join(path, sizeof(path), fx.cache, "access-token");
	(void)unlink(path);
}

/* A fresh refresh token for alice (password grant with offline_access) in rt_file. */
static void
seed_refresh_token(mode_t mode)
{
	struct o365_oauth_opts o = { .authority = fx.authority,
	    .tenant = "contoso.onmicrosoft.com", .client_id = CLIENT_PUBLIC, .tls = &fx.tls };
	struct o365_secret *pw;
	struct o365_oauth_request rq = { .grant = O365_GRANT_PASSWORD,
	    .scope = O365_TOKSTORE_SCOPE_DELEGATED, .username = ALICE };
	struct o365_token *tok;
	struct o365_deadline dl;
	struct o365_error err;
	char line[O365_MAX_TOKEN + 2];

	assert_int_equal(o365_secret_dup(ALICE_PW, strlen(ALICE_PW), &pw), O365_OK);
	rq.password = pw;
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_oauth_token(&o, &rq, &dl, NULL, &tok, NULL, &err), O365_OK);
	assert_non_null(tok->refresh_token);
	snprintf(line, sizeof(line), "%s\n", tok->refresh_token->data);
	write_path(fx.rt_file, line, mode);
	o365_token_free(&tok);
	o365_secret_free(&pw);
	drop_cache();
}

/* No temp files left beside the cache or the refresh token. */
static void
assert_no_temp_files(const char *dir)
{
	struct dirent *de;
	DIR *d;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		/* temp names are "<file>.XXXXXX" */
		assert_false(strncmp(de->d_name, "access-token.", 13) == 0);
		assert_false(strncmp(de->d_name, "refresh-token.", 14) == 0);
	}
	closedir(d);
}

static int
setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.proc.pid = -1;
	fx.lg.fn = o365_test_capture_sink;
	fx.lg.ctx = &fx.cap;
	fx.lg.debug = 1;		/* every line, debug included, is searched at the end */
	if (o365_test_tmpdir(fx.dir, sizeof(fx.dir)) != 0)
		return -1;
	o365_test_path_join(fx.pki, sizeof(fx.pki), fx.dir, "pki");
	o365_test_path_join(fx.state, sizeof(fx.state), fx.dir, "state");
	o365_test_path_join(fx.cache, sizeof(fx.cache), fx.dir, "cache");
	o365_test_path_join(fx.secrets, sizeof(fx.secrets), fx.dir, "secrets");
	o365_test_path_join(fx.cafile, sizeof(fx.cafile), fx.pki, "ca.pem");
	o365_test_path_join(fx.secret_file, sizeof(fx.secret_file), fx.secrets, "client-secret");
	o365_test_path_join(fx.rt_file, sizeof(fx.rt_file), fx.secrets, "refresh-token");
	fx.tls.ca_file = fx.cafile;
	if (mkdir(fx.state, 0700) != 0 || mkdir(fx.cache, 0700) != 0 ||
	    mkdir(fx.secrets, 0700) != 0)
		return -1;
	if (o365_test_mkcerts(fx.pki) != 0)
		return -1;
	set_conf("normal", 3599);
	write_path(fx.secret_file, CLIENT_SECRET "\n", 0600);
	if (o365_test_fake_token_start(&fx.proc, fx.pki, fx.state) != 0)
		return -1;
	snprintf(fx.authority, sizeof(fx.authority), "https://127.0.0.1:%d", fx.proc.port);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (fx.proc.pid > 0)
		o365_proc_stop(&fx.proc, 2000);
	if (fx.dir[0] != '\0')
		o365_test_rmtree(fx.dir);
	return 0;
}

static int
reset(void **state)
{
	(void)state;
	set_conf("normal", 3599);
	set_device("[]");
	drop_cache();
	fx.nsleeps = 0;
	fx.shown = 0;
	fx.polls[0] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------ */

static void
client_credentials_ok_then_cached(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_secret *t1, *t2;
	struct o365_error err;
	char path[400];
	struct stat st;
	time_t e1, e2;
	int n0;

	(void)state;
	n0 = request_count();
	assert_int_equal(get(&c, 0, &t1, &e1, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_true(t1->len >= 2048);
	assert_true(token_was_issued_to(t1->data, CLIENT_CONF));
	assert_true(e1 > time(NULL) + 3500);

	/* the second call is answered from the cache: no request */
	assert_int_equal(get(&c, 0, &t2, &e2, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_string_equal(t1->data, t2->data);
	assert_int_equal(e1, e2);

	/* the cache is 0600, the runner's, never group or world readable */
	o365_test_path_join(path, sizeof(path), fx.cache, "access-token");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_no_temp_files(fx.cache);
	o365_secret_free(&t1);
	o365_secret_free(&t2);
}

static void
config_change_invalidates_cache(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_secret *t1, *t2;
	struct o365_error err;
	int n0;

	(void)state;
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	n0 = request_count();
	c.identity = "other@contoso.com";
	assert_int_equal(get(&c, 0, &t2, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_string_not_equal(t1->data, t2->data);
	o365_secret_free(&t2);
	c.identity = RELAY;
	c.oauth.tenant = "fabrikam.onmicrosoft.com";
	assert_int_equal(get(&c, 0, &t2, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 2);
	o365_secret_free(&t1);
	o365_secret_free(&t2);
}

static void
token_within_margin_is_refreshed(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_secret *t1, *t2;
	struct o365_error err;
	time_t e1;
	int n0;

	(void)state;
	/* 300 s left is less than the 10 minute margin: never served from cache */
	set_conf("normal", 300);
	n0 = request_count();
	assert_int_equal(get(&c, 0, &t1, &e1, NULL, &err), O365_OK);
	assert_true(e1 <= time(NULL) + 300);
	assert_int_equal(get(&c, 0, &t2, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 2);
	assert_string_not_equal(t1->data, t2->data);
	assert_true(token_was_issued_to(t2->data, CLIENT_CONF));
	o365_secret_free(&t1);
	o365_secret_free(&t2);

	/* at the margin plus slack it is cached again */
	set_conf("normal", O365_TOKSTORE_MARGIN + 60);
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	assert_int_equal(get(&c, 0, &t2, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 3);
	assert_string_equal(t1->data, t2->data);
	o365_secret_free(&t1);
	o365_secret_free(&t2);
}

static void
force_refresh_skips_cache_once(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_secret *t1, *t2, *t3;
	struct o365_error err;
	int n0;

	(void)state;
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	n0 = request_count();
	assert_int_equal(get(&c, 1, &t2, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_string_not_equal(t1->data, t2->data);
	/* the forced token replaced the cache */
	assert_int_equal(get(&c, 0, &t3, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_string_equal(t2->data, t3->data);
	o365_secret_free(&t1);
	o365_secret_free(&t2);
	o365_secret_free(&t3);
}

static void
unsafe_cache_file_is_not_used_and_replaced(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_secret *t1, *t2;
	struct o365_error err;
	char path[400];
	struct stat st;
	int n0;

	(void)state;
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	o365_test_path_join(path, sizeof(path), fx.cache, "access-token");
	assert_int_equal(chmod(path, 0644), 0);
	n0 = request_count();
	assert_int_equal(get(&c, 0, &t2, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_string_not_equal(t1->data, t2->data);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	o365_secret_free(&t1);
	o365_secret_free(&t2);

	/* a cache directory others may write is a config error */
	assert_int_equal(chmod(fx.cache, 0777), 0);
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_E_CONFIG);
	assert_null(t1);
	assert_non_null(strstr(err.why, "writable"));
	assert_int_equal(chmod(fx.cache, 0700), 0);
}

static void
lock_held_elsewhere_times_out(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_deadline dl;
	struct o365_secret *t1;
	struct o365_error err;
	char path[400];
	int fd, n0;

	(void)state;
	o365_test_path_join(path, sizeof(path), fx.cache, "token.lock");
	assert_true((fd = open(path, O_RDWR | O_CREAT, 0600)) >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);	/* another runner, mid-refresh */
	n0 = request_count();
	o365_deadline_in(&dl, 300);
	assert_int_equal(o365_tokstore_get(&c, 0, &dl, &fx.lg, &t1, NULL, NULL, &err),
	    O365_E_TIMEOUT);
	assert_null(t1);
	assert_non_null(strstr(err.why, "token.lock"));
	assert_int_equal(request_count(), n0);		/* nothing asked without the lock */
	assert_int_equal(flock(fd, LOCK_UN), 0);
	close(fd);
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	o365_secret_free(&t1);
}

static void
malformed_cache_is_replaced(void **state)
{
	static const char *const bodies[] = {
		"",
		"o365-tokstore 1\n",
		"garbage\n",
	};
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_secret *t1, *t2;
	struct o365_deadline dl;
	struct o365_error err;
	char path[400], *good, *bad;
	size_t i, cut;
	int n0;

	(void)state;
	o365_test_path_join(path, sizeof(path), fx.cache, "access-token");
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	assert_non_null(good = strdup(read_path(path)));
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]) + 3; i++) {
		assert_non_null(bad = strdup(good));
		if (i < sizeof(bodies) / sizeof(bodies[0])) {
			bad[0] = '\0';
			write_path(path, bodies[i], 0600);
		} else {
			/* the real entry cut short, a space in the token, a bad expiry */
			cut = strlen(bad);
			if (i == 3)
				bad[cut - 2] = '\0';
			else if (i == 4)
				bad[cut - 20] = ' ';
			else
				memcpy(strstr(bad, "expires_at: ") + 12, "x", 1);
			write_path(path, bad, 0600);
		}
		free(bad);
		n0 = request_count();
		assert_int_equal(get(&c, 0, &t2, NULL, NULL, &err), O365_OK);
		assert_int_equal(request_count(), n0 + 1);
		assert_string_not_equal(t1->data, t2->data);
		o365_secret_free(&t2);
	}
	free(good);
	o365_secret_free(&t1);

	/* device login is for the refresh token grant only */
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_tokstore_device_login(&c, show_hook, NULL, &dl, NULL, NULL, &err),
	    O365_E_CONFIG);
	assert_int_equal(fx.shown, 0);
}

static void
refresh_rotation_written_atomically(void **state)
{
	struct o365_tokstore_cfg c = cfg_rt();
	struct o365_secret *t1;
	struct o365_error err;
	struct stat before, after;
	char seeded[8192], *now;
	int n0, n, fresh;

	(void)state;
	seed_refresh_token(0640);
	assert_true(snprintf(seeded, sizeof(seeded), "%s", read_path(fx.rt_file)) < (int)sizeof(seeded));
	assert_true((n = refresh_state(&fresh)) >= 1);
	assert_int_equal(fresh, 1);
	assert_int_equal(lstat(fx.rt_file, &before), 0);
	n0 = request_count();
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	assert_int_equal(request_count(), n0 + 1);
	assert_true(token_was_issued_to(t1->data, ALICE));

	/* the file now holds the new, unspent refresh token, with owner and mode kept */
	assert_int_equal(refresh_state(&fresh), n + 1);
	assert_int_equal(fresh, 1);
	assert_non_null(now = read_path(fx.rt_file));
	assert_string_not_equal(now, seeded);
	assert_int_equal(now[strlen(now) - 1], '\n');
	assert_int_equal(lstat(fx.rt_file, &after), 0);
	assert_true(before.st_ino != after.st_ino);	/* replaced by rename, not rewritten */
	assert_int_equal(after.st_mode & 07777, 0640);
	assert_int_equal(after.st_uid, before.st_uid);
	assert_int_equal(after.st_gid, before.st_gid);
	assert_no_temp_files(fx.secrets);
	o365_secret_free(&t1);

	/* a forced refresh spends the rotated token and rotates again */
	assert_int_equal(get(&c, 1, &t1, NULL, NULL, &err), O365_OK);
	assert_int_equal(refresh_state(&fresh), n + 2);
	assert_int_equal(fresh, 1);
	o365_secret_free(&t1);
}

static void
expired_refresh_token_is_auth_and_file_untouched(void **state)
{
	struct o365_tokstore_cfg c = cfg_rt();
	struct o365_oauth_error oerr;
	struct o365_secret *t1;
	struct o365_error err;
	struct stat before, after;
	char saved[8192], *now;

	(void)state;
	/* a token the endpoint does not know: AADSTS700082 */
	write_path(fx.rt_file, "0.AXoA-expired-refresh-token-marker\n", 0600);
	assert_true(snprintf(saved, sizeof(saved), "%s", read_path(fx.rt_file)) < (int)sizeof(saved));
	assert_int_equal(lstat(fx.rt_file, &before), 0);
	assert_int_equal(get(&c, 0, &t1, NULL, &oerr, &err), O365_E_AUTH);
	assert_null(t1);
	assert_int_equal(err.code, O365_E_AUTH);
	assert_string_equal(oerr.error, "invalid_grant");
	assert_int_equal(oerr.aadsts, 700082);
	assert_int_equal(oerr.http_status, 400);
	assert_non_null(now = read_path(fx.rt_file));
	assert_string_equal(now, saved);
	assert_int_equal(lstat(fx.rt_file, &after), 0);
	assert_true(before.st_ino == after.st_ino);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
}

static void
invalid_client_is_auth(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_oauth_error oerr;
	struct o365_secret *t1;
	struct o365_error err;

	(void)state;
	write_path(fx.secret_file, "not-the-secret\n", 0600);
	assert_int_equal(get(&c, 0, &t1, NULL, &oerr, &err), O365_E_AUTH);
	assert_null(t1);
	assert_string_equal(oerr.error, "invalid_client");
	assert_int_equal(oerr.aadsts, 7000215);
	assert_int_equal(oerr.http_status, 401);
	write_path(fx.secret_file, CLIENT_SECRET "\n", 0600);

	/* a secret file others can read is refused before anything is sent */
	assert_int_equal(chmod(fx.secret_file, 0604), 0);
	assert_int_equal(get(&c, 0, &t1, NULL, &oerr, &err), O365_E_CONFIG);
	assert_int_equal(chmod(fx.secret_file, 0600), 0);
}

static void
throttling_and_service_errors_are_temp(void **state)
{
	static const char *modes[] = { "429", "500", "503" };
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_tokstore_cfg r = cfg_rt();
	struct o365_oauth_error oerr;
	struct o365_secret *t1;
	struct o365_error err;
	char saved[8192], *now;
	size_t i;

	(void)state;
	seed_refresh_token(0600);
	assert_true(snprintf(saved, sizeof(saved), "%s", read_path(fx.rt_file)) < (int)sizeof(saved));
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		set_conf(modes[i], 3599);
		assert_int_equal(get(&c, 0, &t1, NULL, &oerr, &err), O365_E_TEMP);
		assert_null(t1);
		assert_int_equal(oerr.http_status, strtol(modes[i], NULL, 10));
		assert_int_equal(get(&r, 0, &t1, NULL, &oerr, &err), O365_E_TEMP);
		assert_non_null(now = read_path(fx.rt_file));
		assert_string_equal(now, saved);
	}
	assert_int_equal(oerr.retry_after, 0);
	set_conf("429", 3599);
	assert_int_equal(get(&c, 0, &t1, NULL, &oerr, &err), O365_E_TEMP);
	assert_int_equal(oerr.retry_after, 7);
}

/*
 * Child of the race: `rounds` forced refreshes (each spends and rotates the
 * refresh token), every access token written to fd.  Exit 0 if all worked.
 */
static void
racer(int fd, int rounds, int force)
{
	struct o365_tokstore_cfg c = cfg_rt();
	struct o365_secret *t;
	struct o365_error err;
	struct o365_deadline dl;
	int i;

	for (i = 0; i < rounds; i++) {
		o365_deadline_in(&dl, DEADLINE_MS);
		if (o365_tokstore_get(&c, force, &dl, NULL, &t, NULL, NULL, &err) != O365_OK) {
			fprintf(stderr, "racer %d: %s\n", (int)getpid(), err.why);
			_exit(1);
		}
		if (write(fd, t->data, t->len) != (ssize_t)t->len || write(fd, "\n", 1) != 1)
			_exit(2);
		o365_secret_free(&t);
	}
	_exit(0);
}

static void
race(int rounds, int force, int *tokens_out)
{
	enum { NPROC = 3 };
	int fds[NPROC][2], status, i, n = 0;
	pid_t pids[NPROC];
	FILE *f;
	char *line;

	line = malloc(O365_MAX_TOKEN + 2);
	assert_non_null(line);
	for (i = 0; i < NPROC; i++) {
		assert_int_equal(pipe(fds[i]), 0);
		assert_true((pids[i] = fork()) >= 0);
		if (pids[i] == 0) {
			close(fds[i][0]);
			racer(fds[i][1], rounds, force);
		}
		close(fds[i][1]);
	}
	for (i = 0; i < NPROC; i++) {
		assert_non_null(f = fdopen(fds[i][0], "r"));
		while (fgets(line, O365_MAX_TOKEN + 2, f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			assert_true(token_was_issued_to(line, ALICE));
			n++;
		}
		fclose(f);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	free(line);
	assert_int_equal(n, NPROC * rounds);
	*tokens_out = n;
}

static void
concurrent_runners_never_lose_a_rotation(void **state)
{
	int n0, r0, got, fresh;

	(void)state;
	seed_refresh_token(0600);
	/* forced: every call refreshes, so every call spends the current token */
	assert_true((r0 = refresh_state(&fresh)) > 0);
	n0 = request_count();
	race(4, 1, &got);
	assert_int_equal(request_count(), n0 + got);
	/* one rotation per call, and the file ends with the last, unspent one */
	assert_int_equal(refresh_state(&fresh), r0 + got);
	assert_int_equal(fresh, 1);

	/* not forced: one refresh, the others read the cache after the lock */
	drop_cache();
	n0 = request_count();
	race(3, 0, &got);
	assert_int_equal(request_count(), n0 + 1);
	assert_int_equal(refresh_state(&fresh), r0 + 12 + 1);
	assert_int_equal(fresh, 1);
	assert_no_temp_files(fx.secrets);
	assert_no_temp_files(fx.cache);
}

static int
login(struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_tokstore_cfg c = cfg_rt();
	struct o365_deadline dl;

	o365_deadline_in(&dl, DEADLINE_MS);
	return o365_tokstore_device_login(&c, show_hook, NULL, &dl, &fx.lg, oerr, err);
}

static void
device_login_pending_slow_down_ok(void **state)
{
	struct o365_tokstore_cfg c = cfg_rt();
	struct o365_oauth_error oerr;
	struct o365_secret *t1;
	struct o365_error err;
	struct stat st;
	int n0, n, fresh;

	(void)state;
	(void)unlink(fx.rt_file);
	set_device("{\"user\": \"alice@contoso.com\", \"states\": "
	    "[\"authorization_pending\", \"slow_down\", \"authorization_pending\", \"ok\"]}");
	n0 = request_count();
	n = refresh_state(&fresh);
	assert_int_equal(login(&oerr, &err), O365_OK);
	assert_int_equal(fx.shown, 1);
	assert_int_equal(strlen(fx.user_code), 9);
	assert_int_equal(request_count(), n0 + 5);	/* devicecode + 4 polls */
	/* interval 1, then 1 + 5 for good after slow_down (RFC 8628 3.5) */
	assert_int_equal(fx.nsleeps, 4);
	assert_int_equal(fx.sleeps[0], 1);
	assert_int_equal(fx.sleeps[1], 1);
	assert_int_equal(fx.sleeps[2], 6);
	assert_int_equal(fx.sleeps[3], 6);
	/* the front end heard every answer that kept it waiting: the state, the
	 * next interval and what is left of the fake's 900 s */
	assert_string_equal(fx.polls, "authorization_pending/1/899 slow_down/6/898 "
	    "authorization_pending/6/892 ");
	/* the refresh token was created 0600 and holds the issued token */
	assert_int_equal(lstat(fx.rt_file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(refresh_state(&fresh), n + 1);
	assert_int_equal(fresh, 1);
	/* and it works */
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	assert_true(token_was_issued_to(t1->data, ALICE));
	o365_secret_free(&t1);
}

static void
device_login_declined_and_expired(void **state)
{
	static const char *states[] = { "authorization_declined", "expired_token" };
	struct o365_oauth_error oerr;
	struct o365_error err;
	char script[256];
	struct stat st;
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		(void)unlink(fx.rt_file);
		fx.nsleeps = 0;
		fx.polls[0] = '\0';
		snprintf(script, sizeof(script), "[\"authorization_pending\", \"%s\"]", states[i]);
		set_device(script);
		assert_int_equal(login(&oerr, &err), O365_E_AUTH);
		assert_string_equal(oerr.error, states[i]);
		assert_int_equal(fx.nsleeps, 2);
		/* the final answer is the caller's to tell, not a "still waiting" */
		assert_string_equal(fx.polls, "authorization_pending/1/899 ");
		assert_int_equal(lstat(fx.rt_file, &st), -1);	/* nothing stored */
		assert_int_equal(errno, ENOENT);
	}
}

static void
device_login_stops_when_the_code_expires(void **state)
{
	struct o365_oauth_error oerr;
	struct o365_error err;
	char script[4096];
	size_t i, off;
	unsigned int sum = 0;
	int n0;

	(void)state;
	(void)unlink(fx.rt_file);
	off = (size_t)snprintf(script, sizeof(script), "[");
	for (i = 0; i < 40; i++)
		off += (size_t)snprintf(script + off, sizeof(script) - off, "%s\"slow_down\"",
		    i ? ", " : "");
	snprintf(script + off, sizeof(script) - off, "]");
	set_device(script);
	n0 = request_count();
	/* the fake's code lives 900 s: intervals 1, 6, 11, ... stop before 900 */
	assert_int_equal(login(&oerr, &err), O365_E_TIMEOUT);
	for (i = 0; i < fx.nsleeps; i++) {
		assert_int_equal(fx.sleeps[i], 1 + 5 * i);
		sum += fx.sleeps[i];
	}
	assert_true(sum <= 900);
	assert_true(sum + fx.sleeps[fx.nsleeps - 1] + 5 > 900);
	assert_int_equal(request_count(), n0 + 1 + (int)fx.nsleeps);
	assert_int_equal(access(fx.rt_file, F_OK), -1);
}

static void
status_shows_identity_and_expiry_never_token(void **state)
{
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_tokstore_status st;
	struct o365_secret *t1;
	struct o365_error err;
	time_t e1;

	(void)state;
	assert_int_equal(o365_tokstore_status(&c, &st, &err), O365_OK);
	assert_int_equal(st.cached, 0);
	assert_int_equal(st.expires_at, 0);
	assert_int_equal(get(&c, 0, &t1, &e1, NULL, &err), O365_OK);
	assert_int_equal(o365_tokstore_status(&c, &st, &err), O365_OK);
	assert_string_equal(st.identity, RELAY);
	assert_string_equal(st.tenant, "contoso.onmicrosoft.com");
	assert_string_equal(st.client_id, CLIENT_CONF);
	assert_string_equal(st.grant, "client_credentials");
	assert_string_equal(st.scope, "https://outlook.office365.com/.default");
	assert_int_equal(st.cached, 1);
	assert_int_equal(st.expires_at, e1);
	assert_int_equal(st.secret_ok, 1);
	assert_null(memmem(&st, sizeof(st), t1->data, 64));
	o365_secret_free(&t1);

	c = cfg_rt();
	(void)unlink(fx.rt_file);
	assert_int_equal(o365_tokstore_status(&c, &st, &err), O365_OK);
	assert_string_equal(st.grant, "refresh_token");
	assert_string_equal(st.scope, "https://outlook.office.com/SMTP.Send offline_access");
	assert_int_equal(st.cached, 0);		/* the other config's token is not ours */
	assert_int_equal(st.secret_ok, 0);
	assert_non_null(strstr(st.secret_why, "refresh-token"));

	c.refresh_token_file = NULL;
	assert_int_equal(o365_tokstore_status(&c, &st, &err), O365_E_CONFIG);
}

/* root sets things up for an unprivileged runner: every file ends up the runner's */
static void
root_acting_for_runner_leaves_runner_files(void **state)
{
	const uid_t runner = 65534;
	struct o365_tokstore_cfg c = cfg_cc();
	struct o365_oauth_error oerr;
	struct o365_deadline dl;
	struct o365_secret *t1;
	struct o365_error err;
	char dir[400], sdir[400], sfile[440], rtfile[440], path[460];
	static const char *const names[] = { "token.lock", "access-token" };
	struct stat st;
	size_t i;

	(void)state;
	if (geteuid() != 0)
		skip();
	o365_test_path_join(dir, sizeof(dir), fx.dir, "runner-cache");
	o365_test_path_join(sdir, sizeof(sdir), fx.dir, "runner-secrets");
	o365_test_path_join(sfile, sizeof(sfile), sdir, "client-secret");
	o365_test_path_join(rtfile, sizeof(rtfile), sdir, "refresh-token");
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(sdir, 0700), 0);
	assert_int_equal(chown(dir, runner, 0), 0);
	assert_int_equal(chown(sdir, runner, 0), 0);
	write_path(sfile, CLIENT_SECRET "\n", 0600);
	assert_int_equal(chown(sfile, runner, 0), 0);
	c.cache_dir = dir;
	c.client_secret_file = sfile;
	c.owner_uid = runner;
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	o365_secret_free(&t1);
	for (i = 0; i < 2; i++) {
		o365_test_path_join(path, sizeof(path), dir, names[i]);
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(st.st_uid, runner);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* the cache it wrote is read back for the runner */
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	o365_secret_free(&t1);

	c = cfg_rt();
	c.cache_dir = dir;
	c.refresh_token_file = rtfile;
	c.owner_uid = runner;
	set_device("[]");
	o365_deadline_in(&dl, DEADLINE_MS);
	assert_int_equal(o365_tokstore_device_login(&c, show_hook, NULL, &dl, &fx.lg, &oerr, &err),
	    O365_OK);
	assert_int_equal(lstat(rtfile, &st), 0);
	assert_int_equal(st.st_uid, runner);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(get(&c, 0, &t1, NULL, NULL, &err), O365_OK);
	o365_secret_free(&t1);
}

/* Last: every line logged by every test above, debug included. */
static void
logs_never_hold_a_secret(void **state)
{
	struct json_object *root;
	size_t n = 0;

	(void)state;
	assert_true(fx.cap.len > 0);
	assert_non_null(strstr(fx.cap.text, "tokstore: identity="));
	assert_null(strstr(fx.cap.text, CLIENT_SECRET));
	assert_null(strstr(fx.cap.text, ALICE_PW));
	assert_null(strstr(fx.cap.text, "expired-refresh-token-marker"));
	assert_non_null(root = state_json("tokens.json"));
	json_object_object_foreach(root, at, v1) {
		(void)v1;
		assert_null(strstr(fx.cap.text, at + 40));	/* past the fixed JWT header */
		n++;
	}
	json_object_put(root);
	assert_non_null(root = state_json("refresh.json"));
	json_object_object_foreach(root, rt, v2) {
		(void)v2;
		assert_null(strstr(fx.cap.text, rt + 8));
		n++;
	}
	json_object_put(root);
	assert_true(n > 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(client_credentials_ok_then_cached, reset),
		cmocka_unit_test_setup(config_change_invalidates_cache, reset),
		cmocka_unit_test_setup(token_within_margin_is_refreshed, reset),
		cmocka_unit_test_setup(force_refresh_skips_cache_once, reset),
		cmocka_unit_test_setup(unsafe_cache_file_is_not_used_and_replaced, reset),
		cmocka_unit_test_setup(lock_held_elsewhere_times_out, reset),
		cmocka_unit_test_setup(malformed_cache_is_replaced, reset),
		cmocka_unit_test_setup(refresh_rotation_written_atomically, reset),
		cmocka_unit_test_setup(expired_refresh_token_is_auth_and_file_untouched, reset),
		cmocka_unit_test_setup(invalid_client_is_auth, reset),
		cmocka_unit_test_setup(throttling_and_service_errors_are_temp, reset),
		cmocka_unit_test_setup(concurrent_runners_never_lose_a_rotation, reset),
		cmocka_unit_test_setup(device_login_pending_slow_down_ok, reset),
		cmocka_unit_test_setup(device_login_declined_and_expired, reset),
		cmocka_unit_test_setup(device_login_stops_when_the_code_expires, reset),
		cmocka_unit_test_setup(status_shows_identity_and_expiry_never_token, reset),
		cmocka_unit_test_setup(root_acting_for_runner_leaves_runner_files, reset),
		cmocka_unit_test(logs_never_hold_a_secret),
	};

	return cmocka_run_group_tests_name("tokstore", tests, setup, teardown);
}
