/* tls.h: TLS settings shared by every connection (IMAP, SMTP, token endpoint). */
#ifndef O365_TLS_H
#define O365_TLS_H

#include "err.h"

/*
 * The system store is OpenSSL's compiled-in X509_get_default_cert_file() and
 * _dir(); SSL_CERT_FILE / SSL_CERT_DIR in the environment are ignored (under
 * su or sudo the caller controls the environment).
 */
struct o365_tls_opts {
	const char	*ca_file;	/* PEM bundle; NULL: system store */
	const char	*ca_dir;	/* hashed directory; NULL: system store */
	int		 min_version;	/* TLS1_2_VERSION (default when 0) or TLS1_3_VERSION;
					 * anything else: O365_E_CONFIG */
};

/* "1.2" -> TLS1_2_VERSION, "1.3" -> TLS1_3_VERSION; anything else O365_E_CONFIG. */
int	o365_tls_version_parse(const char *s, int *out) O365_MUST_CHECK;

/* What a finished handshake showed (for diagnostics: o365-authtest, --probe). */
struct o365_tls_info {
	char	version[16];		/* "TLSv1.3" */
	char	cipher[64];
	char	subject[256];		/* peer certificate, one line */
	char	issuer[256];
	char	not_after[32];
	char	verify[128];		/* "ok" or X509_verify_cert_error_string */
	int	chain_len;		/* verified chain, leaf to trust anchor */
};

#endif
