/*
 * front.c: o365-sendmail, also installed as sendmail, mailq and newaliases.
 *
 * The program callers start for every message, so it stays small: it
 * handles the modes that never talk to the network (submission with -odq
 * and -odb, -bs, -bv, -bp, queue control; cli.c) and links neither OpenSSL
 * nor libcurl nor json-c.  For everything else (-q, --queue-runner, -odi,
 * --probe, --test-send, --check, --init, --oauth-login) it execs the back end,
 * SM_RUNNER_PATH, with argv unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

int
main(int argc, char **argv)
{
	struct sm_cli x;
	int rc;

	if ((rc = sm_cli_parse(&x, argc, argv)) >= 0)
		return rc;
	if (!sm_cli_is_intake(&x)) {
		execv(SM_RUNNER_PATH, argv);
		fprintf(stderr, "%s: cannot run %s: %s\n", SM_PROG, SM_RUNNER_PATH, strerror(errno));
		return EX_UNAVAILABLE;
	}
	if ((rc = sm_cli_open(&x)) == EX_OK)
		rc = sm_cli_run(&x);
	sm_cli_close(&x);
	return rc;
}
