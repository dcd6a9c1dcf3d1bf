/* log.h: a log sink given by the front end; nothing here opens syslog. */
#ifndef O365_LOG_H
#define O365_LOG_H

#include <stdarg.h>
#include <syslog.h>
#include "err.h"

struct o365_log {
	/* Receives one formatted line (no newline).  prio is a syslog level. */
	void	(*fn)(void *ctx, int prio, const char *msg);
	void	 *ctx;
	int	  debug;	/* LOG_DEBUG lines are dropped unless set */
};

/* Format and hand one line to lg.  lg may be NULL (nothing logged). */
void	o365_log(const struct o365_log *lg, int prio, const char *fmt, ...) O365_PRINTF(3, 4);
void	o365_vlog(const struct o365_log *lg, int prio, const char *fmt, va_list ap) O365_PRINTF(3, 0);

/*
 * Log a protocol trace line at LOG_DEBUG: dir is "C" or "S", the text is
 * sanitised and capped.  Callers pass "<secret>" in place of any secret.
 */
void	o365_log_trace(const struct o365_log *lg, const char *dir, const char *line, size_t len);

/* A ready sink: syslog(facility|prio), plus stderr when to_stderr. */
struct o365_syslog_ctx {
	int	facility;	/* LOG_MAIL, LOG_AUTHPRIV */
	int	to_stderr;
	const char *progname;	/* stderr prefix */
};
void	o365_log_syslog_sink(void *ctx, int prio, const char *msg);

#endif
