/*
 * jwt.c: certificate credentials (see jwt.h): load the app's certificate and
 * RSA key, and sign client assertions with OpenSSL's EVP interface.
 *
 * The key file is read like every secret file (owner, mode, size) into a
 * cleansed buffer, parsed from memory and the buffer cleansed at once; the
 * parsed key lives in an EVP_PKEY until o365_jwt_key_free (OpenSSL frees RSA
 * key material with cleansing).  Encrypted keys are refused instead of
 * prompting for a passphrase on a terminal we may not have.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "o365/jwt.h"
#include "o365/limits.h"
#include "o365/secret.h"

#define JWT_MIN_BITS	2048	/* Entra refuses shorter RSA keys */
#define JWT_MAX_FIELD	1024	/* a client id or a token endpoint URL */
#define JWT_PSS_SALT	32	/* RFC 7518 3.5: the salt is as long as the hash */

struct o365_jwt_key {
	X509		*cert;
	EVP_PKEY	*pkey;
	char		 x5t[32];	/* b64url of 20 bytes: 27 chars */
	char		 x5t256[48];	/* b64url of 32 bytes: 43 chars */
	struct o365_jwt_cert_info info;
};

int
o365_jwt_b64url(const unsigned char *in, size_t len, char *dst, size_t size)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0, need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
	unsigned long v;

	if (size == 0 || need > size - 1)
		return O365_E_TOOLONG;
	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
		dst[o++] = tab[v >> 18 & 63];
		dst[o++] = tab[v >> 12 & 63];
		dst[o++] = tab[v >> 6 & 63];
		dst[o++] = tab[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned long)in[i] << 16;
		dst[o++] = tab[v >> 18 & 63];
		dst[o++] = tab[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8;
		dst[o++] = tab[v >> 18 & 63];
		dst[o++] = tab[v >> 12 & 63];
		dst[o++] = tab[v >> 6 & 63];
	}
	dst[o] = '\0';
	return O365_OK;
}

static size_t
jwt_b64len(size_t n)
{
	return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/* OpenSSL's first queued error, for an admin; the queue is emptied. */
static const char *
jwt_ossl_why(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, size, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

/* Never ask for a passphrase: an encrypted key is refused. */
static int
jwt_no_passphrase(char *buf, int size, int rwflag, void *ud)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)ud;
	return -1;
}

static void
jwt_hex(const unsigned char *md, unsigned int n, char *dst)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned int i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = hex[md[i] >> 4];
		dst[2 * i + 1] = hex[md[i] & 15];
	}
	dst[2 * n] = '\0';
}

static time_t
jwt_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* Thumbprints and the --check facts of k->cert. */
static int
jwt_cert_facts(struct o365_jwt_key *k, struct o365_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char line[512];

	if (X509_digest(k->cert, EVP_sha1(), md, &n) != 1 || n != 20 ||
	    o365_jwt_b64url(md, n, k->x5t, sizeof(k->x5t)) != O365_OK)
		return o365_error_set(err, O365_E_CONFIG, "jwt: cannot hash the certificate");
	jwt_hex(md, n, k->info.thumbprint);
	if (X509_digest(k->cert, EVP_sha256(), md, &n) != 1 || n != 32 ||
	    o365_jwt_b64url(md, n, k->x5t256, sizeof(k->x5t256)) != O365_OK)
		return o365_error_set(err, O365_E_CONFIG, "jwt: cannot hash the certificate");
	jwt_hex(md, n, k->info.sha256);
	if (X509_NAME_oneline(X509_get_subject_name(k->cert), line, sizeof(line)) == NULL)
		line[0] = '\0';
	o365_sanitize(k->info.subject, sizeof(k->info.subject), line, strlen(line));
	k->info.not_before = jwt_asn1_time(X509_get0_notBefore(k->cert));
	k->info.not_after = jwt_asn1_time(X509_get0_notAfter(k->cert));
	return O365_OK;
}

int
o365_jwt_key_load(const char *cert_file, const char *key_file, uid_t key_owner,
    struct o365_jwt_key **out, struct o365_error *err)
{
	struct o365_secret *pem = NULL;
	struct o365_jwt_key *k = NULL;
	BIO *b = NULL;
	char why[256];
	int r;

	*out = NULL;
	o365_error_clear(err);
	if (cert_file == NULL || key_file == NULL)
		return o365_error_set(err, O365_E_CONFIG, "jwt: no certificate or key file");
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "jwt: out of memory");
	if ((b = BIO_new_file(cert_file, "r")) == NULL) {
		ERR_clear_error();
		r = o365_error_set(err, O365_E_IO, "cannot read the certificate %s", cert_file);
		goto out;
	}
	if ((k->cert = PEM_read_bio_X509(b, NULL, jwt_no_passphrase, NULL)) == NULL) {
		r = o365_error_set(err, O365_E_CONFIG, "%s is not a PEM certificate: %s", cert_file,
		    jwt_ossl_why(why, sizeof(why)));
		goto out;
	}
	BIO_free(b);
	b = NULL;
	if ((r = o365_secret_read_file(key_file, key_owner, &pem, err)) != O365_OK)
		goto out;
	if ((b = BIO_new_mem_buf(pem->data, (int)pem->len)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: out of memory");
		goto out;
	}
	k->pkey = PEM_read_bio_PrivateKey(b, NULL, jwt_no_passphrase, NULL);
	BIO_free(b);
	b = NULL;
	o365_secret_free(&pem);
	if (k->pkey == NULL) {
		/* OpenSSL's reason names no key bytes */
		r = o365_error_set(err, O365_E_CONFIG, "%s is not an unencrypted PEM private key: %s",
		    key_file, jwt_ossl_why(why, sizeof(why)));
		goto out;
	}
	if (!EVP_PKEY_is_a(k->pkey, "RSA")) {
		r = o365_error_set(err, O365_E_CONFIG, "%s is not an RSA key (Entra signs "
		    "client assertions with RSA only)", key_file);
		goto out;
	}
	if (EVP_PKEY_get_bits(k->pkey) < JWT_MIN_BITS) {
		r = o365_error_set(err, O365_E_CONFIG, "%s: an RSA key of %d bits; at least %d are "
		    "needed", key_file, EVP_PKEY_get_bits(k->pkey), JWT_MIN_BITS);
		goto out;
	}
	if (X509_check_private_key(k->cert, k->pkey) != 1) {
		ERR_clear_error();
		r = o365_error_set(err, O365_E_CONFIG, "the key %s does not belong to the "
		    "certificate %s", key_file, cert_file);
		goto out;
	}
	if ((r = jwt_cert_facts(k, err)) != O365_OK)
		goto out;
	*out = k;
	k = NULL;
	r = O365_OK;
out:
	BIO_free(b);
	o365_secret_free(&pem);
	o365_jwt_key_free(&k);
	return r;
}

void
o365_jwt_key_free(struct o365_jwt_key **kp)
{
	struct o365_jwt_key *k;

	if (kp == NULL || (k = *kp) == NULL)
		return;
	X509_free(k->cert);
	EVP_PKEY_free(k->pkey);
	free(k);
	*kp = NULL;
}

void
o365_jwt_key_info(const struct o365_jwt_key *k, struct o365_jwt_cert_info *out)
{
	*out = k->info;
}

/* A claim we put into the JWT: 1..JWT_MAX_FIELD printable ASCII bytes. */
static int
jwt_check_field(const char *s, const char *what, struct o365_error *err)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0)
		return o365_error_set(err, O365_E_INVAL, "jwt: empty %s", what);
	if (n > JWT_MAX_FIELD)
		return o365_error_set(err, O365_E_INVAL, "jwt: %s longer than %d bytes", what,
		    JWT_MAX_FIELD);
	for (i = 0; i < n; i++)
		if (!isprint((unsigned char)s[i]) || (unsigned char)s[i] >= 0x7f)
			return o365_error_set(err, O365_E_INVAL,
			    "jwt: %s holds a control or non-ASCII byte", what);
	return O365_OK;
}

/* RFC 4122 4.4: a random (version 4) UUID, lower-case. */
static int
jwt_uuid(char dst[37])
{
	unsigned char u[16];

	if (RAND_bytes(u, sizeof(u)) != 1)
		return -1;
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	snprintf(dst, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
	    u[13], u[14], u[15]);
	return 0;
}

/* json-c object -> its compact text (owned by j). */
static const char *
jwt_json(struct json_object *j, size_t *len)
{
	const char *s = json_object_to_json_string_length(j,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);

	return s;
}

static int
jwt_add_str(struct json_object *j, const char *name, const char *val)
{
	struct json_object *v = json_object_new_string(val);

	if (v == NULL)
		return -1;
	if (json_object_object_add(j, name, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int
jwt_add_int(struct json_object *j, const char *name, int64_t val)
{
	struct json_object *v = json_object_new_int64(val);

	if (v == NULL)
		return -1;
	if (json_object_object_add(j, name, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* RFC 7515 7.1: BASE64URL(header) "." BASE64URL(claims) into a new buffer. */
static int
jwt_signing_input(const struct o365_jwt_key *k, const char *client_id, const char *audience,
    time_t now, char **out, size_t *outlen, struct o365_error *err)
{
	struct json_object *h = NULL, *c = NULL;
	const char *hs, *cs;
	size_t hl = 0, cl = 0, n;
	char jti[37], *p = NULL;
	int r;

	*out = NULL;
	if (jwt_uuid(jti) != 0) {
		r = o365_error_set(err, O365_E_CONFIG, "jwt: no random bytes for the jti");
		goto out;
	}
	if ((h = json_object_new_object()) == NULL || (c = json_object_new_object()) == NULL ||
	    jwt_add_str(h, "alg", "PS256") != 0 || jwt_add_str(h, "typ", "JWT") != 0 ||
	    jwt_add_str(h, "x5t", k->x5t) != 0 || jwt_add_str(h, "x5t#S256", k->x5t256) != 0 ||
	    jwt_add_str(c, "aud", audience) != 0 || jwt_add_str(c, "iss", client_id) != 0 ||
	    jwt_add_str(c, "sub", client_id) != 0 || jwt_add_str(c, "jti", jti) != 0 ||
	    jwt_add_int(c, "nbf", (int64_t)now) != 0 || jwt_add_int(c, "iat", (int64_t)now) != 0 ||
	    jwt_add_int(c, "exp", (int64_t)now + O365_JWT_LIFETIME) != 0 ||
	    (hs = jwt_json(h, &hl)) == NULL || (cs = jwt_json(c, &cl)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: out of memory");
		goto out;
	}
	n = jwt_b64len(hl) + 1 + jwt_b64len(cl);
	if ((p = malloc(n + 1)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: out of memory");
		goto out;
	}
	if (o365_jwt_b64url((const unsigned char *)hs, hl, p, n + 1) != O365_OK) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: encoding failed");
		goto out;
	}
	p[jwt_b64len(hl)] = '.';
	if (o365_jwt_b64url((const unsigned char *)cs, cl, p + jwt_b64len(hl) + 1,
	    n + 1 - jwt_b64len(hl) - 1) != O365_OK) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: encoding failed");
		goto out;
	}
	*out = p;
	*outlen = n;
	p = NULL;
	r = O365_OK;
out:
	free(p);
	json_object_put(h);
	json_object_put(c);
	return r;
}

/* RFC 7518 3.5: PS256 over in[0..len); *sig_out malloc'ed. */
static int
jwt_sign(const struct o365_jwt_key *k, const char *in, size_t len, unsigned char **sig_out,
    size_t *siglen_out, struct o365_error *err)
{
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char why[256];
	int r;

	*sig_out = NULL;
	if ((md = EVP_MD_CTX_new()) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: out of memory");
		goto out;
	}
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, JWT_PSS_SALT) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)in, len) != 1) {
		r = o365_error_set(err, O365_E_CONFIG, "jwt: cannot sign: %s",
		    jwt_ossl_why(why, sizeof(why)));
		goto out;
	}
	if ((sig = malloc(siglen)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: out of memory");
		goto out;
	}
	if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)in, len) != 1) {
		r = o365_error_set(err, O365_E_CONFIG, "jwt: cannot sign: %s",
		    jwt_ossl_why(why, sizeof(why)));
		goto out;
	}
	*sig_out = sig;
	*siglen_out = siglen;
	sig = NULL;
	r = O365_OK;
out:
	if (sig != NULL)
		o365_cleanse(sig, siglen);
	free(sig);
	EVP_MD_CTX_free(md);	/* frees pctx too */
	return r;
}

int
o365_jwt_assertion(const struct o365_jwt_key *k, const char *client_id, const char *audience,
    time_t now, struct o365_secret **out, struct o365_error *err)
{
	struct o365_secret *s = NULL;
	unsigned char *sig = NULL;
	char *in = NULL;
	size_t inlen = 0, siglen = 0, n;
	int r;

	*out = NULL;
	o365_error_clear(err);
	if (k == NULL)
		return o365_error_set(err, O365_E_INVAL, "jwt: no key");
	if ((r = jwt_check_field(client_id, "client_id", err)) != O365_OK ||
	    (r = jwt_check_field(audience, "audience", err)) != O365_OK)
		return r;
	if ((r = jwt_signing_input(k, client_id, audience, now, &in, &inlen, err)) != O365_OK ||
	    (r = jwt_sign(k, in, inlen, &sig, &siglen, err)) != O365_OK)
		goto out;
	n = inlen + 1 + jwt_b64len(siglen);
	if ((r = o365_secret_alloc(n, &s)) != O365_OK) {
		r = o365_error_set(err, r, "jwt: out of memory");
		goto out;
	}
	memcpy(s->data, in, inlen);
	s->data[inlen] = '.';
	if (o365_jwt_b64url(sig, siglen, s->data + inlen + 1, n - inlen) != O365_OK) {
		r = o365_error_set(err, O365_E_NOMEM, "jwt: encoding failed");
		goto out;
	}
	*out = s;
	s = NULL;
	r = O365_OK;
out:
	o365_secret_free(&s);
	free(in);
	/* with the (public) signing input, the signature is the assertion */
	if (sig != NULL)
		o365_cleanse(sig, siglen);
	free(sig);
	return r;
}
