/* test_buf.c: bounded buffer and CRLF line splitting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "o365/buf.h"

static void
feed(struct o365_buf *b, const char *s)
{
	assert_int_equal(o365_buf_append(b, s, strlen(s)), O365_OK);
}

static void
getline_splits_crlf_lines(void **state)
{
	struct o365_buf b;
	char *line;
	size_t len;

	(void)state;
	o365_buf_init(&b, 64);
	feed(&b, "one\r\ntwo\r\nthr");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 1);
	assert_string_equal(line, "one");
	assert_int_equal(len, 3);
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 1);
	assert_string_equal(line, "two");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 0);
	feed(&b, "ee\r\n");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 1);
	assert_string_equal(line, "three");
	assert_int_equal(o365_buf_unread(&b), 0);
	o365_buf_free(&b);
}

/*
 * A buffer that never allocated (a fresh connection's first read) has
 * data == NULL: getline must say "need more" without forming NULL + 0,
 * which clang's UBSan (-DO365_SANITIZE=ON with CC=clang) reports.
 */
static void
getline_on_a_fresh_buffer(void **state)
{
	struct o365_buf b;
	char *line = NULL;
	size_t len = 7;

	(void)state;
	o365_buf_init(&b, 64);
	assert_null(b.data);
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 0);
	assert_null(line);
	assert_int_equal(len, 7);
	feed(&b, "ok\r\n");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 1);
	assert_string_equal(line, "ok");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), 0);	/* drained */
	o365_buf_free(&b);
}

static void
getline_refuses_one_byte_over_limit(void **state)
{
	struct o365_buf b;
	char *line;
	size_t len;

	(void)state;
	o365_buf_init(&b, 64);
	feed(&b, "0123456789abcde\r\n");		/* 15 bytes: at the limit */
	assert_int_equal(o365_buf_getline(&b, 15, &line, &len), 1);
	assert_int_equal(len, 15);
	feed(&b, "0123456789abcdef\r\n");		/* 16 bytes */
	assert_int_equal(o365_buf_getline(&b, 15, &line, &len), O365_E_TOOLONG);
	o365_buf_free(&b);
}

static void
getline_says_toolong_before_the_line_ends(void **state)
{
	struct o365_buf b;
	char *line;
	size_t len;

	(void)state;
	o365_buf_init(&b, 64);
	feed(&b, "0123456789abcdef");		/* no CRLF yet, already 16 > 15+... */
	assert_int_equal(o365_buf_getline(&b, 15, &line, &len), 0);
	feed(&b, "X");				/* 17 bytes: cannot be a line of <= 15 */
	assert_int_equal(o365_buf_getline(&b, 15, &line, &len), O365_E_TOOLONG);
	o365_buf_free(&b);
}

static void
getline_refuses_nul_and_bare_lf(void **state)
{
	struct o365_buf b;
	char *line;
	size_t len;

	(void)state;
	o365_buf_init(&b, 64);
	assert_int_equal(o365_buf_append(&b, "a\0b\r\n", 5), O365_OK);
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), O365_E_PROTO);
	o365_buf_free(&b);

	o365_buf_init(&b, 64);
	feed(&b, "abc\n");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), O365_E_PROTO);
	o365_buf_free(&b);

	o365_buf_init(&b, 64);
	feed(&b, "\n");
	assert_int_equal(o365_buf_getline(&b, 32, &line, &len), O365_E_PROTO);
	o365_buf_free(&b);
}

static void
append_stops_at_max(void **state)
{
	struct o365_buf b;
	char big[65];

	(void)state;
	memset(big, 'x', sizeof(big));
	o365_buf_init(&b, 64);
	assert_int_equal(o365_buf_append(&b, big, 64), O365_OK);
	assert_int_equal(o365_buf_append(&b, big, 1), O365_E_TOOLONG);
	assert_int_equal(b.len, 64);
	o365_buf_free(&b);

	o365_buf_init(&b, 64);
	assert_int_equal(o365_buf_append(&b, big, 65), O365_E_TOOLONG);
	assert_int_equal(b.len, 0);
	o365_buf_free(&b);
}

static void
consumed_space_is_reused(void **state)
{
	struct o365_buf b;
	char *line;
	size_t len;
	int i;

	(void)state;
	o365_buf_init(&b, 16);
	for (i = 0; i < 100; i++) {
		feed(&b, "0123456789\r\n");	/* 12 bytes each, max 16 */
		assert_int_equal(o365_buf_getline(&b, 14, &line, &len), 1);
		assert_string_equal(line, "0123456789");
	}
	o365_buf_free(&b);
}

static void
secret_buffer_frees_clean(void **state)
{
	struct o365_buf b;

	(void)state;
	o365_buf_init(&b, 4096);
	b.secret = 1;
	feed(&b, "hunter2");
	feed(&b, "more secret text to force a regrowth of the buffer .........................."
	    "................................................................................"
	    "................................................................................"
	    "................................................................................");
	assert_memory_equal(b.data, "hunter2more", 11);
	o365_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.data[0], 0);		/* cleansed, not just emptied */
	o365_buf_free(&b);
	assert_null(b.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(getline_splits_crlf_lines),
		cmocka_unit_test(getline_on_a_fresh_buffer),
		cmocka_unit_test(getline_refuses_one_byte_over_limit),
		cmocka_unit_test(getline_says_toolong_before_the_line_ends),
		cmocka_unit_test(getline_refuses_nul_and_bare_lf),
		cmocka_unit_test(append_stops_at_max),
		cmocka_unit_test(consumed_space_is_reused),
		cmocka_unit_test(secret_buffer_frees_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
