/*
 * sasl.c: base64 (RFC 4648) through OpenSSL's EVP block coder, and the SASL
 * initial responses we send: PLAIN (RFC 4616) and XOAUTH2.  Every buffer that
 * held a credential is cleansed before it is freed.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "o365/limits.h"
#include "o365/sasl.h"

/* The largest input EVP_EncodeBlock/EVP_DecodeBlock take (int lengths). */
#define SASL_B64_MAX_RAW	((size_t)(INT_MAX / 4 - 1) * 3)

int
o365_base64_encode(const void *p, size_t n, struct o365_secret **out)
{
	size_t olen;
	int r;

	*out = NULL;
	if (n > SASL_B64_MAX_RAW)
		return O365_E_TOOLONG;
	olen = (n + 2) / 3 * 4;
	if ((r = o365_secret_alloc(olen, out)) != O365_OK)
		return r;
	if (n > 0 && EVP_EncodeBlock((unsigned char *)(*out)->data, p, (int)n) != (int)olen) {
		o365_secret_free(out);
		return O365_E_INVAL;
	}
	(*out)->data[olen] = '\0';
	return O365_OK;
}

static int
sasl_b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/*
 * RFC 4648 section 4, strictly: a multiple of 4 characters from the
 * alphabet, '=' only as the last one or two, and the bits padding leaves
 * unused must be zero (section 3.5), so every text has one decoding.
 * EVP_DecodeBlock itself skips blanks and returns the length with the pad
 * bytes counted, so all of this is checked first.
 */
int
o365_base64_decode(const char *s, size_t n, struct o365_secret **out)
{
	const unsigned char *u = (const unsigned char *)s;
	struct o365_secret *d = NULL;
	size_t i, pad = 0, olen;
	int v, r;

	*out = NULL;
	if (n % 4 != 0)
		return O365_E_PROTO;
	if (n > SASL_B64_MAX_RAW)
		return O365_E_TOOLONG;
	if (n == 0)
		return o365_secret_alloc(0, out);
	if (u[n - 1] == '=')
		pad = u[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++)
		if (sasl_b64_value(u[i]) < 0)
			return O365_E_PROTO;
	/* unused low bits of the last data character must be zero */
	v = sasl_b64_value(u[n - pad - 1]);
	if ((pad == 1 && (v & 0x03) != 0) || (pad == 2 && (v & 0x0f) != 0))
		return O365_E_PROTO;
	olen = n / 4 * 3;
	if ((r = o365_secret_alloc(olen, &d)) != O365_OK)
		return r;
	if (EVP_DecodeBlock((unsigned char *)d->data, u, (int)n) != (int)olen) {
		o365_secret_free(&d);
		return O365_E_PROTO;
	}
	/* shorten to the true length; the pad bytes are zeros, cleanse anyway */
	o365_cleanse(d->data + olen - pad, pad);
	d->len = olen - pad;
	d->data[d->len] = '\0';
	*out = d;
	return O365_OK;
}

int
o365_sasl_token_check(const char *p, size_t len, const char *what, struct o365_error *err)
{
	size_t i;

	if (p == NULL || len == 0)
		return o365_error_set(err, O365_E_INVAL, "empty %s refused", what);
	if (len > O365_MAX_TOKEN)
		return o365_error_set(err, O365_E_INVAL, "%s longer than %d bytes refused",
		    what, O365_MAX_TOKEN);
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			return o365_error_set(err, O365_E_INVAL,
			    "%s with a byte other than visible ASCII refused", what);
	return O365_OK;
}

/* base64 of raw[0..n), then cleanse raw. */
static int
sasl_finish(unsigned char *raw, size_t n, struct o365_secret **b64_out, struct o365_error *err)
{
	int r;

	if ((r = o365_base64_encode(raw, n, b64_out)) != O365_OK)
		(void)o365_error_set(err, r, "cannot encode the SASL response");
	o365_cleanse(raw, n);
	free(raw);
	return r;
}

/*
 * RFC 4616 section 2:
 *   message = [authzid] UTF8NUL authcid UTF8NUL passwd
 * We send no authzid: Exchange Online authorises as the authenticated user.
 */
int
o365_sasl_plain(const char *user, const char *pass, size_t passlen,
    struct o365_secret **b64_out, struct o365_error *err)
{
	unsigned char *raw;
	size_t ulen, n;
	int r;

	*b64_out = NULL;
	ulen = user != NULL ? strlen(user) : 0;
	if ((r = o365_credential_check(user, ulen, "user name", err)) != O365_OK ||
	    (r = o365_credential_check(pass, passlen, "password", err)) != O365_OK)
		return r;
	n = 1 + ulen + 1 + passlen;
	if ((raw = malloc(n)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	raw[0] = '\0';
	memcpy(raw + 1, user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, pass, passlen);
	return sasl_finish(raw, n, b64_out, err);
}

/*
 * XOAUTH2 (Google's and Microsoft's "SASL XOAUTH2" pages):
 *   base64("user=" user ^A "auth=Bearer " token ^A ^A)
 * ^A separates the fields, so the user name must not hold one: it gets the
 * token's rule for control bytes (none at all) on top of the credential rule.
 */
int
o365_sasl_xoauth2(const char *user, const char *token, size_t toklen,
    struct o365_secret **b64_out, struct o365_error *err)
{
	static const char p1[] = "user=", p2[] = "\001auth=Bearer ", p3[] = "\001\001";
	unsigned char *raw;
	size_t ulen, n, o, i;
	int r;

	*b64_out = NULL;
	ulen = user != NULL ? strlen(user) : 0;
	if ((r = o365_credential_check(user, ulen, "user name", err)) != O365_OK)
		return r;
	for (i = 0; i < ulen; i++)
		if ((unsigned char)user[i] < 0x20 || (unsigned char)user[i] == 0x7f)
			return o365_error_set(err, O365_E_INVAL,
			    "user name with a control character refused");
	if ((r = o365_sasl_token_check(token, toklen, "access token", err)) != O365_OK)
		return r;
	n = (sizeof(p1) - 1) + ulen + (sizeof(p2) - 1) + toklen + (sizeof(p3) - 1);
	if ((raw = malloc(n)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	o = 0;
	memcpy(raw + o, p1, sizeof(p1) - 1);
	o += sizeof(p1) - 1;
	memcpy(raw + o, user, ulen);
	o += ulen;
	memcpy(raw + o, p2, sizeof(p2) - 1);
	o += sizeof(p2) - 1;
	memcpy(raw + o, token, toklen);
	o += toklen;
	memcpy(raw + o, p3, sizeof(p3) - 1);
	return sasl_finish(raw, n, b64_out, err);
}

int
o365_sasl_mech_parse(const char *name)
{
	if (name == NULL)
		return 0;
	if (strcasecmp(name, "plain") == 0)
		return O365_SASL_PLAIN;
	if (strcasecmp(name, "login") == 0)
		return O365_SASL_LOGIN;
	if (strcasecmp(name, "xoauth2") == 0)
		return O365_SASL_XOAUTH2;
	return 0;
}

const char *
o365_sasl_mech_name(int mech)
{
	switch (mech) {
	case O365_SASL_PLAIN:	return "PLAIN";
	case O365_SASL_LOGIN:	return "LOGIN";
	case O365_SASL_XOAUTH2:	return "XOAUTH2";
	default:		return "UNKNOWN";
	}
}
