/* log.c: hand formatted lines to the front end's sink. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "o365/log.h"

void
o365_vlog(const struct o365_log *lg, int prio, const char *fmt, va_list ap)
{
	char line[1024];

	if (lg == NULL || lg->fn == NULL)
		return;
	if (prio == LOG_DEBUG && !lg->debug)
		return;
	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		return;
	lg->fn(lg->ctx, prio, line);
}

void
o365_log(const struct o365_log *lg, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	o365_vlog(lg, prio, fmt, ap);
	va_end(ap);
}

void
o365_log_trace(const struct o365_log *lg, const char *dir, const char *line, size_t len)
{
	char clean[512];

	if (lg == NULL || lg->fn == NULL || !lg->debug)
		return;
	o365_sanitize(clean, sizeof(clean), line, len);
	o365_log(lg, LOG_DEBUG, "%s: %s", dir, clean);
}

void
o365_log_syslog_sink(void *ctx, int prio, const char *msg)
{
	const struct o365_syslog_ctx *sc = ctx;
	int fac = sc != NULL ? sc->facility : LOG_USER;

	syslog(fac | prio, "%s", msg);
	if (sc != NULL && sc->to_stderr)
		fprintf(stderr, "%s: %s\n", sc->progname ? sc->progname : "o365", msg);
}
