/*
 * smtp.h: an ESMTP submission client (RFC 5321, 3207 STARTTLS, 4954 AUTH,
 * 2920 PIPELINING, 6152 8BITMIME, 6531 SMTPUTF8, 2034 enhanced codes).
 *
 * The engine reports what happened; the caller (relay.c) decides retry or
 * bounce.  Every call that gets a reply fills *reply (when not NULL) and
 * returns: O365_OK for the expected 2xx/3xx; O365_E_TEMP for 4xx; O365_E_AUTH
 * for 535/530/534/538 to AUTH; O365_E_PERM for other 5xx; O365_E_PROTO for a
 * malformed reply (or a valid one that makes no sense here, e.g. 354 to
 * RCPT); O365_E_TOOLONG for a reply line over O365_MAX_SMTP_LINE bytes or
 * over O365_MAX_SMTP_LINES lines; or a conn error (NET, TIMEOUT, TLS).
 * err->reply / err->enhanced / err->why carry the server's code, enhanced
 * code (only when its class matches the reply's) and (sanitised) text.
 *
 * A 421 at any point (RFC 5321 3.8) is O365_E_TEMP, and err->why says the
 * server closed the session.  After a 421, a PROTO/TOOLONG reply, any I/O
 * error or timeout, the session is unusable: o365_smtp_usable() says 0,
 * every further call returns O365_E_NET ("unusable after an earlier
 * error") without sending anything, and o365_smtp_quit only closes.
 * A 4xx/5xx reply to a command leaves the session usable (RSET and go on).
 *
 * Traces (LOG_DEBUG, "C: ..." / "S: ...") show "AUTH PLAIN <secret>" and
 * "<secret>" for every AUTH line we send, "334 <secret>" for every SASL
 * challenge, and "<message>" for the DATA body.
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
 * not offered: O365_E_TLS ("server does not offer STARTTLS") and only QUIT
 * is sent.  A 4xx/5xx greeting: TEMP/PERM (then QUIT).  EHLO answered with
 * 500/502 falls back to HELO only when TLS is already up (IMPLICIT); in
 * STARTTLS mode it is O365_E_TLS.  Data sent by the server after its 220 to
 * STARTTLS and before the handshake: O365_E_PROTO (plaintext injection).
 * o->helo (NULL: "localhost") must look like a domain or address literal,
 * else O365_E_INVAL before anything is sent.  o->tls may be NULL (system CA
 * store, TLS 1.2 minimum).
 */
int	o365_smtp_connect(const struct o365_smtp_opts *o, const struct o365_deadline *dl,
	    const struct o365_log *lg, struct o365_smtp **out,
	    struct o365_error *err) O365_MUST_CHECK;

const struct o365_smtp_caps *o365_smtp_caps(const struct o365_smtp *s);
/* 1 while the session can take commands; 0 after a 421 or a connection or
 * protocol error (see above): then only o365_smtp_quit is useful. */
int	o365_smtp_usable(const struct o365_smtp *s);
const struct o365_smtp_reply *o365_smtp_last_reply(const struct o365_smtp *s);
struct o365_conn *o365_smtp_conn(struct o365_smtp *s);

/*
 * AUTH with mech (one O365_SASL_* value) that the server advertised.  secret is
 * the password (PLAIN, LOGIN) or the access token (XOAUTH2).
 * PLAIN goes as an initial response ("AUTH PLAIN <b64>") when that line fits
 * O365_MAX_SMTP_LINE bytes, else after a 334; LOGIN answers the two 334
 * prompts; XOAUTH2 sends "AUTH XOAUTH2" and the blob after the 334 (Exchange
 * Online's way; blobs are often over 2 KB).  A 334 after the last message (a
 * base64 JSON error for XOAUTH2) is answered with an empty line (XOAUTH2) or
 * "*" (RFC 4954 cancel) and the final reply decides.
 * Before anything is sent: O365_E_TLS if TLS is not up; O365_E_CONFIG if the
 * server did not advertise mech; O365_E_INVAL for an unknown mech, an empty
 * or over-long user name or secret, CR/LF/NUL in either, a control byte in
 * the user name, a token byte outside visible ASCII (o365_sasl_token_check).  535/530/534/538: O365_E_AUTH (e.g. Exchange's
 * 535 5.7.3 and 535 5.7.139); other 5xx (550 5.7.30 basic auth disabled,
 * 501 5.5.124 bad XOAUTH2 blob): O365_E_PERM; 4xx (432 4.3.2): O365_E_TEMP.
 * Every buffer that held the secret or its base64 is cleansed.
 */
int	o365_smtp_auth(struct o365_smtp *s, int mech, const char *user, const char *secret,
	    size_t secretlen, const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/*
 * One transaction's envelope: MAIL FROM (with SIZE=, BODY=8BITMIME, SMTPUTF8
 * when flagged and offered), then every RCPT TO; pipelined where offered.
 * rcpt_codes[i] gets each recipient's reply code, rcpt_replies (may be NULL)
 * its text.  Returns O365_OK if MAIL and at least one RCPT were accepted (the
 * caller looks at rcpt_codes for the others); else the MAIL failure, or the
 * first of the worst RCPT failures (PERM before TEMP); a 421 ends it at once.
 * Unread recipients keep code 0.  from "" is the null reverse-path <> (for
 * bounces).  nrcpt 0, or an address with a control byte (CR, LF, NUL, ...),
 * '<', '>', a space outside a quoted local part, an unclosed quote, or
 * longer than O365_MAX_ADDRESS, is refused (O365_E_INVAL) before anything is
 * sent.  SIZE= is sent only when the server offered SIZE and size > 0.
 * O365_SMTP_RSET: RSET first (the previous transaction on this session
 * ended); with PIPELINING in the same write as MAIL and RCPT, its reply read
 * first, so it costs no round trip.  A refused RSET returns its error
 * before MAIL's reply is looked at; pipelined, the session is then unusable.
 */
#define O365_SMTP_8BIT		0x1
#define O365_SMTP_UTF8		0x2
#define O365_SMTP_RSET		0x4
int	o365_smtp_envelope(struct o365_smtp *s, const char *from, off_t size, unsigned flags,
	    const char *const *rcpts, size_t nrcpt, int *rcpt_codes,
	    struct o365_smtp_reply *rcpt_replies, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * DATA, then the message read from fd (from its current offset to EOF) in
 * 64 KB chunks: line endings normalised to CRLF (CRLF kept, a bare LF and a
 * bare CR each become CRLF: RFC 5321 2.3.8 allows CR only in CRLF, and lone
 * CRs are what SMTP-smuggling payloads use), leading dots doubled, a final
 * CRLF added if missing, then ".".  Other bytes (8-bit, NUL) and long lines
 * pass unchanged.  Never holds the whole message in memory.
 * Returns the reply to the final dot (O365_OK for 250).  A read error on fd
 * is O365_E_IO and the session is left unusable (the message is never
 * ended with ".", so closing makes the server drop it).
 */
int	o365_smtp_data_fd(struct o365_smtp *s, int fd, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/* RSET between messages on one session. */
int	o365_smtp_rset(struct o365_smtp *s, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/* NOOP: keeps an idle session alive (and shows it still is). */
int	o365_smtp_noop(struct o365_smtp *s, const struct o365_deadline *dl,
	    struct o365_error *err) O365_MUST_CHECK;

/* QUIT (best effort within dl), close and free; *sp = NULL.  NULL-safe. */
void	o365_smtp_quit(struct o365_smtp **sp, const struct o365_deadline *dl);

/* ---- pure parsers (fuzzed) ---- */

/*
 * One reply line (without CRLF): 3 digits (RFC 5321: [2-5][0-5][0-9]), then
 * '-' (more follow) or ' ' / end (last), then text without control bytes
 * other than HT (bytes >= 0x80 pass; callers sanitise).  *code_out,
 * *more_out, *text_out (points into line; the text is line[text-line..len)).
 * O365_E_PROTO otherwise.
 */
int	o365_smtp_parse_reply_line(const char *line, size_t len, int *code_out,
	    int *more_out, const char **text_out) O365_MUST_CHECK;

/* Parse "X.Y.Z" (class 2/4/5, subject and detail 1-3 digits, RFC 3463) at the
 * start of NUL-terminated text, followed by blank or end; out gets it.
 * Returns the length consumed including the blanks after it; 0 (and out "")
 * if none. */
size_t	o365_smtp_parse_enhanced(const char *text, char out[12]);

/* Fold one EHLO keyword line (the text after "250-"/"250 ") into caps:
 * keywords case-insensitive, "AUTH m1 m2" and the old "AUTH=m1 m2", "SIZE"
 * alone or with a number; unknown or malformed lines are ignored. */
void	o365_smtp_parse_ehlo_line(const char *text, struct o365_smtp_caps *caps);

#endif
