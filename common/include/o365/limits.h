/* limits.h: every hard cap of the core, each with its reason. */
#ifndef O365_LIMITS_H
#define O365_LIMITS_H

#define O365_MAX_SMTP_LINE	1000	/* RFC 5321 4.5.3.1.5 says 512 with CRLF; slack */
#define O365_MAX_SMTP_LINES	100	/* multi-line replies (EHLO is the longest) */
#define O365_MAX_IMAP_LINE	8192	/* RFC 7162 suggests ~8 KB command lines */
#define O365_MAX_IMAP_LITERAL	65536	/* a literal in a reply we do not need; skipped */
#define O365_MAX_IMAP_UNTAGGED	1000	/* untagged lines before our tagged reply */
#define O365_MAX_CREDENTIAL	1024	/* user name or password, bytes */
#define O365_MAX_TOKEN		16384	/* an access or refresh token; Entra's run ~2-4 KB */
#define O365_MAX_HTTP_BODY	65536	/* a token endpoint answer */
#define O365_MAX_SECRET_FILE	16384	/* password_file, client_secret_file, refresh_token_file */
#define O365_MAX_CONF_FILE	(1024 * 1024)	/* a config file */
#define O365_MAX_HOSTNAME	255	/* RFC 1035 */
#define O365_MAX_ADDRESS	320	/* RFC 5321 4.5.3.1: 64 local + @ + 255 domain */

#endif
