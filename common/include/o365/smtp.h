/*
 * smtp.h: an ESMTP submission client (RFC 5321, 3207 STARTTLS, 4954 AUTH,
 * 2920 PIPELINING, 6152 8BITMIME, 6531 SMTPUTF8, 2034 enhanced codes).
 *
 * The engine reports what happened; the caller (relay.c) decides retry or
 * bounce.  Every call that gets a reply fills *reply (when not NULL) and
 * returns: O365_OK for the expected 2xx/3xx; O365_E_TEMP for 4xx; O365_E_AUTH
 * for 535/530/534/538 to AUTH; O365_E_PERM for other 5xx; O365_E_PROTO for a
 * malformed reply; or a conn error.  err->reply / err->enhanced / err->why
 * carry the server's code, enhanced code and (sanitised) text.
 */
#ifndef O365_SMTP_H
#define O365_SMTP_H

#include <stddef.h>
#include <sys/types.h>
#include "err.h"
#include "deadline.h"
#include "log.h"
#include "tls.h"
#include "conn.h"
#include "limits.h"

struct o365_smtp;

enum o365_smtp_tls_mode {
	O365_SMTP_STARTTLS,	/* port 587: plaintext greeting, STARTTLS required */
	O365_SMTP_IMPLICIT,	/* port 465: TLS from the first byte */
};

struct o365_smtp_opts {
	const char			*host;		/* connect to and verify as */
	unsigned int			 port;
	enum o365_smtp_tls_mode		 tls_mode;
	const struct o365_tls_opts	*tls;
	const char			*helo;		/* our name for EHLO */
};

struct o365_smtp_caps {
	unsigned	starttls:1, pipelining:1, eightbitmime:1, smtputf8:1,
			enhanced:1, dsn:1, chunking:1, size_given:1;
	unsigned	auth;		/* O365_SASL_* bits */
	unsigned long	size;		/* SIZE limit, 0 if none given */
};

struct o365_smtp_reply {
	int	code;			/* 250 */
	char	enhanced[12];		/* "2.0.0", "" if none */
	char	text[512];		/* all lines joined with " / ", sanitised */
};

/*
 * Connect, read the greeting, EHLO; with STARTTLS mode: STARTTLS, verify,
 * EHLO again (capabilities from before TLS are forgotten).  If STARTTLS is
 * not offered: O365_E_TLS ("server does not offer STARTTLS") and nothing more
 * is sent.  A 4xx/5xx greeting: TEMP/PERM.
 */
int	o365_smtp_connect(const struct o365_smtp_opts *o, const struct o365_deadline *dl,
	    const struct o365_log *lg, struct o365_smtp **out,
	    struct o365_error *err) O365_MUST_CHECK;

const struct o365_smtp_caps *o365_smtp_caps(const struct o365_smtp *s);
const struct o365_smtp_reply *o365_smtp_last_reply(const struct o365_smtp *s);
struct o365_conn *o365_smtp_conn(struct o365_smtp *s);

/* AUTH with mech (one O365_SASL_* value) that the server advertised.  secret is
 * the password (PLAIN, LOGIN) or the access token (XOAUTH2). */
int	o365_smtp_auth(struct o365_smtp *s, int mech, const char *user, const char *secret,
	    size_t secretlen, const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/*
 * One transaction's envelope: MAIL FROM (with SIZE=, BODY=8BITMIME, SMTPUTF8
 * when flagged and offered), then every RCPT TO; pipelined where offered.
 * rcpt_codes[i] gets each recipient's reply code, rcpt_replies (may be NULL)
 * its text.  Returns O365_OK if MAIL and at least one RCPT were accepted (the
 * caller looks at rcpt_codes for the others); else the MAIL or the (first
 * worst) RCPT failure.  Addresses with CR, LF, NUL, '<' or '>' are refused
 * (O365_E_INVAL) before anything is sent.
 */
#define O365_SMTP_8BIT		0x1
#define O365_SMTP_UTF8		0x2
int	o365_smtp_envelope(struct o365_smtp *s, const char *from, off_t size, unsigned flags,
	    const char *const *rcpts, size_t nrcpt, int *rcpt_codes,
	    struct o365_smtp_reply *rcpt_replies, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * DATA, then the message read from fd (from its current offset to EOF) in
 * chunks: line endings normalised to CRLF, leading dots doubled, a final CRLF
 * added if missing, then ".".  Never holds the whole message in memory.
 * Returns the reply to the final dot (O365_OK for 250).
 */
int	o365_smtp_data_fd(struct o365_smtp *s, int fd, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/* RSET between messages on one session. */
int	o365_smtp_rset(struct o365_smtp *s, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/* QUIT (best effort within dl), close and free; *sp = NULL.  NULL-safe. */
void	o365_smtp_quit(struct o365_smtp **sp, const struct o365_deadline *dl);

/* ---- pure parsers (fuzzed) ---- */

/*
 * One reply line: 3 digits, then '-' (more follow) or ' ' / end (last), then
 * printable text.  *code_out, *more_out, *text_out (points into line).
 * O365_E_PROTO otherwise.
 */
int	o365_smtp_parse_reply_line(const char *line, size_t len, int *code_out,
	    int *more_out, const char **text_out) O365_MUST_CHECK;

/* Parse "X.Y.Z " at the start of text (RFC 3463); returns the length consumed, 0 if none. */
size_t	o365_smtp_parse_enhanced(const char *text, char out[12]);

/* Fold one EHLO keyword line (the text after "250-"/"250 ") into caps. */
void	o365_smtp_parse_ehlo_line(const char *text, struct o365_smtp_caps *caps);

#endif
