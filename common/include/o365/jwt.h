/*
 * jwt.h: certificate credentials for the Microsoft identity platform: a
 * client assertion (RFC 7523 2.2, RFC 7521 4.2) signed with the app's RSA
 * key, instead of a client secret.
 *
 * The assertion (RFC 7519, RFC 7515 compact form):
 *   header  {"alg":"PS256","typ":"JWT","x5t":<b64url SHA-1 of the DER
 *           certificate>,"x5t#S256":<b64url SHA-256 of it>}
 *   claims  {"aud":<the token endpoint URL>,"iss":<client_id>,"sub":<client_id>,
 *           "jti":<random UUID>,"nbf":now,"iat":now,"exp":now + 600}
 *   signed  RSASSA-PSS, SHA-256, MGF1 SHA-256, salt 32 bytes (RFC 7518 3.5)
 * as Microsoft's "certificate credentials" page describes it (PS256 with
 * x5t#S256; x5t, the SHA-1 thumbprint, is what older Entra docs and the
 * portal show, and is sent too).
 */
#ifndef O365_JWT_H
#define O365_JWT_H

#include <sys/types.h>
#include <time.h>
#include "err.h"
#include "secret.h"

#define O365_JWT_LIFETIME	600	/* seconds: exp - nbf ("5-10 minutes") */

/* An RSA private key and the certificate that holds its public half. */
struct o365_jwt_key;

/*
 * Load a PEM certificate (cert_file: public, any owner) and its PEM private
 * key (key_file: read with o365_secret_read_file(key_owner): a regular file
 * owned by key_owner, not accessible by others, at most
 * O365_MAX_SECRET_FILE bytes; unencrypted PKCS#8 or PKCS#1).  The key must
 * be RSA of at least 2048 bits and match the certificate.  The key bytes are
 * cleansed once parsed.  O365_E_IO (missing, unreadable), O365_E_CONFIG
 * (owner, mode, not PEM, not RSA, too short, key and certificate differ; err
 * never quotes key bytes), O365_E_NOMEM.
 */
int	o365_jwt_key_load(const char *cert_file, const char *key_file, uid_t key_owner,
	    struct o365_jwt_key **out, struct o365_error *err) O365_MUST_CHECK;

/* Free (cleansing the key); sets *kp to NULL.  NULL-safe. */
void	o365_jwt_key_free(struct o365_jwt_key **kp);

/* What --check shows about the certificate: never the key. */
struct o365_jwt_cert_info {
	char	thumbprint[41];		/* SHA-1 of the DER, upper-case hex: Entra's "Thumbprint" */
	char	sha256[65];		/* SHA-256 of the DER, upper-case hex */
	char	subject[256];		/* one line, sanitised */
	time_t	not_before;
	time_t	not_after;
};

void	o365_jwt_key_info(const struct o365_jwt_key *k, struct o365_jwt_cert_info *out);

/*
 * A new client assertion for client_id at audience (the token endpoint URL,
 * see o365_oauth_endpoint_url), valid from now for O365_JWT_LIFETIME
 * seconds, in *out (a secret: it authenticates the app until it expires).
 * O365_E_INVAL (empty or over-long client_id or audience, control bytes),
 * O365_E_NOMEM, O365_E_CONFIG (the signature failed: err has OpenSSL's
 * reason).
 */
int	o365_jwt_assertion(const struct o365_jwt_key *k, const char *client_id,
	    const char *audience, time_t now, struct o365_secret **out,
	    struct o365_error *err) O365_MUST_CHECK;

/* RFC 4648 5 base64url without padding of in[0..len) into dst (NUL-terminated).
 * O365_E_TOOLONG when dst (size bytes) is too small. */
int	o365_jwt_b64url(const unsigned char *in, size_t len, char *dst, size_t size)
	    O365_MUST_CHECK;

#endif
