/*
 * cli.h: what o365-sendmail (front.c) and o365-sendmail-runner (main.c)
 * share: the parsed command line, the loaded config, the logging set-up and
 * the modes that never touch the network (submission, -bs, -bv, -bp, queue
 * control).  cli.c is compiled into each program (SM_CONF_PATH,
 * SM_RUNNER_PATH and SM_TESTING differ between them), so it must not pull in
 * OpenSSL, libcurl or json-c: the front end links it without them.
 */
#ifndef O365_SM_CLI_H
#define O365_SM_CLI_H

#include <sys/types.h>

#include "o365/log.h"
#include "config.h"
#include "sm.h"

#ifndef SM_CONF_PATH
#define SM_CONF_PATH SM_DEFAULT_CONF
#endif
#define SM_PROG "o365-sendmail"
#define SM_VERSION "0.1.0"

struct sm_cli {
	struct sm_opts		 o;
	struct sm_conf		 c;
	struct o365_syslog_ctx	 sc;
	struct o365_log		 lg;
	struct sm_policy	 pol;
	char			 fqdn[256];
	uid_t			 quid;
	gid_t			 qgid;
	int			 have_quser;
	int			 loaded;	/* c holds a config to free */
	/* -odi after the message is queued (the runner sets it; NULL: never) */
	int			(*deliver_now)(struct sm_cli *x, const char *id);
};

/* One line on stderr and to syslog (LOG_MAIL | LOG_ERR). */
void	sm_cli_die(const char *fmt, ...) O365_PRINTF(1, 2);
int	sm_cli_exit(int code);			/* enum o365_err -> EX_ */
int	sm_cli_need_root(const char *what);	/* EX_OK or EX_NOPERM (said so) */
int	sm_cli_need_quser(struct sm_cli *x);	/* EX_OK or EX_CONFIG (said so) */

/*
 * Zero x, ignore SIGPIPE, umask 077, parse argv into x->o and answer what needs no config (--help, --version,
 * newaliases, -C from a non-root caller).  Returns -1 to go on, else the
 * exit code.
 */
int	sm_cli_parse(struct sm_cli *x, int argc, char **argv);

/* Logging, the SM_TESTING fault hook and the config.  EX_OK or the exit code. */
int	sm_cli_open(struct sm_cli *x);
void	sm_cli_close(struct sm_cli *x);

/* Non-zero when x->o's mode is one sm_cli_run handles (no network). */
int	sm_cli_is_intake(const struct sm_cli *x);

/* Run an intake mode; the exit code. */
int	sm_cli_run(struct sm_cli *x);

#endif
