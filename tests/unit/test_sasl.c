/* test_sasl.c: strict base64, PLAIN and XOAUTH2 blobs, token rule, mech names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "o365/limits.h"
#include "o365/sasl.h"

static void
encode_is(const char *raw, size_t n, const char *want)
{
	struct o365_secret *s = NULL;

	assert_int_equal(o365_base64_encode(raw, n, &s), O365_OK);
	assert_non_null(s);
	assert_int_equal(s->len, strlen(want));
	assert_string_equal(s->data, want);
	o365_secret_free(&s);
	assert_null(s);
}

static void
decode_is(const char *b64, const char *want)
{
	struct o365_secret *s = NULL;

	assert_int_equal(o365_base64_decode(b64, strlen(b64), &s), O365_OK);
	assert_non_null(s);
	assert_int_equal(s->len, strlen(want));
	assert_memory_equal(s->data, want, s->len);
	assert_int_equal(s->data[s->len], '\0');
	o365_secret_free(&s);
}

/* RFC 4648 section 10 */
static void
base64_rfc4648_vectors(void **state)
{
	static const char *const v[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		encode_is(v[i][0], strlen(v[i][0]), v[i][1]);
		decode_is(v[i][1], v[i][0]);
	}
}

static void
base64_round_trips_every_byte_value(void **state)
{
	static const char want[] =
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
	    "PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3"
	    "eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKz"
	    "tLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v"
	    "8PHy8/T19vf4+fr7/P3+/w==";
	struct o365_secret *e = NULL, *d = NULL;
	unsigned char all[256];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	encode_is((const char *)all, sizeof(all), want);
	/* every length 0..256 round-trips (each padding case, NUL bytes inside) */
	for (n = 0; n <= sizeof(all); n++) {
		assert_int_equal(o365_base64_encode(all + (256 - n), n, &e), O365_OK);
		assert_int_equal(o365_base64_decode(e->data, e->len, &d), O365_OK);
		assert_int_equal(d->len, n);
		assert_memory_equal(d->data, all + (256 - n), n);
		o365_secret_free(&e);
		o365_secret_free(&d);
	}
}

static void
base64_decode_refuses_malformed_input(void **state)
{
	static const char *const bad[] = {
		"Z", "Zg", "Zg=", "Zm9vY", "Zm9vYg=",	/* length not a multiple of 4 */
		"Zg==Zg==", "Z===", "====", "=Zg=", "Zm=v",	/* '=' out of place */
		"Zm9v\n", " Zm9v", "Zm 9", "Zm9v\r\n  ",	/* whitespace */
		"Zm-v", "Zm_v", "Zm9.", "Zm\x80v", "Zm9*",	/* outside the alphabet */
		"Zh==", "Zm9=",				/* unused bits not zero */
	};
	struct o365_secret *s = (struct o365_secret *)&s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (o365_base64_decode(bad[i], strlen(bad[i]), &s) != O365_E_PROTO)
			fail_msg("\"%s\" was not refused", bad[i]);
		assert_null(s);
	}
	/* a NUL inside the given length is not part of the alphabet */
	assert_int_equal(o365_base64_decode("Zm\0v", 4, &s), O365_E_PROTO);
	/* only n bytes are read: the rest of the string does not matter */
	assert_int_equal(o365_base64_decode("Zm9v!!", 4, &s), O365_OK);
	assert_string_equal(s->data, "foo");
	o365_secret_free(&s);
}

static void
plain_blob_is_byte_exact(void **state)
{
	struct o365_secret *b = NULL, *raw = NULL;
	struct o365_error err;
	const char *pw = "p\xc3\xa4ss w0rd!";

	(void)state;
	assert_int_equal(o365_sasl_plain("alice@contoso.com", pw, strlen(pw), &b, &err), O365_OK);
	/* python3: base64.b64encode(b'\0alice@contoso.com\0p\xc3\xa4ss w0rd!') */
	assert_string_equal(b->data, "AGFsaWNlQGNvbnRvc28uY29tAHDDpHNzIHcwcmQh");
	assert_int_equal(o365_base64_decode(b->data, b->len, &raw), O365_OK);
	assert_int_equal(raw->len, 1 + 17 + 1 + strlen(pw));
	assert_memory_equal(raw->data, "\0alice@contoso.com\0p\xc3\xa4ss w0rd!", raw->len);
	o365_secret_free(&raw);
	o365_secret_free(&b);
	/* passlen counts, not strlen: a prefix of a longer buffer */
	assert_int_equal(o365_sasl_plain("u", "pwXXX", 2, &b, &err), O365_OK);
	assert_string_equal(b->data, "AHUAcHc=");	/* "\0u\0pw" */
	o365_secret_free(&b);
}

static void
xoauth2_blob_is_byte_exact(void **state)
{
	static const char tok[] = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
	struct o365_secret *b = NULL;
	struct o365_error err;

	(void)state;
	assert_int_equal(o365_sasl_xoauth2("someuser@example.com", tok, strlen(tok), &b, &err),
	    O365_OK);
	/* Google's documented example, checked with python3 base64 */
	assert_string_equal(b->data,
	    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhk"
	    "SFJoZG1semRHRXVZMjl0Q2cBAQ==");
	o365_secret_free(&b);
}

/* A user name and password or token that an encoder must refuse, and why. */
struct bad_input {
	const char	*user, *pass;
	size_t		 passlen;
	const char	*why;
};

/* encode (o365_sasl_plain or _xoauth2) refuses every case with its reason. */
static void
refuses_all(int (*encode)(const char *, const char *, size_t, struct o365_secret **,
    struct o365_error *), const struct bad_input *bad, size_t n)
{
	struct o365_secret *b;
	struct o365_error err;
	size_t i;

	for (i = 0; i < n; i++) {
		b = (struct o365_secret *)&b;
		o365_error_clear(&err);
		assert_int_equal(encode(bad[i].user, bad[i].pass, bad[i].passlen, &b, &err),
		    O365_E_INVAL);
		assert_null(b);
		assert_int_equal(err.code, O365_E_INVAL);
		if (strstr(err.why, bad[i].why) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.why, bad[i].why);
	}
}

static void
plain_refuses_bad_credentials(void **state)
{
	static const struct bad_input bad[] = {
		{ "", "pw", 2, "empty user name" },
		{ NULL, "pw", 2, "empty user name" },
		{ "u", "", 0, "empty password" },
		{ "u", NULL, 0, "empty password" },
		{ "a\rb", "pw", 2, "user name with CR or LF" },
		{ "a\nb", "pw", 2, "user name with CR or LF" },
		{ "u", "p\rw", 3, "password with CR or LF" },
		{ "u", "p\nw", 3, "password with CR or LF" },
		{ "u", "p\0w", 3, "password with a NUL" },
	};

	(void)state;
	refuses_all(o365_sasl_plain, bad, sizeof(bad) / sizeof(bad[0]));
}

static void
plain_limits_at_max_credential(void **state)
{
	struct o365_secret *b = NULL;
	struct o365_error err;
	char *pw;

	(void)state;
	assert_non_null(pw = malloc(O365_MAX_CREDENTIAL + 1));
	memset(pw, 'x', O365_MAX_CREDENTIAL + 1);
	assert_int_equal(o365_sasl_plain("u", pw, O365_MAX_CREDENTIAL, &b, &err), O365_OK);
	assert_int_equal(b->len, (3 + O365_MAX_CREDENTIAL + 2) / 3 * 4);
	o365_secret_free(&b);
	assert_int_equal(o365_sasl_plain("u", pw, O365_MAX_CREDENTIAL + 1, &b, &err), O365_E_INVAL);
	assert_null(b);
	free(pw);
}

static void
xoauth2_refuses_bad_user_and_token(void **state)
{
	static const struct bad_input bad[] = {
		{ "", "t", 1, "empty user name" },
		{ "a\r\nb", "t", 1, "user name with CR or LF" },
		{ "a\001b", "t", 1, "user name with a control character" },
		{ "a\tb", "t", 1, "user name with a control character" },
		{ "u", "", 0, "empty access token" },
		{ "u", NULL, 0, "empty access token" },
		{ "u", "ab\r\n", 4, "access token with a byte other than visible ASCII" },
		{ "u", "a\0b", 3, "access token with a byte" },
		{ "u", "a b", 3, "access token with a byte" },
		{ "u", "a\001b", 3, "access token with a byte" },
		{ "u", "a\x80", 2, "access token with a byte" },
		{ "u", "a\x7f", 2, "access token with a byte" },
	};

	(void)state;
	refuses_all(o365_sasl_xoauth2, bad, sizeof(bad) / sizeof(bad[0]));
}

static void
token_check_limits(void **state)
{
	struct o365_secret *b = NULL, *raw = NULL;
	struct o365_error err;
	char *tok;

	(void)state;
	assert_non_null(tok = malloc(O365_MAX_TOKEN + 1));
	memset(tok, 'A', O365_MAX_TOKEN + 1);
	assert_int_equal(o365_sasl_token_check(tok, O365_MAX_TOKEN, "token", &err), O365_OK);
	assert_int_equal(o365_sasl_token_check(tok, O365_MAX_TOKEN + 1, "token", &err),
	    O365_E_INVAL);
	assert_non_null(strstr(err.why, "token longer than 16384 bytes"));
	/* a token far longer than a password still makes a blob */
	assert_int_equal(o365_sasl_xoauth2("u@x", tok, O365_MAX_TOKEN, &b, &err), O365_OK);
	assert_int_equal(o365_base64_decode(b->data, b->len, &raw), O365_OK);
	assert_int_equal(raw->len, 5 + 3 + 13 + O365_MAX_TOKEN + 2);
	assert_memory_equal(raw->data, "user=u@x\001auth=Bearer AAA", 24);
	assert_memory_equal(raw->data + raw->len - 3, "A\001\001", 3);
	o365_secret_free(&raw);
	o365_secret_free(&b);
	assert_int_equal(o365_sasl_xoauth2("u@x", tok, O365_MAX_TOKEN + 1, &b, &err), O365_E_INVAL);
	assert_null(b);
	/* every visible ASCII byte is allowed */
	assert_int_equal(o365_sasl_token_check("!~-._+/=", 8, "token", NULL), O365_OK);
	free(tok);
}

static void
mech_names_parse_both_ways(void **state)
{
	(void)state;
	assert_int_equal(o365_sasl_mech_parse("plain"), O365_SASL_PLAIN);
	assert_int_equal(o365_sasl_mech_parse("PLAIN"), O365_SASL_PLAIN);
	assert_int_equal(o365_sasl_mech_parse("Login"), O365_SASL_LOGIN);
	assert_int_equal(o365_sasl_mech_parse("xOAuth2"), O365_SASL_XOAUTH2);
	assert_int_equal(o365_sasl_mech_parse("xoauth"), 0);
	assert_int_equal(o365_sasl_mech_parse("plain "), 0);
	assert_int_equal(o365_sasl_mech_parse(""), 0);
	assert_int_equal(o365_sasl_mech_parse(NULL), 0);
	assert_int_equal(o365_sasl_mech_parse("CRAM-MD5"), 0);
	assert_string_equal(o365_sasl_mech_name(O365_SASL_PLAIN), "PLAIN");
	assert_string_equal(o365_sasl_mech_name(O365_SASL_LOGIN), "LOGIN");
	assert_string_equal(o365_sasl_mech_name(O365_SASL_XOAUTH2), "XOAUTH2");
	assert_string_equal(o365_sasl_mech_name(0), "UNKNOWN");
	assert_string_equal(o365_sasl_mech_name(O365_SASL_PLAIN | O365_SASL_LOGIN), "UNKNOWN");
	assert_int_equal(o365_sasl_mech_parse(o365_sasl_mech_name(O365_SASL_XOAUTH2)),
	    O365_SASL_XOAUTH2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_rfc4648_vectors),
		cmocka_unit_test(base64_round_trips_every_byte_value),
		cmocka_unit_test(base64_decode_refuses_malformed_input),
		cmocka_unit_test(plain_blob_is_byte_exact),
		cmocka_unit_test(xoauth2_blob_is_byte_exact),
		cmocka_unit_test(plain_refuses_bad_credentials),
		cmocka_unit_test(plain_limits_at_max_credential),
		cmocka_unit_test(xoauth2_refuses_bad_user_and_token),
		cmocka_unit_test(token_check_limits),
		cmocka_unit_test(mech_names_parse_both_ways),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
