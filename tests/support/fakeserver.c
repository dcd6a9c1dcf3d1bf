/* fakeserver.c: start tests/fake/fakeserver.py from C tests, read its transcript. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakeserver.h"
#include "testutil.h"

#define FAKE_MAX_ARGS	40
#define FAKE_MAX_TRANSCRIPT	(4 * 1024 * 1024)

static int
fake_write_file(const char *path, const char *text)
{
	size_t len = strlen(text), off = 0;
	ssize_t w;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		return -1;
	while (off < len) {
		w = write(fd, text + off, len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	return close(fd);
}

int
o365_fake_start(struct o365_fake *f, const char *script_text, const char *pki_dir,
    const char *cert_name, const char *tls_mode, ...)
{
	char script[300], cert[300], server[300];
	char *argv[FAKE_MAX_ARGS];
	const char *a;
	va_list ap;
	int n = 0;

	memset(f, 0, sizeof(*f));
	f->proc.pid = -1;
	f->proc.out_fd = -1;
	if (o365_test_tmpdir(f->dir, sizeof(f->dir)) != 0)
		return -1;
	if ((size_t)snprintf(script, sizeof(script), "%s/script.txt", f->dir) >= sizeof(script) ||
	    (size_t)snprintf(f->transcript, sizeof(f->transcript), "%s/transcript.txt",
	    f->dir) >= sizeof(f->transcript) ||
	    o365_test_src("tests/fake/fakeserver.py", server, sizeof(server)) == NULL ||
	    fake_write_file(script, script_text) != 0 ||
	    fake_write_file(f->transcript, "") != 0)
		goto fail;
	argv[n++] = "/usr/bin/python3";
	argv[n++] = server;
	argv[n++] = "--script";
	argv[n++] = script;
	argv[n++] = "--transcript";
	argv[n++] = f->transcript;
	argv[n++] = "--tls";
	argv[n++] = (char *)(tls_mode != NULL ? tls_mode : "none");
	if (pki_dir != NULL && cert_name != NULL) {
		if ((size_t)snprintf(cert, sizeof(cert), "%s/%s", pki_dir, cert_name) >= sizeof(cert))
			goto fail;
		argv[n++] = "--cert";
		argv[n++] = cert;
	}
	va_start(ap, tls_mode);
	while ((a = va_arg(ap, const char *)) != NULL && n < FAKE_MAX_ARGS - 1)
		argv[n++] = (char *)a;
	va_end(ap);
	if (a != NULL)
		goto fail;		/* too many arguments */
	argv[n] = NULL;
	if (o365_proc_start(&f->proc, argv, 1, 10000) != 0)
		goto fail;
	f->port = f->proc.port;
	return 0;
fail:
	o365_test_rmtree(f->dir);
	f->dir[0] = '\0';
	return -1;
}

static char *
fake_read_file(const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || st.st_size < 0 || st.st_size > FAKE_MAX_TRANSCRIPT ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto fail;
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

char *
o365_fake_finish(struct o365_fake *f, int timeout_ms)
{
	char *t = NULL;
	int status;

	if (f->proc.pid > 0 && o365_proc_wait(&f->proc, timeout_ms, &status) != 0) {
		fprintf(stderr, "fakeserver: still running after %d ms, killed\n", timeout_ms);
		(void)o365_proc_stop(&f->proc, 500);
	}
	if (f->dir[0] != '\0')
		t = fake_read_file(f->transcript);
	o365_fake_stop(f);
	return t;
}

void
o365_fake_stop(struct o365_fake *f)
{
	if (f->proc.pid > 0)
		(void)o365_proc_stop(&f->proc, 500);
	if (f->proc.out_fd != -1) {
		close(f->proc.out_fd);
		f->proc.out_fd = -1;
	}
	if (f->dir[0] != '\0') {
		o365_test_rmtree(f->dir);
		f->dir[0] = '\0';
	}
}

int
o365_fake_make_pki(char *dir_out, size_t size)
{
	if (o365_test_tmpdir(dir_out, size) != 0)
		return -1;
	if (o365_test_mkcerts(dir_out) != 0) {
		o365_test_rmtree(dir_out);
		dir_out[0] = '\0';
		return -1;
	}
	return 0;
}
