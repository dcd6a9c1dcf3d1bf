/*
 * probe.h: o365-sendmail --probe: connect to the relay, show what it says
 * and what TLS looks like, try AUTH, send no mail.
 */
#ifndef O365_SM_PROBE_H
#define O365_SM_PROBE_H

#include <stddef.h>
#include <stdio.h>

#include "o365/err.h"
#include "o365/smtp.h"
#include "o365/tls.h"

struct sm_probe_opts {
	const char			*host;
	unsigned int			 port;
	enum o365_smtp_tls_mode		 tls_mode;
	const struct o365_tls_opts	*tls;		/* NULL: system store, TLS 1.2 */
	const char			*helo;		/* NULL: "localhost" */
	unsigned int			 timeout_ms;	/* the whole probe */
	const char			*auth_user;	/* NULL: stop before AUTH */
	int				 auth_mech;	/* O365_SASL_* */
	const char			*secret;	/* password or access token; never printed */
	size_t				 secretlen;
};

/*
 * Connect as the queue runner would and print to out, for an admin:
 * the whole transcript (AUTH lines and challenges as "<secret>", and the
 * secret masked wherever it might appear), the capabilities before and
 * after STARTTLS, the TLS version and cipher, the server certificate
 * (subject, issuer, expiry), the verified chain length and the verification
 * result, then the result of AUTH (when auth_user and secret are given)
 * and, for a failure, the row of the reply table (replies.h) with its
 * advice.  No MAIL command is ever sent; QUIT ends the session.
 * Returns O365_OK when the connection (and AUTH, if asked) worked, else
 * the failure (err filled): O365_E_NET, O365_E_TLS, O365_E_AUTH, ...
 * O365_E_IO when out could not be written.
 */
int	sm_probe(const struct sm_probe_opts *o, FILE *out, struct o365_error *err) O365_MUST_CHECK;

#define SM_MASK_MIN	4	/* shorter secrets would mask ordinary text */

/*
 * Write s to out with every copy of secret (secretlen bytes; NULL or shorter
 * than SM_MASK_MIN: nothing masked) replaced by "<secret>".  For the
 * transcripts of --probe and --test-send.  0, or -1 when a write failed.
 */
int	sm_put_masked(FILE *out, const char *s, const char *secret, size_t secretlen);

#endif
