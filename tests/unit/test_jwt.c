/*
 * test_jwt.c: certificate credentials (common/jwt.c): base64url, loading a
 * certificate and its key with the secret file rules, and client assertions
 * whose header, claims and PS256 signature are checked here independently
 * with OpenSSL (the signature verified with the certificate's public key).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "o365/jwt.h"
#include "spawn.h"
#include "testutil.h"

#define CLIENT	"11111111-2222-3333-4444-555555555555"
#define AUD	"https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
#define NOW	1795660000L

static struct {
	char	dir[256];
	char	cert[300], key[300];		/* RSA 2048, matching */
	char	cert2[300], key2[300];		/* another RSA 2048 pair */
	char	ec_cert[300], ec_key[300];	/* P-256 */
	char	short_cert[300], short_key[300];	/* RSA 1024 */
	EVP_PKEY *pub;				/* the public key of cert */
	X509	*x509;
} fx;

/* ---- a small PKI made here ---- */

static EVP_PKEY *
gen_key(const char *kind, int bits)
{
	if (strcmp(kind, "EC") == 0)
		return EVP_EC_gen("P-256");
	return EVP_RSA_gen((unsigned)bits);
}

static X509 *
self_signed(EVP_PKEY *k, const char *cn, long days)
{
	X509 *x = X509_new();
	X509_NAME *n;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 42), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), days * 86400));
	assert_int_equal(X509_set_pubkey(x, k), 1);
	n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	return x;
}

static void
write_pair(const char *kind, int bits, const char *cn, char *cert, char *key, size_t size,
    const char *base, EVP_PKEY **keep_pub, X509 **keep_x)
{
	EVP_PKEY *k = gen_key(kind, bits);
	X509 *x;
	FILE *f;
	int fd;

	assert_non_null(k);
	x = self_signed(k, cn, 365);
	snprintf(cert, size, "%s/%s.pem", fx.dir, base);
	snprintf(key, size, "%s/%s.key", fx.dir, base);
	assert_non_null(f = fopen(cert, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
	assert_true((fd = open(key, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
	assert_non_null(f = fdopen(fd, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	if (keep_pub != NULL) {
		*keep_pub = k;
		*keep_x = x;
		return;
	}
	EVP_PKEY_free(k);
	X509_free(x);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/o365-jwt.XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	write_pair("RSA", 2048, "o365-unix relay", fx.cert, fx.key, sizeof(fx.cert), "app",
	    &fx.pub, &fx.x509);
	write_pair("RSA", 2048, "other", fx.cert2, fx.key2, sizeof(fx.cert2), "other", NULL, NULL);
	write_pair("EC", 0, "ec", fx.ec_cert, fx.ec_key, sizeof(fx.ec_cert), "ec", NULL, NULL);
	write_pair("RSA", 1024, "short", fx.short_cert, fx.short_key, sizeof(fx.short_cert),
	    "short", NULL, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(fx.pub);
	X509_free(fx.x509);
	if (fx.dir[0] != '\0')
		o365_test_rmtree(fx.dir);
	return 0;
}

/* ---- decoding, here and independent of jwt.c ---- */

static size_t
b64url_decode(const char *s, size_t n, unsigned char *out, size_t size)
{
	char *std = calloc(1, n + 4);
	size_t i, o;
	int len;

	assert_non_null(std);
	for (i = 0; i < n; i++)
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (i % 4 != 0)
		std[i++] = '=';
	assert_true(i / 4 * 3 <= size);
	len = EVP_DecodeBlock(out, (const unsigned char *)std, (int)i);
	assert_true(len >= 0);
	o = (size_t)len;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	while (i > 0 && std[--i] == '=')
		o--;
	free(std);
	return o;
}

static struct json_object *
part_json(const char *s, size_t n)
{
	unsigned char buf[2048];
	size_t len = b64url_decode(s, n, buf, sizeof(buf) - 1);
	struct json_object *j;

	buf[len] = '\0';
	j = json_tokener_parse((const char *)buf);
	assert_non_null(j);
	return j;
}

static const char *
jstr(struct json_object *j, const char *name)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(j, name, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static int64_t
jint(struct json_object *j, const char *name)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(j, name, &v));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

/* RFC 7518 3.5 PS256 over the signing input with the certificate's key. */
static int
verify_ps256(EVP_PKEY *pub, const char *jwt, size_t inlen, const char *sig64)
{
	unsigned char sig[1024];
	size_t siglen = b64url_decode(sig64, strlen(sig64), sig, sizeof(sig));
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok;

	assert_non_null(md);
	assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
	ok = EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt, inlen);
	EVP_MD_CTX_free(md);
	return ok == 1;
}

/* ---- tests ---- */

static void
b64url_vectors_and_limit(void **state)
{
	/* RFC 4648 10, in the URL alphabet, no padding */
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
		{ "\xfb\xff", "-_8" },
	};
	char out[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(o365_jwt_b64url((const unsigned char *)v[i].in, strlen(v[i].in), out,
		    sizeof(out)), O365_OK);
		assert_string_equal(out, v[i].out);
	}
	/* "foobar" needs 8 + NUL: 9 bytes fit, 8 do not */
	assert_int_equal(o365_jwt_b64url((const unsigned char *)"foobar", 6, out, 9), O365_OK);
	assert_int_equal(o365_jwt_b64url((const unsigned char *)"foobar", 6, out, 8),
	    O365_E_TOOLONG);
}

static void
assertion_is_signed_ps256_with_the_claims(void **state)
{
	struct o365_jwt_key *k = NULL;
	struct o365_jwt_cert_info ci;
	struct o365_secret *a = NULL, *b = NULL;
	struct o365_error err;
	struct json_object *h, *c;
	unsigned char md[32], x5t[64];
	unsigned int mdlen;
	char want[64], *d1, *d2;
	size_t n;

	(void)state;
	assert_int_equal(o365_jwt_key_load(fx.cert, fx.key, geteuid(), &k, &err), O365_OK);
	assert_int_equal(o365_jwt_assertion(k, CLIENT, AUD, NOW, &a, &err), O365_OK);
	/* three parts, URL-safe characters only */
	assert_int_equal(strspn(a->data, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_."), a->len);
	assert_non_null(d1 = strchr(a->data, '.'));
	assert_non_null(d2 = strchr(d1 + 1, '.'));
	assert_null(strchr(d2 + 1, '.'));

	h = part_json(a->data, (size_t)(d1 - a->data));
	assert_string_equal(jstr(h, "alg"), "PS256");
	assert_string_equal(jstr(h, "typ"), "JWT");
	/* x5t#S256 and x5t: the thumbprints of the DER certificate */
	assert_int_equal(X509_digest(fx.x509, EVP_sha256(), md, &mdlen), 1);
	n = b64url_decode(jstr(h, "x5t#S256"), strlen(jstr(h, "x5t#S256")), x5t, sizeof(x5t));
	assert_int_equal(n, 32);
	assert_memory_equal(x5t, md, 32);
	assert_int_equal(X509_digest(fx.x509, EVP_sha1(), md, &mdlen), 1);
	n = b64url_decode(jstr(h, "x5t"), strlen(jstr(h, "x5t")), x5t, sizeof(x5t));
	assert_int_equal(n, 20);
	assert_memory_equal(x5t, md, 20);
	json_object_put(h);

	c = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_string_equal(jstr(c, "aud"), AUD);
	assert_string_equal(jstr(c, "iss"), CLIENT);
	assert_string_equal(jstr(c, "sub"), CLIENT);
	assert_int_equal(jint(c, "nbf"), NOW);
	assert_int_equal(jint(c, "iat"), NOW);
	assert_int_equal(jint(c, "exp"), NOW + 600);
	/* RFC 4122 version 4 */
	assert_int_equal(strlen(jstr(c, "jti")), 36);
	assert_int_equal(jstr(c, "jti")[14], '4');
	assert_non_null(strchr("89ab", jstr(c, "jti")[19]));

	/* the signature holds with the certificate's public key ... */
	assert_true(verify_ps256(fx.pub, a->data, (size_t)(d2 - a->data), d2 + 1));
	/* ... and not over other claims */
	assert_false(verify_ps256(fx.pub, a->data, (size_t)(d2 - a->data) - 1, d2 + 1));

	/* a second one differs in its jti */
	assert_int_equal(o365_jwt_assertion(k, CLIENT, AUD, NOW, &b, &err), O365_OK);
	assert_int_not_equal(strcmp(a->data, b->data), 0);
	json_object_put(c);

	/* what --check shows: the thumbprint as Entra shows it, the expiry */
	o365_jwt_key_info(k, &ci);
	assert_int_equal(X509_digest(fx.x509, EVP_sha1(), md, &mdlen), 1);
	for (n = 0; n < 20; n++)
		snprintf(want + 2 * n, 3, "%02X", md[n]);
	assert_string_equal(ci.thumbprint, want);
	assert_int_equal(strlen(ci.sha256), 64);
	assert_non_null(strstr(ci.subject, "o365-unix relay"));
	assert_true(ci.not_after > time(NULL) + 360L * 86400);
	assert_true(ci.not_before <= time(NULL));
	o365_secret_free(&a);
	o365_secret_free(&b);
	o365_jwt_key_free(&k);
	assert_null(k);
}

static void
assertion_refuses_bad_fields(void **state)
{
	struct o365_jwt_key *k = NULL;
	struct o365_secret *a = NULL;
	struct o365_error err;
	char big[1100];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(o365_jwt_key_load(fx.cert, fx.key, geteuid(), &k, &err), O365_OK);
	assert_int_equal(o365_jwt_assertion(k, "", AUD, NOW, &a, &err), O365_E_INVAL);
	assert_int_equal(o365_jwt_assertion(k, CLIENT, "https://x/\r\nHost: y", NOW, &a, &err),
	    O365_E_INVAL);
	assert_int_equal(o365_jwt_assertion(k, big, AUD, NOW, &a, &err), O365_E_INVAL);
	big[1024] = '\0';	/* at the limit */
	assert_int_equal(o365_jwt_assertion(k, big, AUD, NOW, &a, &err), O365_OK);
	o365_secret_free(&a);
	assert_int_equal(o365_jwt_assertion(NULL, CLIENT, AUD, NOW, &a, &err), O365_E_INVAL);
	assert_null(a);
	o365_jwt_key_free(&k);
}

static void
load_refuses_wrong_keys_and_unsafe_files(void **state)
{
	struct o365_jwt_key *k = NULL;
	struct o365_error err;
	char path[400], *pem;
	size_t len;

	(void)state;
	/* a key that is not the certificate's */
	assert_int_equal(o365_jwt_key_load(fx.cert, fx.key2, geteuid(), &k, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "does not belong"));
	assert_null(k);
	/* not RSA, too short */
	assert_int_equal(o365_jwt_key_load(fx.ec_cert, fx.ec_key, geteuid(), &k, &err),
	    O365_E_CONFIG);
	assert_non_null(strstr(err.why, "not an RSA key"));
	assert_int_equal(o365_jwt_key_load(fx.short_cert, fx.short_key, geteuid(), &k, &err),
	    O365_E_CONFIG);
	assert_non_null(strstr(err.why, "1024 bits"));
	/* the key file's owner and mode, as for every secret file */
	assert_int_equal(o365_jwt_key_load(fx.cert, fx.key, geteuid() + 1, &k, &err),
	    O365_E_CONFIG);
	assert_int_equal(chmod(fx.key, 0604), 0);
	assert_int_equal(o365_jwt_key_load(fx.cert, fx.key, geteuid(), &k, &err), O365_E_CONFIG);
	assert_int_equal(chmod(fx.key, 0600), 0);
	/* missing files; a certificate that is not PEM; the key where the cert goes */
	snprintf(path, sizeof(path), "%s/none.pem", fx.dir);
	assert_int_equal(o365_jwt_key_load(path, fx.key, geteuid(), &k, &err), O365_E_IO);
	assert_int_equal(o365_jwt_key_load(fx.cert, path, geteuid(), &k, &err), O365_E_IO);
	assert_int_equal(o365_jwt_key_load(fx.key, fx.key, geteuid(), &k, &err), O365_E_CONFIG);
	/* an encrypted key is refused, never prompted for */
	{
		EVP_PKEY *pk = EVP_RSA_gen(2048);
		FILE *f;
		int fd;

		snprintf(path, sizeof(path), "%s/enc.key", fx.dir);
		assert_true((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
		assert_non_null(f = fdopen(fd, "w"));
		assert_int_equal(PEM_write_PrivateKey(f, pk, EVP_aes_256_cbc(),
		    (unsigned char *)"pass", 4, NULL, NULL), 1);
		assert_int_equal(fclose(f), 0);
		EVP_PKEY_free(pk);
		assert_int_equal(o365_jwt_key_load(fx.cert, path, geteuid(), &k, &err),
		    O365_E_CONFIG);
		assert_non_null(strstr(err.why, "unencrypted"));
	}
	/* no error text quotes key bytes */
	assert_non_null(pem = o365_test_slurp(fx.key2, &len));
	assert_int_equal(o365_jwt_key_load(fx.cert, fx.key2, geteuid(), &k, &err), O365_E_CONFIG);
	assert_null(strstr(err.why, "MII"));
	free(pem);
	assert_null(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64url_vectors_and_limit),
		cmocka_unit_test(assertion_is_signed_ps256_with_the_claims),
		cmocka_unit_test(assertion_refuses_bad_fields),
		cmocka_unit_test(load_refuses_wrong_keys_and_unsafe_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
