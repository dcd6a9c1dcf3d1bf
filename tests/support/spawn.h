/* spawn.h: start a helper process (fake server, Dovecot wrapper) for a test. */
#ifndef O365_TEST_SPAWN_H
#define O365_TEST_SPAWN_H

#include <sys/types.h>

struct o365_proc {
	pid_t	pid;
	int	port;		/* from the child's first stdout line "PORT <n>", or 0 */
	int	out_fd;		/* the rest of the child's stdout (non-blocking), or -1 */
};

/*
 * Start argv (argv[0] is looked up in PATH) with stdin from /dev/null and
 * stderr inherited.  When want_port is set, wait up to timeout_ms for the
 * child to print "PORT <n>\n" as its first line.  Returns 0, or -1 (child
 * killed and reaped).
 */
int	o365_proc_start(struct o365_proc *p, char *const argv[], int want_port, int timeout_ms);

/* SIGTERM, then SIGKILL after grace_ms; reaps.  Returns the exit status
 * (as waitpid) or -1.  Safe to call twice. */
int	o365_proc_stop(struct o365_proc *p, int grace_ms);

/* Wait up to timeout_ms for the child to exit by itself; 0 and *status, or -1. */
int	o365_proc_wait(struct o365_proc *p, int timeout_ms, int *status);

/* Make a fresh temporary directory under $TMPDIR (or /tmp); path_out gets it. */
int	o365_test_tmpdir(char *path_out, size_t size);

/* rm -r of a tree made by a test (no symlinks followed). */
void	o365_test_rmtree(const char *path);

/* Absolute path of a file under the source tree (O365_SOURCE_DIR). */
const char *o365_test_src(const char *rel, char *buf, size_t size);

#endif
