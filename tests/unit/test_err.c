/* test_err.c: error names, o365_error_set and o365_sanitize at its boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "o365/err.h"

static void
sanitize_is(size_t dstsz, const char *src, size_t srclen, const char *want)
{
	char dst[64];
	size_t n;

	assert_true(dstsz <= sizeof(dst));
	memset(dst, 'Z', sizeof(dst));
	n = o365_sanitize(dst, dstsz, src, srclen);
	if (strcmp(dst, want) != 0)
		fail_msg("dstsz %zu: got \"%s\", want \"%s\"", dstsz, dst, want);
	assert_int_equal(n, strlen(want));
	assert_true(n < dstsz);
	/* nothing written past dstsz */
	if (dstsz < sizeof(dst))
		assert_int_equal(dst[dstsz], 'Z');
}

static void
sanitize_escapes_non_printables(void **state)
{
	(void)state;
	sanitize_is(64, "plain text ~!", 13, "plain text ~!");
	sanitize_is(64, "a\r\nb", 4, "a\\x0d\\x0ab");
	sanitize_is(64, "\x00\x1f\x7f\x80\xff", 5, "\\x00\\x1f\\x7f\\x80\\xff");
	sanitize_is(64, "tab\there", 8, "tab\\x09here");
	sanitize_is(64, "", 0, "");
	sanitize_is(64, NULL, 0, "");
	/* srclen rules, not the NUL */
	sanitize_is(64, "abc\0def", 7, "abc\\x00def");
	sanitize_is(64, "abcdef", 3, "abc");
}

static void
sanitize_fits_exactly_without_a_cut(void **state)
{
	(void)state;
	/* dstsz - 1 bytes of output: everything fits, no "..." */
	sanitize_is(5, "abcd", 4, "abcd");
	sanitize_is(2, "a", 1, "a");
	sanitize_is(5, "\x01", 1, "\\x01");
	sanitize_is(9, "ab\x01" "cd", 5, "ab\\x01cd");
	sanitize_is(1, "", 0, "");
}

static void
sanitize_marks_a_cut(void **state)
{
	(void)state;
	/* one byte more than fits: cut with "..." inside dstsz - 1 */
	sanitize_is(5, "abcde", 5, "a...");
	sanitize_is(8, "abcdefgh", 8, "abcd...");
	sanitize_is(4, "abcd", 4, "...");
	/* an escape is never split */
	sanitize_is(8, "ab\x01" "cdef", 7, "ab...");
	sanitize_is(10, "ab\x01" "cdef", 7, "ab\\x01...");
	sanitize_is(5, "a\x01", 2, "a...");
	/* too small for the marker: plain cut */
	sanitize_is(3, "abcd", 4, "ab");
	sanitize_is(2, "abcd", 4, "a");
	sanitize_is(1, "abcd", 4, "");
}

static void
sanitize_zero_size_writes_nothing(void **state)
{
	char c = 'Z';

	(void)state;
	assert_int_equal(o365_sanitize(&c, 0, "abc", 3), 0);
	assert_int_equal(c, 'Z');
}

static void
error_set_fills_and_returns_code(void **state)
{
	struct o365_error err;

	(void)state;
	o365_error_clear(&err);
	assert_int_equal(err.code, O365_OK);
	assert_string_equal(err.why, "");
	assert_int_equal(o365_error_set(&err, O365_E_NET, "connect %s:%d: %s", "h", 993, "refused"),
	    O365_E_NET);
	assert_int_equal(err.code, O365_E_NET);
	assert_string_equal(err.why, "connect h:993: refused");
	/* untrusted text is escaped on the way in */
	assert_int_equal(o365_error_set(&err, O365_E_PROTO, "server said %s", "NO\r\n* BYE"),
	    O365_E_PROTO);
	assert_string_equal(err.why, "server said NO\\x0d\\x0a* BYE");
	/* the previous message may be an argument */
	(void)o365_error_set(&err, O365_E_TLS, "tls: %s", "bad cert");
	(void)o365_error_set(&err, O365_E_TLS, "imap: %s", err.why);
	assert_string_equal(err.why, "imap: tls: bad cert");
}

static void
error_set_is_null_safe(void **state)
{
	(void)state;
	assert_int_equal(o365_error_set(NULL, O365_E_TIMEOUT, "x %d", 1), O365_E_TIMEOUT);
	o365_error_clear(NULL);
}

static void
error_set_truncates(void **state)
{
	struct o365_error err;
	char big[1000];
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	(void)o365_error_set(&err, O365_E_PERM, "%s", big);
	n = strlen(err.why);
	assert_int_equal(n, sizeof(err.why) - 1);
	assert_string_equal(err.why + n - 3, "...");
	/* exactly sizeof(why) - 1 bytes: kept whole */
	big[sizeof(err.why) - 1] = '\0';
	(void)o365_error_set(&err, O365_E_PERM, "%s", big);
	assert_string_equal(err.why, big);
	/* one byte more: cut and marked */
	big[sizeof(err.why) - 1] = 'y';
	big[sizeof(err.why)] = '\0';
	(void)o365_error_set(&err, O365_E_PERM, "%s", big);
	assert_int_equal(strlen(err.why), sizeof(err.why) - 1);
	assert_string_equal(err.why + sizeof(err.why) - 4, "...");
}

static void
err_names_are_stable(void **state)
{
	static const struct { int code; const char *name; } v[] = {
		{ O365_OK, "ok" }, { O365_E_NOMEM, "nomem" }, { O365_E_INVAL, "invalid" },
		{ O365_E_CONFIG, "config" }, { O365_E_NET, "network" }, { O365_E_TIMEOUT, "timeout" },
		{ O365_E_TLS, "tls" }, { O365_E_PROTO, "protocol" }, { O365_E_TOOLONG, "toolong" },
		{ O365_E_AUTH, "auth" }, { O365_E_TEMP, "temporary" }, { O365_E_PERM, "permanent" },
		{ O365_E_IO, "io" }, { -99, "unknown" }, { 1, "unknown" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_string_equal(o365_err_name(v[i].code), v[i].name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sanitize_escapes_non_printables),
		cmocka_unit_test(sanitize_fits_exactly_without_a_cut),
		cmocka_unit_test(sanitize_marks_a_cut),
		cmocka_unit_test(sanitize_zero_size_writes_nothing),
		cmocka_unit_test(error_set_fills_and_returns_code),
		cmocka_unit_test(error_set_is_null_safe),
		cmocka_unit_test(error_set_truncates),
		cmocka_unit_test(err_names_are_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
