/* test_secret.c: secret buffers, the credential rule and secret files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "o365/limits.h"
#include "o365/secret.h"
#include "spawn.h"

struct fixture {
	char	dir[512];
	char	path[600];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || o365_test_tmpdir(f->dir, sizeof(f->dir)) != 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/secret", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	(void)unlink(f->path);
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* Write n bytes to path with exactly the given mode. */
static void
put(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd;

	(void)unlink(path);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void
reads_back(const char *path, const char *want, size_t wantlen)
{
	struct o365_secret *s = NULL;
	struct o365_error err;

	assert_int_equal(o365_secret_read_file(path, geteuid(), &s, &err), O365_OK);
	assert_non_null(s);
	assert_int_equal(s->len, wantlen);
	assert_memory_equal(s->data, want, wantlen);
	assert_int_equal(s->data[s->len], '\0');
	o365_secret_free(&s);
	assert_null(s);
}

static void
refused(const char *path, uid_t owner, int code, const char *why)
{
	struct o365_secret *s = (struct o365_secret *)&s;
	struct o365_error err;

	o365_error_clear(&err);
	assert_int_equal(o365_secret_read_file(path, owner, &s, &err), code);
	assert_null(s);
	assert_int_equal(err.code, code);
	if (strstr(err.why, why) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", err.why, why);
	assert_non_null(strstr(err.why, path));
}

static void
file_is_read_and_one_newline_stripped(void **state)
{
	struct fixture *f = *state;

	put(f->path, "hunter2", 7, 0600);
	reads_back(f->path, "hunter2", 7);
	put(f->path, "hunter2\n", 8, 0600);
	reads_back(f->path, "hunter2", 7);
	put(f->path, "hunter2\r\n", 9, 0640);	/* group-readable is fine */
	reads_back(f->path, "hunter2", 7);
	/* only one: a second LF stays (and the credential check refuses it) */
	put(f->path, "hunter2\n\n", 9, 0400);
	reads_back(f->path, "hunter2\n", 8);
	/* a lone CR is not a line end */
	put(f->path, "hunter2\r", 8, 0600);
	reads_back(f->path, "hunter2\r", 8);
	/* spaces are part of a password */
	put(f->path, " pass word \n", 12, 0600);
	reads_back(f->path, " pass word ", 11);
}

static void
symlink_is_refused(void **state)
{
	struct fixture *f = *state;
	char link[700];

	put(f->path, "pw\n", 3, 0600);
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	refused(link, geteuid(), O365_E_CONFIG, "symbolic link");
	assert_int_equal(unlink(link), 0);
}

static void
non_regular_files_are_refused(void **state)
{
	struct fixture *f = *state;

	refused(f->dir, geteuid(), O365_E_CONFIG, "not a regular file");
	/* a FIFO with no writer must not block the caller */
	(void)unlink(f->path);
	assert_int_equal(mkfifo(f->path, 0600), 0);
	refused(f->path, geteuid(), O365_E_CONFIG, "not a regular file");
	assert_int_equal(unlink(f->path), 0);
	refused(f->path, geteuid(), O365_E_IO, "No such file");
}

static void
wrong_owner_is_refused(void **state)
{
	struct fixture *f = *state;

	put(f->path, "pw", 2, 0600);
	refused(f->path, geteuid() + 1, O365_E_CONFIG, "is owned by uid");
	if (geteuid() == 0) {
		/* as root: the file really belongs to someone else */
		assert_int_equal(chown(f->path, 65534, 65534), 0);
		refused(f->path, 0, O365_E_CONFIG, "is owned by uid 65534, not 0");
	}
}

static void
others_access_is_refused(void **state)
{
	static const mode_t bad[] = { 0604, 0602, 0601, 0644, 0666, 0777 };
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(f->path, "pw", 2, bad[i]);
		refused(f->path, geteuid(), O365_E_CONFIG, "accessible by others");
	}
}

static void
size_is_capped(void **state)
{
	struct fixture *f = *state;
	char *big;

	assert_non_null(big = malloc(O365_MAX_SECRET_FILE + 2));
	memset(big, 'k', O365_MAX_SECRET_FILE + 2);
	put(f->path, big, O365_MAX_SECRET_FILE, 0600);
	reads_back(f->path, big, O365_MAX_SECRET_FILE);
	put(f->path, big, O365_MAX_SECRET_FILE + 1, 0600);
	refused(f->path, geteuid(), O365_E_CONFIG, "larger than 16384 bytes");
	free(big);
}

static void
empty_and_nul_are_refused(void **state)
{
	struct fixture *f = *state;

	put(f->path, "", 0, 0600);
	refused(f->path, geteuid(), O365_E_CONFIG, "is empty");
	put(f->path, "\n", 1, 0600);
	refused(f->path, geteuid(), O365_E_CONFIG, "is empty");
	put(f->path, "\r\n", 2, 0600);
	refused(f->path, geteuid(), O365_E_CONFIG, "is empty");
	put(f->path, "pw\0rest\n", 8, 0600);
	refused(f->path, geteuid(), O365_E_CONFIG, "NUL");
}

static void
error_never_quotes_the_secret(void **state)
{
	struct fixture *f = *state;
	struct o365_secret *s = NULL;
	struct o365_error err;

	put(f->path, "Marker-Secret-42\n", 17, 0644);
	assert_int_equal(o365_secret_read_file(f->path, geteuid(), &s, &err), O365_E_CONFIG);
	assert_null(strstr(err.why, "Marker"));
}

static void
credential_rule_at_its_limits(void **state)
{
	static const struct { const char *p; size_t n; const char *why; } bad[] = {
		{ "", 0, "empty password" },
		{ NULL, 0, "empty password" },
		{ "a\rb", 3, "password with CR or LF" },
		{ "a\nb", 3, "password with CR or LF" },
		{ "ab\r", 3, "password with CR or LF" },
		{ "a\0b", 3, "password with a NUL byte" },
	};
	struct o365_error err;
	char *p;
	size_t i;

	(void)state;
	assert_non_null(p = malloc(O365_MAX_CREDENTIAL + 1));
	memset(p, 'c', O365_MAX_CREDENTIAL + 1);
	assert_int_equal(o365_credential_check(p, O365_MAX_CREDENTIAL, "password", &err), O365_OK);
	assert_int_equal(o365_credential_check(p, O365_MAX_CREDENTIAL + 1, "password", &err),
	    O365_E_INVAL);
	assert_string_equal(err.why, "password longer than 1024 bytes refused");
	free(p);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o365_error_clear(&err);
		assert_int_equal(o365_credential_check(bad[i].p, bad[i].n, "password", &err),
		    O365_E_INVAL);
		assert_non_null(strstr(err.why, bad[i].why));
	}
	/* anything else, e.g. UTF-8, tabs and quotes, passes */
	assert_int_equal(o365_credential_check("p\xc3\xa4\t\"'\\", 7, "password", NULL), O365_OK);
	assert_int_equal(o365_credential_check("x", 1, "user name", NULL), O365_OK);
}

static void
secret_dup_copies_and_terminates(void **state)
{
	struct o365_secret *s = NULL;

	(void)state;
	assert_int_equal(o365_secret_dup("abc\0def", 7, &s), O365_OK);
	assert_int_equal(s->len, 7);
	assert_memory_equal(s->data, "abc\0def", 8);
	o365_secret_free(&s);
	assert_null(s);
	o365_secret_free(&s);		/* NULL-safe */
	o365_secret_free(NULL);
	assert_int_equal(o365_secret_dup(NULL, 0, &s), O365_OK);
	assert_int_equal(s->len, 0);
	assert_string_equal(s->data, "");
	o365_secret_free(&s);
	o365_cleanse(NULL, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(file_is_read_and_one_newline_stripped, setup, teardown),
		cmocka_unit_test_setup_teardown(symlink_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(non_regular_files_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(wrong_owner_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(others_access_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(size_is_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_and_nul_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(error_never_quotes_the_secret, setup, teardown),
		cmocka_unit_test(credential_rule_at_its_limits),
		cmocka_unit_test(secret_dup_copies_and_terminates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
