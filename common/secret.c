/* secret.c: cleansed secrets and secret files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "o365/limits.h"
#include "o365/secret.h"

void
o365_cleanse(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

int
o365_secret_alloc(size_t len, struct o365_secret **out)
{
	struct o365_secret *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return O365_E_NOMEM;
	if ((s->data = malloc(len + 1)) == NULL) {
		free(s);
		return O365_E_NOMEM;
	}
	s->data[len] = '\0';
	s->len = len;
	*out = s;
	return O365_OK;
}

int
o365_secret_dup(const char *p, size_t len, struct o365_secret **out)
{
	int r;

	if ((r = o365_secret_alloc(len, out)) != O365_OK)
		return r;
	if (len > 0)
		memcpy((*out)->data, p, len);
	return O365_OK;
}

void
o365_secret_free(struct o365_secret **sp)
{
	struct o365_secret *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	if (s->data != NULL) {
		explicit_bzero(s->data, s->len + 1);
		free(s->data);
	}
	free(s);
	*sp = NULL;
}

int
o365_credential_check(const char *p, size_t len, const char *what, struct o365_error *err)
{
	if (p == NULL || len == 0)
		return o365_error_set(err, O365_E_INVAL, "empty %s refused", what);
	if (len > O365_MAX_CREDENTIAL)
		return o365_error_set(err, O365_E_INVAL, "%s longer than %d bytes refused",
		    what, O365_MAX_CREDENTIAL);
	if (memchr(p, '\r', len) != NULL || memchr(p, '\n', len) != NULL)
		return o365_error_set(err, O365_E_INVAL, "%s with CR or LF refused", what);
	if (memchr(p, '\0', len) != NULL)
		return o365_error_set(err, O365_E_INVAL, "%s with a NUL byte refused", what);
	return O365_OK;
}

int
o365_secret_read_file(const char *path, uid_t owner_uid, struct o365_secret **out,
    struct o365_error *err)
{
	struct o365_secret *s = NULL;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd, r;

	*out = NULL;
	/*
	 * O_NONBLOCK: opening a FIFO with no writer would block the caller (sshd,
	 * sudo) for ever; it is refused after fstat.  Regular files ignore it.
	 */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1)
		return o365_error_set(err, errno == ELOOP ? O365_E_CONFIG : O365_E_IO,
		    "secret file %s: %s", path,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
	if (fstat(fd, &st) == -1) {
		r = o365_error_set(err, O365_E_IO, "secret file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = o365_error_set(err, O365_E_CONFIG, "secret file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != owner_uid) {
		r = o365_error_set(err, O365_E_CONFIG, "secret file %s is owned by uid %u, not %u",
		    path, (unsigned)st.st_uid, (unsigned)owner_uid);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH | S_IXOTH)) {
		r = o365_error_set(err, O365_E_CONFIG,
		    "secret file %s is accessible by others (mode %04o); chmod o-rwx it",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > O365_MAX_SECRET_FILE) {
		r = o365_error_set(err, O365_E_CONFIG, "secret file %s is larger than %d bytes",
		    path, O365_MAX_SECRET_FILE);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->data = malloc(O365_MAX_SECRET_FILE + 2)) == NULL) {
		r = O365_E_NOMEM;
		goto out;
	}
	/* read to EOF, bounded: the file may grow between fstat and read */
	for (;;) {
		n = read(fd, s->data + got, O365_MAX_SECRET_FILE + 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = o365_error_set(err, O365_E_IO, "secret file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > O365_MAX_SECRET_FILE) {
			r = o365_error_set(err, O365_E_CONFIG, "secret file %s is larger than %d bytes",
			    path, O365_MAX_SECRET_FILE);
			goto out;
		}
	}
	/* one line end, LF or CRLF; a lone CR stays (and fails the credential rule) */
	if (got > 0 && s->data[got - 1] == '\n') {
		got--;
		if (got > 0 && s->data[got - 1] == '\r')
			got--;
	}
	s->data[got] = '\0';
	s->len = got;
	if (got == 0) {
		r = o365_error_set(err, O365_E_CONFIG, "secret file %s is empty", path);
		goto out;
	}
	if (memchr(s->data, '\0', got) != NULL) {
		r = o365_error_set(err, O365_E_CONFIG, "secret file %s holds a NUL byte", path);
		goto out;
	}
	*out = s;
	s = NULL;
	r = O365_OK;
out:
	if (s != NULL && s->data != NULL) {
		explicit_bzero(s->data, O365_MAX_SECRET_FILE + 2);
		free(s->data);
		s->data = NULL;
	}
	free(s);
	close(fd);
	return r;
}
