/*
 * probe.c: o365-sendmail --probe (see probe.h).
 *
 * The transcript is the SMTP engine's own trace (LOG_DEBUG "C: "/"S: "
 * lines, AUTH already shown as <secret>), taken through a log sink; the
 * capabilities before STARTTLS, which the engine forgets on purpose, are
 * read back from that trace.  As a second guard the sink masks the secret
 * itself wherever it would appear.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "o365/conn.h"
#include "o365/deadline.h"
#include "o365/log.h"
#include "o365/sasl.h"
#include "probe.h"
#include "replies.h"


struct probe_sink {
	FILE		*out;
	const char	*secret;
	size_t		 secretlen;
	int		 tls_up;	/* capabilities now are those after TLS */
	int		 in_ehlo;	/* between "C: EHLO" and the last 250 line */
	int		 ehlo_first;	/* the next 250 line is the server's name */
	char		 caps[2][1024];	/* [0] before TLS, [1] with TLS */
	int		 failed;	/* a write to out failed */
};

int
sm_put_masked(FILE *out, const char *s, const char *secret, size_t secretlen)
{
	const char *hit;
	int failed = 0;

	while (secret != NULL && secretlen >= SM_MASK_MIN &&
	    (hit = memmem(s, strlen(s), secret, secretlen)) != NULL) {
		if (fwrite(s, 1, (size_t)(hit - s), out) != (size_t)(hit - s) ||
		    fputs("<secret>", out) == EOF)
			failed = 1;
		s = hit + secretlen;
	}
	if (fputs(s, out) == EOF)
		failed = 1;
	return failed ? -1 : 0;
}

static void
probe_put_masked(struct probe_sink *ps, const char *s)
{
	if (sm_put_masked(ps->out, s, ps->secret, ps->secretlen) != 0)
		ps->failed = 1;
}

static void
probe_caps_add(struct probe_sink *ps, const char *kw)
{
	char *c = ps->caps[ps->tls_up ? 1 : 0];
	size_t len = strlen(c);
	int n;

	n = snprintf(c + len, sizeof(ps->caps[0]) - len, "%s%s", len > 0 ? ", " : "", kw);
	if (n < 0 || (size_t)n >= sizeof(ps->caps[0]) - len)
		c[len] = '\0';		/* drop a keyword that does not fit */
}

static void
probe_sink_fn(void *ctx, int prio, const char *msg)
{
	struct probe_sink *ps = ctx;

	(void)prio;
	if (strncmp(msg, "C: EHLO ", 8) == 0) {
		ps->in_ehlo = ps->ehlo_first = 1;
	} else if (ps->in_ehlo && (strncmp(msg, "S: 250-", 7) == 0 ||
	    strncmp(msg, "S: 250 ", 7) == 0)) {
		if (!ps->ehlo_first)
			probe_caps_add(ps, msg + 7);
		ps->ehlo_first = 0;
		if (msg[6] == ' ')
			ps->in_ehlo = 0;
	} else if (strncmp(msg, "smtp: TLS is up", 15) == 0) {
		ps->tls_up = 1;
		ps->caps[1][0] = '\0';
	}
	probe_put_masked(ps, "  ");
	probe_put_masked(ps, msg);
	probe_put_masked(ps, "\n");
}

static void
probe_printf(struct probe_sink *ps, const char *fmt, ...) O365_PRINTF(2, 3);

static void
probe_printf(struct probe_sink *ps, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		ps->failed = 1;
	else
		probe_put_masked(ps, line);	/* a cut line is still printed */
}

/* What the reply table says about a failure. */
static void
probe_advice(struct probe_sink *ps, const struct o365_error *err, unsigned stage)
{
	const struct sm_reply_rule *r = sm_reply_classify_error(err, stage);

	probe_printf(ps, "Queue action: %s (rule %s)\nAdvice: %s\n",
	    sm_reply_action_name(r->action), r->name, r->advice);
}

static void
probe_tls(struct probe_sink *ps, struct o365_smtp *s)
{
	struct o365_tls_info ti;

	if (o365_conn_tls_info(o365_smtp_conn(s), &ti) != O365_OK) {
		probe_printf(ps, "TLS: not in use\n");
		return;
	}
	probe_printf(ps, "TLS: %s, cipher %s\n", ti.version, ti.cipher);
	probe_printf(ps, "Certificate: %s\n  issuer: %s\n  not after: %s\n", ti.subject, ti.issuer,
	    ti.not_after);
	probe_printf(ps, "  chain: %d certificate%s, verification: %s\n", ti.chain_len,
	    ti.chain_len == 1 ? "" : "s", ti.verify);
}

int
sm_probe(const struct sm_probe_opts *o, FILE *out, struct o365_error *err)
{
	struct probe_sink ps;
	struct o365_log lg = { probe_sink_fn, &ps, 1 };
	struct o365_smtp_opts so;
	struct o365_deadline dl;
	struct o365_smtp *s = NULL;
	const struct o365_smtp_reply *rp;
	int r;

	memset(&ps, 0, sizeof(ps));
	ps.out = out;
	ps.secret = o->secret;
	ps.secretlen = o->secret != NULL ? o->secretlen : 0;
	ps.tls_up = o->tls_mode == O365_SMTP_IMPLICIT;
	memset(&so, 0, sizeof(so));
	so.host = o->host;
	so.port = o->port;
	so.tls_mode = o->tls_mode;
	so.tls = o->tls;
	so.helo = o->helo;
	o365_deadline_in(&dl, o->timeout_ms);

	probe_printf(&ps, "Probing %s port %u (%s), no mail will be sent\n",
	    o->host != NULL ? o->host : "(none)", o->port,
	    o->tls_mode == O365_SMTP_IMPLICIT ? "implicit TLS" : "STARTTLS");
	r = o365_smtp_connect(&so, &dl, &lg, &s, err);
	if (o->tls_mode == O365_SMTP_STARTTLS)
		probe_printf(&ps, "Capabilities before STARTTLS: %s\n",
		    ps.caps[0][0] != '\0' ? ps.caps[0] : "(none seen)");
	if (r != O365_OK) {
		probe_printf(&ps, "Connection failed: %s\n", err != NULL ? err->why : "");
		if (err != NULL)
			probe_advice(&ps, err, SM_STAGE_CONNECT);
		goto out;
	}
	probe_tls(&ps, s);
	probe_printf(&ps, "Capabilities%s: %s\n",
	    o->tls_mode == O365_SMTP_STARTTLS ? " after STARTTLS" : "",
	    ps.caps[1][0] != '\0' ? ps.caps[1] : "(none seen)");
	if (o->auth_user == NULL || o->secret == NULL) {
		probe_printf(&ps, "AUTH: not tried (no user or secret given)\n");
		goto out;
	}
	if (!(o365_smtp_caps(s)->auth & (unsigned)o->auth_mech)) {
		r = o365_error_set(err, O365_E_CONFIG, "the server does not offer AUTH %s",
		    o365_sasl_mech_name(o->auth_mech));
		probe_printf(&ps, "AUTH %s: not offered by the server: check auth.mechanism\n",
		    o365_sasl_mech_name(o->auth_mech));
		goto out;
	}
	r = o365_smtp_auth(s, o->auth_mech, o->auth_user, o->secret, o->secretlen, &dl, err);
	if (r == O365_OK) {
		rp = o365_smtp_last_reply(s);
		probe_printf(&ps, "AUTH %s as %s: ok (%d %s%s%s)\n", o365_sasl_mech_name(o->auth_mech),
		    o->auth_user, rp->code, rp->enhanced, rp->enhanced[0] ? " " : "", rp->text);
	} else {
		probe_printf(&ps, "AUTH %s as %s: failed: %s\n", o365_sasl_mech_name(o->auth_mech),
		    o->auth_user, err != NULL ? err->why : "");
		if (err != NULL)
			probe_advice(&ps, err, SM_STAGE_AUTH);
	}
out:
	if (s != NULL) {
		o365_deadline_in(&dl, 2000);
		o365_smtp_quit(&s, &dl);
	}
	probe_printf(&ps, "Result: %s\n", r == O365_OK ? "ok" : o365_err_name(r));
	if (fflush(out) == EOF || ps.failed) {
		if (r == O365_OK)
			r = o365_error_set(err, O365_E_IO, "cannot write the probe report");
	}
	return r;
}
