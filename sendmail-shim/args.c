/*
 * args.c: the sendmail command line.
 *
 * Callers pass sendmail(8)'s historical flags (cron: -FCronDaemon -i
 * -B8BITMIME -oem user; bsd-mailx: -i -t [-f addr]; git send-email:
 * [-f addr] -i rcpt...; PHP: -t -i; Symfony: -bs or -t -i -fADDR).  An option
 * takes its argument attached (-fADDR) or as the next word (-f ADDR), like
 * getopt(3).  Parsing stops at "--" or at the first word that is not an
 * option, so a recipient that starts with '-' is never an option.  What does
 * not apply to a relay is accepted and ignored; anything unknown is an error,
 * never a silent send.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sm.h"

static int args_fail(char *why, size_t whysz, const char *fmt, ...) O365_PRINTF(3, 4);

static int
args_fail(char *why, size_t whysz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whysz, fmt, ap);
	va_end(ap);
	return -1;
}

/* -o's argument: sendmail's one-letter options (-oi, -oem, -odb) and their
 * long names (-o x, -O Name=value) that a relay has no use for. */
static int
args_o(struct sm_opts *o, const char *v, char *why, size_t whysz)
{
	switch (v[0]) {
	case 'i':
		if (v[1] != '\0')
			break;
		o->ignore_dots = 1;
		return 0;
	case 'd':
		if (strcmp(v, "di") == 0)
			o->deliv = SM_DELIV_INTERACTIVE;
		else if (strcmp(v, "db") == 0)
			o->deliv = SM_DELIV_BACKGROUND;
		else if (strcmp(v, "dq") == 0 || strcmp(v, "dd") == 0)
			o->deliv = SM_DELIV_QUEUE;
		else
			return args_fail(why, whysz, "unknown delivery mode -o%s", v);
		return 0;
	case '\0':
		return args_fail(why, whysz, "option -o needs a value");
	default:
		break;
	}
	/* -oem -oep -oeq -oee -oew (error modes: errors come back as bounces),
	 * -om (me too), -o7/-o8, -oA/-oL/-oQ (alias file, log level, queue
	 * directory: configured in sendmail.conf, not by callers) */
	return 0;
}

int
sm_args_parse(int argc, char *const argv[], struct sm_opts *o, char *why, size_t whysz)
{
	const char *prog, *arg, *val;
	int i;

	memset(o, 0, sizeof(*o));
	o->mode = SM_MODE_SEND;
	o->deliv = SM_DELIV_BACKGROUND;
	if (whysz > 0)
		why[0] = '\0';
	prog = argc > 0 && argv[0] != NULL ? argv[0] : "sendmail";
	if (strrchr(prog, '/') != NULL)
		prog = strrchr(prog, '/') + 1;
	if (strcmp(prog, "mailq") == 0)
		o->mode = SM_MODE_LIST;
	else if (strcmp(prog, "newaliases") == 0)
		o->mode = SM_MODE_NEWALIASES;

	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (arg[0] != '-' || arg[1] == '\0')
			break;			/* the first recipient */
		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[1] == '-') {
			if (strcmp(arg, "--init") == 0) {
				o->mode = SM_MODE_INIT;
				/* an optional directory, never an option */
				if (i + 1 < argc && argv[i + 1][0] != '-')
					o->init_dir = argv[++i];
			} else if (strcmp(arg, "--queue-runner") == 0) {
				o->mode = SM_MODE_RUNQ;	/* timer, path unit, cron */
				o->force = 0;
			} else if (strcmp(arg, "--background-runner") == 0) {
				o->mode = SM_MODE_RUNQ;	/* internal: what -odb starts */
				o->force = 0;
				o->background = 1;
			} else if (strcmp(arg, "--hold") == 0 || strcmp(arg, "--release") == 0 ||
			    strcmp(arg, "--delete") == 0 || strcmp(arg, "--retry") == 0) {
				if (i + 1 >= argc)
					return args_fail(why, whysz, "%s needs a queue id or ALL", arg);
				o->mode = SM_MODE_CONTROL;
				o->ctl_op = arg[2] == 'h' ? 0 : arg[2] == 'd' ? 2 : arg[4] == 'l' ? 1 : 3;
				o->ctl_id = argv[++i];
			} else if (strcmp(arg, "--probe") == 0) {
				o->mode = SM_MODE_PROBE;
			} else if (strcmp(arg, "--test-send") == 0) {
				if (i + 1 >= argc || argv[i + 1][0] == '\0')
					return args_fail(why, whysz, "--test-send needs an address");
				o->mode = SM_MODE_TEST_SEND;
				o->test_rcpt = argv[++i];
			} else if (strcmp(arg, "--failed") == 0) {
				o->mode = SM_MODE_FAILED;
			} else if (strcmp(arg, "--check") == 0) {
				o->mode = SM_MODE_CHECK;
			} else if (strcmp(arg, "--oauth-login") == 0) {
				o->mode = SM_MODE_OAUTH_LOGIN;
			} else if (strcmp(arg, "--help") == 0) {
				o->mode = SM_MODE_HELP;
			} else if (strcmp(arg, "--version") == 0) {
				o->mode = SM_MODE_VERSION;
			} else {
				return args_fail(why, whysz, "unknown option %s", arg);
			}
			continue;
		}
		/* letters that take a value: attached or the next word */
		if (strchr("fFrCoOBNRVLXhb", arg[1]) != NULL) {
			if (arg[2] != '\0') {
				val = arg + 2;
			} else if (i + 1 < argc) {
				val = argv[++i];
			} else {
				return args_fail(why, whysz, "option %s needs a value", arg);
			}
			switch (arg[1]) {
			case 'f':
			case 'r':
				if (o->sender != NULL)
					return args_fail(why, whysz, "more than one sender (%s)", arg);
				o->sender = val;
				break;
			case 'F':
				o->fullname = val;
				break;
			case 'C':
				o->config = val;
				break;
			case 'o':
				if (args_o(o, val, why, whysz) != 0)
					return -1;
				break;
			case 'b':
				if (strcmp(val, "m") == 0)
					o->mode = SM_MODE_SEND;
				else if (strcmp(val, "p") == 0)
					o->mode = SM_MODE_LIST;
				else if (strcmp(val, "s") == 0)
					o->mode = SM_MODE_SMTP;
				else if (strcmp(val, "v") == 0)
					o->mode = SM_MODE_VERIFY;
				else if (strcmp(val, "i") == 0)
					o->mode = SM_MODE_NEWALIASES;
				else
					return args_fail(why, whysz,
					    "unsupported mode -b%s (supported: -bm -bp -bs -bv -bi)", val);
				break;
			default:
				/* -O option=value, -B 8BITMIME, -N dsn, -R ret, -V envid,
				 * -L label, -X logfile, -h hops: nothing to do for a relay */
				break;
			}
			continue;
		}
		switch (arg[1]) {
		case 'q':
			if (arg[2] != '\0')
				return args_fail(why, whysz,
				    "%s: not a daemon; use plain -q (the systemd timer or cron runs it)", arg);
			o->mode = SM_MODE_RUNQ;
			o->force = 1;
			continue;
		case 't':
		case 'i':
		case 'v':
		case 'G':
		case 'U':
		case 'm':
		case 'n':
			break;
		default:
			return args_fail(why, whysz, "unknown option %s", arg);
		}
		/* flag letters may be grouped: -ti, -it, -vt */
		for (val = arg + 1; *val != '\0'; val++) {
			switch (*val) {
			case 't': o->from_headers = 1; break;
			case 'i': o->ignore_dots = 1; break;
			case 'v': o->verbose = 1; break;
			case 'G': case 'U': case 'm': case 'n': break;
			default:
				return args_fail(why, whysz, "unknown option %s", arg);
			}
		}
	}
	o->rcpts = argv + i;
	o->nrcpt = (size_t)(argc - i);
	if (o->nrcpt > 0 && o->mode != SM_MODE_SEND && o->mode != SM_MODE_VERIFY &&
	    o->mode != SM_MODE_SMTP)
		return args_fail(why, whysz, "unexpected argument %s for this mode", argv[i]);
	if (o->mode == SM_MODE_SMTP && o->nrcpt > 0)
		return args_fail(why, whysz, "-bs takes no recipients (%s)", argv[i]);
	if (o->mode == SM_MODE_VERIFY && o->nrcpt == 0)
		return args_fail(why, whysz, "-bv needs at least one address");
	if (o->mode == SM_MODE_SEND && o->nrcpt == 0 && !o->from_headers)
		return args_fail(why, whysz, "no recipients given (use -t to read them from the headers)");
	return 0;
}
