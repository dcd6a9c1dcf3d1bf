/*
 * replies.c: the one table of SMTP replies and local failures -> actions.
 *
 * Texts are Exchange Online's (docs: /work/shared/EXCHANGE-ONLINE.md and
 * Microsoft's NDR pages); rows are tried in order, the most specific first.
 * Two rules shape the table:
 *   - a reply about the session (greeting, EHLO, AUTH, or 530 to MAIL)
 *     never bounces a message: an expired password must not turn the whole
 *     queue into bounces, so those hold the queue;
 *   - a reply about this message's sender (SendAs) holds that message:
 *     bouncing it would lose mail the admin can still let through.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "replies.h"

#define ANY	SM_STAGE_ANY
#define SESSION	(SM_STAGE_CONNECT | SM_STAGE_AUTH)

static const struct sm_reply_rule rules[] = {
	/* ---- the relay mailbox may not send as this sender ---- */
	{ "sendas-denied", 5, 0, "5.2.252", NULL, ANY, SM_ACT_HOLD_MESSAGE,
	  "554 5.2.252 SendAsDenied; relay@contoso.com not allowed to send as "
	  "alice@example.org; STOREDRV.Submission.Exception:SendAsDeniedException",
	  "The relay mailbox may not send as this message's From address. Set "
	  "from.address to the relay mailbox and from.rewrite to always (or local), "
	  "or grant the mailbox SendAs on that address (Add-RecipientPermission "
	  "<from> -AccessRights SendAs -Trustee <relay>); then release the message." },
	{ "sendas-denied-old", 5, 0, NULL, "SendAsDeniedException", ANY, SM_ACT_HOLD_MESSAGE,
	  "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException",
	  "As sendas-denied (the older text): fix from.address, from.rewrite or the "
	  "SendAs grant, then release the message." },
	{ "sendas-no-permission", 5, 0, "5.7.60", NULL, ANY, SM_ACT_HOLD_MESSAGE,
	  "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
	  "As sendas-denied: the From address is not the relay mailbox and it holds "
	  "no SendAs right on it." },

	/* ---- the 24 h recipient quota: wait, never bounce ---- */
	{ "submission-quota", 5, 0, NULL, "SubmissionQuotaExceededException", ANY,
	  SM_ACT_WAIT_QUOTA,
	  "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; "
	  "Failed to process message due to a permanent exception",
	  "The mailbox sent to more than its recipients per rolling 24 hours "
	  "(10,000 by default). Mail waits for the window; lower flow.day_recipients "
	  "so the relay stops before Exchange does." },
	{ "sending-quota", 5, 0, NULL, "sending quota exceeded", ANY, SM_ACT_WAIT_QUOTA,
	  "550 5.4.5 Daily user sending quota exceeded",
	  "A daily sending quota (other providers' wording). Mail waits for the window." },

	/* ---- the relay mailbox itself is full ---- */
	{ "mailbox-full", 5, 0, "5.2.2", "QuotaExceededException",
	  SESSION | SM_STAGE_MAIL | SM_STAGE_DATA, SM_ACT_HOLD_QUEUE,
	  "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException",
	  "The relay mailbox is over its storage quota, so Exchange cannot store what "
	  "it sends. Empty its Sent Items and Deleted Items or raise its quota." },

	/* ---- configuration problems: hold the whole queue ---- */
	{ "basic-auth-disabled", 5, 0, "5.7.30", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "550 5.7.30 Basic authentication is not supported for Client Submission",
	  "Exchange Online no longer takes a password for this mailbox. Switch "
	  "auth.mechanism to xoauth2 (OAuth2), or have the tenant admin allow SMTP AUTH "
	  "with a password again while that is still possible." },
	{ "auth-disabled-tenant", 535, 0, "5.7.139", "disabled for the Tenant", ANY,
	  SM_ACT_HOLD_QUEUE,
	  "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
	  "for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
	  "SMTP AUTH is off for the whole tenant. Enable it for the relay mailbox only: "
	  "Set-CASMailbox <relay> -SmtpClientAuthenticationDisabled $false." },
	{ "auth-disabled-mailbox", 535, 0, "5.7.139", "disabled for the Mailbox", ANY,
	  SM_ACT_HOLD_QUEUE,
	  "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
	  "for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
	  "SMTP AUTH is off for the relay mailbox: Set-CASMailbox <relay> "
	  "-SmtpClientAuthenticationDisabled $false." },
	{ "auth-security-defaults", 535, 0, "5.7.139", "security defaults", ANY,
	  SM_ACT_HOLD_QUEUE,
	  "535 5.7.139 Authentication unsuccessful, user is locked by your organization's "
	  "security defaults policy. Contact your administrator.",
	  "Entra ID security defaults block password sign-ins for SMTP. Use OAuth2 "
	  "(auth.mechanism xoauth2) or turn security defaults off for the tenant." },
	{ "auth-policy", 535, 0, "5.7.139", "did not meet the criteria", ANY, SM_ACT_HOLD_QUEUE,
	  "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria "
	  "to be authenticated successfully. Contact your administrator.",
	  "A Conditional Access or MFA policy refused the sign-in. Exclude the relay "
	  "account from that policy, or use OAuth2 client credentials." },
	{ "auth-refused-policy", 535, 0, "5.7.139", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "535 5.7.139 Authentication unsuccessful, <reason>",
	  "Tenant policy refused SMTP AUTH; the text after the comma says why "
	  "(https://aka.ms/smtp_auth_disabled)." },
	{ "auth-failed", 535, 0, "5.7.3", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "535 5.7.3 Authentication unsuccessful",
	  "Wrong or expired password, or a token for the wrong scope (SMTP needs "
	  "https://outlook.office.com/SMTP.Send). Fix auth.password_file or the token; "
	  "the queue resumes by itself at the next try, or at once with -q." },
	{ "not-authenticated", 530, 0, "5.7.57", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "530 5.7.57 Client not authenticated to send mail",
	  "The session was not authenticated when mail was sent: check auth.user and "
	  "auth.mechanism, and that the mailbox may use SMTP AUTH." },
	{ "xoauth2-invalid", 501, 0, "5.5.124", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "501 5.5.124 Invalid XOAUTH2 auth data",
	  "The XOAUTH2 message was malformed: auth.user must be the mailbox address and "
	  "the token an access token (not a refresh or ID token)." },
	{ "bad-outbound-sender", 5, 0, "5.1.8", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "550 5.1.8 Access denied, bad outbound sender",
	  "Exchange blocked the relay mailbox for sending spam. Find out why, then "
	  "remove it from Restricted users in the Microsoft Defender portal." },
	{ "tenant-blocked", 5, 0, "5.7.705", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "550 5.7.705 Access denied, tenant has exceeded threshold",
	  "The tenant is blocked from sending (too much spam). Contact Microsoft support." },
	{ "ip-blocked", 5, 0, "5.7.708", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP",
	  "Exchange does not take mail from this host's address: send from another "
	  "address or ask Microsoft support to delist it." },
	{ "unregistered-domain", 5, 0, "5.7.750", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "550 5.7.750 Service unavailable. Client blocked from sending from unregistered domains",
	  "The sender domain is not an accepted domain of the tenant: use a From "
	  "address in a verified domain (from.address, from.rewrite)." },
	{ "tls-version", 421, 0, "4.7.66", NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your "
	  "client to support TLS 1.2.",
	  "The connection reached Exchange with TLS older than 1.2, so something between "
	  "this host and Exchange re-encrypts it: set tls.min_version 1.2 and check for "
	  "an intercepting proxy." },

	/* ---- temporary replies: retry with backoff ---- */
	{ "concurrent-connections", 432, 0, "4.3.2", NULL, ANY, SM_ACT_RETRY,
	  "432 4.3.2 Concurrent connections limit exceeded",
	  "More than 3 connections to this mailbox at once (or \"sender thread limit "
	  "exceeded\"). Lower flow.connections, or stop other programs that use the "
	  "same mailbox." },
	{ "submission-rate", 4, 0, NULL, "submission rate", ANY, SM_ACT_RETRY,
	  "421 4.4.2 Message submission rate for this client has exceeded the configured limit",
	  "More than 30 messages a minute to this mailbox: lower flow.per_minute." },
	{ "service-closing", 421, 0, NULL, NULL, ANY, SM_ACT_RETRY,
	  "421 4.3.2 Service not available, closing transmission channel",
	  "The server closed the session; retried with backoff." },
	{ "local-error", 451, 0, NULL, NULL, ANY, SM_ACT_RETRY,
	  "451 4.3.0 Local error in processing",
	  "The server had a problem of its own; retried with backoff." },
	{ "insufficient-storage", 452, 0, NULL, NULL, ANY, SM_ACT_RETRY,
	  "452 4.5.3 Too many recipients",
	  "Too many recipients or no room for now; retried (messages over "
	  "flow.max_recipients recipients are split anyway)." },
	{ "temporary", 4, 0, NULL, NULL, ANY, SM_ACT_RETRY,
	  "450 4.2.1 <any other 4xx>",
	  "Any other temporary reply; retried with backoff until queue.max_age." },

	/* ---- other permanent replies ---- */
	{ "session-refused", 5, 0, NULL, NULL, SESSION, SM_ACT_HOLD_QUEUE,
	  "554 5.7.1 <any 5xx to the greeting, EHLO, STARTTLS or AUTH>",
	  "The server refused the session itself, which says nothing about the "
	  "messages: read the reply and run o365-sendmail --probe." },
	{ "permanent", 5, 0, NULL, NULL, ANY, SM_ACT_BOUNCE,
	  "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
	  "Any other permanent reply: the message fails and is bounced once." },

	/* ---- local failures (no server reply) ---- */
	{ "token-refused", 0, O365_E_AUTH, NULL, NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "(the token endpoint refused the grant, or a fresh token was refused)",
	  "OAuth2 cannot get or use a token even after a refresh: the refresh token "
	  "expired (AADSTS700082), the client secret expired, or consent is missing. "
	  "Sign in again or renew the secret." },
	{ "local-config", 0, O365_E_CONFIG, NULL, NULL, ANY, SM_ACT_HOLD_QUEUE,
	  "(the configuration cannot work, e.g. AUTH mechanism not offered)",
	  "Run o365-sendmail --check and --probe and fix what they report." },
	{ "local-inval-session", 0, O365_E_INVAL, NULL, NULL, SESSION, SM_ACT_HOLD_QUEUE,
	  "(a bad EHLO name or credential refused before sending)",
	  "smtp.helo, auth.user or the secret is unusable: run o365-sendmail --check." },
	{ "local-inval-message", 0, O365_E_INVAL, NULL, NULL,
	  SM_STAGE_MAIL | SM_STAGE_RCPT | SM_STAGE_DATA, SM_ACT_BOUNCE,
	  "(an address that cannot be sent, refused before sending)",
	  "The message has an address SMTP cannot carry; it is bounced." },
	{ "network", 0, O365_E_NET, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(cannot resolve or connect, or the connection broke)",
	  "Retried with backoff; check DNS, routes and firewalls if it lasts." },
	{ "timeout", 0, O365_E_TIMEOUT, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(no answer within smtp.timeout)",
	  "Retried with backoff." },
	{ "tls", 0, O365_E_TLS, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(TLS handshake or certificate verification failed)",
	  "Retried with backoff; if it lasts, check tls.ca_file and the clock and run "
	  "o365-sendmail --probe." },
	{ "protocol", 0, O365_E_PROTO, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(a malformed or unexpected reply)",
	  "Retried on a new session." },
	{ "too-long", 0, O365_E_TOOLONG, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(a reply over the line or line-count limit)",
	  "Retried on a new session." },
	{ "local-io", 0, O365_E_IO, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(the queued message could not be read)",
	  "Retried; check the queue file system." },
	{ "local-temp", 0, O365_E_TEMP, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(a temporary failure without an SMTP reply, e.g. the token endpoint is busy)",
	  "Retried with backoff." },
	{ "out-of-memory", 0, O365_E_NOMEM, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(out of memory)",
	  "Retried later; the host was short of memory." },
	/* must stay last: what nothing else matches */
	{ "unexpected", 0, 0, NULL, NULL, ANY, SM_ACT_RETRY,
	  "(a reply code outside 400..599 where a failure was reported)",
	  "Retried; report it if it lasts." },
};

#define NRULES	(sizeof(rules) / sizeof(rules[0]))

const struct sm_reply_rule *
sm_reply_rules(size_t *n_out)
{
	*n_out = NRULES;
	return rules;
}

const char *
sm_reply_action_name(enum sm_reply_action a)
{
	switch (a) {
	case SM_ACT_RETRY:		return "retry";
	case SM_ACT_HOLD_QUEUE:		return "hold-queue";
	case SM_ACT_HOLD_MESSAGE:	return "hold-message";
	case SM_ACT_WAIT_QUOTA:		return "wait-quota";
	case SM_ACT_BOUNCE:		return "bounce";
	}
	return "unknown";
}

long long
sm_reply_retry_delay(enum sm_reply_action a, int attempts)
{
	long long d, max;

	switch (a) {
	case SM_ACT_RETRY:
		d = 60;
		max = 3600;
		break;
	case SM_ACT_HOLD_QUEUE:
		d = 900;
		max = 6 * 3600;
		break;
	case SM_ACT_WAIT_QUOTA:
		return 3600;
	default:
		return -1;
	}
	while (--attempts > 0 && d < max)
		d *= 2;
	return d > max ? max : d;
}

/* Case-insensitive substring (strcasestr is a GNU extension). */
static int
reply_contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle), i;

	if (hay == NULL)
		return 0;
	for (; *hay != '\0'; hay++) {
		for (i = 0; i < n; i++)
			if (hay[i] == '\0' || tolower((unsigned char)hay[i]) !=
			    tolower((unsigned char)needle[i]))
				break;
		if (i == n)
			return 1;
	}
	return 0;
}

/* "5.7" matches "5.7.139"; "5.7.13" does not. */
static int
reply_enhanced_match(const char *have, const char *prefix)
{
	size_t n = strlen(prefix);

	if (have == NULL || strncmp(have, prefix, n) != 0)
		return 0;
	return have[n] == '\0' || have[n] == '.';
}

/* The row of a stage: rows for every stage match stage 0 too. */
static int
reply_stage_match(unsigned rule_stages, unsigned stage)
{
	if (stage == 0)
		return rule_stages == SM_STAGE_ANY;
	return (rule_stages & stage) != 0;
}

static const struct sm_reply_rule *
reply_fallback(void)
{
	return &rules[NRULES - 1];
}

const struct sm_reply_rule *
sm_reply_classify(int code, const char *enhanced, const char *text, unsigned stage)
{
	const struct sm_reply_rule *r;
	size_t i;

	if (code < 400 || code > 599)
		return reply_fallback();
	for (i = 0; i < NRULES; i++) {
		r = &rules[i];
		if (r->code == 0)
			continue;
		if (r->code < 10 ? code / 100 != r->code : code != r->code)
			continue;
		if (r->enhanced != NULL && !reply_enhanced_match(enhanced, r->enhanced))
			continue;
		if (r->pattern != NULL && !reply_contains(text, r->pattern))
			continue;
		if (!reply_stage_match(r->stages, stage))
			continue;
		return r;
	}
	return reply_fallback();
}

const struct sm_reply_rule *
sm_reply_classify_error(const struct o365_error *err, unsigned stage)
{
	size_t i;

	if (err == NULL || err->code == O365_OK)
		return reply_fallback();
	if (err->reply >= 400 && err->reply <= 599)
		return sm_reply_classify(err->reply, err->enhanced, err->why, stage);
	for (i = 0; i < NRULES; i++)
		if (rules[i].code == 0 && rules[i].local == (int)err->code &&
		    reply_stage_match(rules[i].stages, stage))
			return &rules[i];
	return reply_fallback();
}

/* ---- the manual ---- */

/* Text for roff: backslashes doubled, a leading '.' or '\'' protected, and
 * the table separator '|' replaced (no row uses it). */
static int
man_text(FILE *fp, const char *s)
{
	if (*s == '.' || *s == '\'')
		if (fputs("\\&", fp) == EOF)
			return -1;
	for (; *s != '\0'; s++) {
		if (*s == '\\') {
			if (fputs("\\e", fp) == EOF)
				return -1;
		} else if (*s == '-') {
			if (fputs("\\-", fp) == EOF)
				return -1;
		} else if (fputc(*s == '|' ? '/' : *s, fp) == EOF)
			return -1;
	}
	return 0;
}

static const char *
man_stages(unsigned s)
{
	switch (s) {
	case SM_STAGE_ANY:	return "any";
	case SESSION:		return "connect, AUTH";
	case SESSION | SM_STAGE_MAIL | SM_STAGE_DATA: return "all but RCPT";
	case SM_STAGE_MAIL | SM_STAGE_RCPT | SM_STAGE_DATA: return "MAIL, RCPT, DATA";
	default:		return "some";
	}
}

static int
man_code(FILE *fp, const struct sm_reply_rule *r)
{
	if (r->code == 0)
		return fputs("local", fp) == EOF ? -1 : 0;
	if (r->code < 10)
		return fprintf(fp, "%dxx", r->code) < 0 ? -1 : 0;
	return fprintf(fp, "%d", r->code) < 0 ? -1 : 0;
}

int
sm_reply_write_man(FILE *fp)
{
	const struct sm_reply_rule *r;
	size_t i;

	if (fputs(".\\\" Generated by sm_reply_write_man() from sendmail-shim/replies.c.\n"
	    ".TS\ntab(|);\nl l l l l l.\n"
	    "Rule|Reply|Enhanced|Text contains|Stage|Action\n_\n", fp) == EOF)
		return -1;
	for (i = 0; i < NRULES; i++) {
		r = &rules[i];
		if (man_text(fp, r->name) != 0 || fputc('|', fp) == EOF || man_code(fp, r) != 0 ||
		    fputc('|', fp) == EOF)
			return -1;
		if (r->code == 0) {
			if (man_text(fp, r->local != 0 ? o365_err_name(r->local) : "other") != 0)
				return -1;
		} else if (man_text(fp, r->enhanced != NULL ? r->enhanced : "-") != 0)
			return -1;
		if (fputc('|', fp) == EOF || man_text(fp, r->pattern != NULL ? r->pattern : "") != 0 ||
		    fprintf(fp, "|%s|%s\n", man_stages(r->stages), sm_reply_action_name(r->action)) < 0)
			return -1;
	}
	if (fputs(".TE\n", fp) == EOF)
		return -1;
	for (i = 0; i < NRULES; i++) {
		r = &rules[i];
		if (fputs(".TP\n.B ", fp) == EOF || man_text(fp, r->name) != 0 ||
		    fprintf(fp, " \\fR(%s)\\fP\n", sm_reply_action_name(r->action)) < 0 ||
		    man_text(fp, r->example) != 0 || fputs("\n.br\n", fp) == EOF ||
		    man_text(fp, r->advice) != 0 || fputc('\n', fp) == EOF)
			return -1;
	}
	return ferror(fp) ? -1 : 0;
}
