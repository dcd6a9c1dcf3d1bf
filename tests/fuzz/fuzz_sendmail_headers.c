/*
 * fuzz_sendmail_headers.c: o365-sendmail's header block as root's pickup
 * sees it (untrusted bytes from any local user): read through the stdin
 * reader with and without the dot rule, -t recipients, Bcc removal, From
 * rewriting in every mode, and writing it out.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sm.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum sm_rewrite modes[] = { SM_REWRITE_LOCAL, SM_REWRITE_ALWAYS, SM_REWRITE_NEVER };
	struct sm_ident id = { "root", "Full \"Name\"", NULL, "web1.example.com" };
	struct sm_addrs rc = { 0 };
	struct sm_hdrs h;
	struct sm_in in;
	struct sm_out *o;
	int fd, out, rw, k;

	if (size > 256 * 1024 || (o = malloc(sizeof(*o))) == NULL)
		return 0;
	if ((fd = memfd_create("fuzz", MFD_CLOEXEC)) == -1) {
		free(o);
		return 0;
	}
	out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (write(fd, data, size) == (ssize_t)size) {
		for (k = 0; k < 3; k++) {
			if (lseek(fd, 0, SEEK_SET) != 0 || sm_in_init(&in, fd, k != 1, 64) != O365_OK)
				break;
			if (sm_hdrs_read(&in, &h) == O365_OK) {
				if (sm_addrs_parse(&rc, (const char *)data, size) != O365_OK)
					sm_addrs_free(&rc);
				if (sm_hdrs_recipients(&h, &rc) == O365_OK)
					sm_hdrs_drop_bcc(&h);
				if (sm_hdrs_complete(&h, &id) == O365_OK &&
				    sm_hdrs_rewrite(&h, modes[k], "relay@contoso.com", id.fqdn, &rw) == O365_OK) {
					sm_out_init(o, out);
					if (sm_hdrs_write(&h, o) == O365_OK && sm_copy_body(&in, o, 1 << 20) == O365_OK &&
					    sm_out_flush(o) != O365_OK)
						abort();	/* /dev/null takes everything */
				}
			}
			sm_hdrs_free(&h);
			sm_addrs_free(&rc);
			sm_in_free(&in);
		}
	}
	if (out != -1)
		close(out);
	close(fd);
	free(o);
	return 0;
}
