/* spawn.c: start and stop helper processes for tests, with bounded waits. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int
o365_proc_start(struct o365_proc *p, char *const argv[], int want_port, int timeout_ms)
{
	char line[128];
	size_t used = 0;
	long end = now_ms() + timeout_ms;
	int pfd[2], devnull;
	pid_t pid;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->out_fd = -1;
	if (pipe2(pfd, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		if ((devnull = open("/dev/null", O_RDONLY)) != -1)
			dup2(devnull, 0);
		dup2(pfd[1], 1);
		setpgid(0, 0);		/* so stop can signal the whole group */
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	p->pid = pid;
	p->out_fd = pfd[0];
	(void)fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
	if (!want_port)
		return 0;
	/* read the first line byte by byte so the rest stays in the pipe */
	while (used < sizeof(line) - 1) {
		struct pollfd pp = { .fd = pfd[0], .events = POLLIN };
		long left = end - now_ms();
		ssize_t n;

		if (left <= 0)
			break;
		if (poll(&pp, 1, (int)left) <= 0)
			continue;
		n = read(pfd[0], line + used, 1);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		if (line[used] == '\n') {
			line[used] = '\0';
			if (sscanf(line, "PORT %d", &p->port) == 1 && p->port > 0 && p->port < 65536)
				return 0;
			break;
		}
		used++;
	}
	fprintf(stderr, "spawn: %s did not report its port\n", argv[0]);
	o365_proc_stop(p, 500);
	return -1;
}

int
o365_proc_wait(struct o365_proc *p, int timeout_ms, int *status)
{
	long end = now_ms() + timeout_ms;
	pid_t r;

	if (p->pid <= 0)
		return -1;
	for (;;) {
		r = waitpid(p->pid, status, WNOHANG);
		if (r == p->pid) {
			p->pid = -1;
			if (p->out_fd != -1) {
				close(p->out_fd);
				p->out_fd = -1;
			}
			return 0;
		}
		if (r == -1 && errno != EINTR)
			return -1;
		if (now_ms() >= end)
			return -1;
		usleep(10000);
	}
}

int
o365_proc_stop(struct o365_proc *p, int grace_ms)
{
	int status = -1;

	if (p->pid <= 0)
		return -1;
	kill(-p->pid, SIGTERM);
	kill(p->pid, SIGTERM);
	if (o365_proc_wait(p, grace_ms, &status) != 0) {
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		if (o365_proc_wait(p, 5000, &status) != 0)
			return -1;
	}
	return status;
}

int
o365_test_tmpdir(char *path_out, size_t size)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if ((size_t)snprintf(path_out, size, "%s/o365-test.XXXXXX", base) >= size)
		return -1;
	return mkdtemp(path_out) == NULL ? -1 : 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) == -1 ? 0 : 0;
	unlink(path);
	return 0;
}

void
o365_test_rmtree(const char *path)
{
	if (path != NULL && *path != '\0')
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
o365_test_src(const char *rel, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "%s/%s", O365_SOURCE_DIR, rel) >= size)
		return NULL;
	return buf;
}
