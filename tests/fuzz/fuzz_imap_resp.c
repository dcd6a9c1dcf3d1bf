/*
 * fuzz_imap_resp.c: o365_imap_parse_line on arbitrary bytes.  Every pointer
 * the parser hands back must lie inside the input, and the result must be
 * O365_OK or O365_E_PROTO.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "o365/imap.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_in(const char *base, size_t size, const char *p, size_t n)
{
	if (p == NULL)
		return;
	if (p < base || p > base + size || n > (size_t)(base + size - p))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct o365_imap_resp r;
	char *copy;
	int rc;

	/* an exact-size copy: ASan catches any read past the end */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	rc = o365_imap_parse_line(copy, size, &r);
	if (rc != O365_OK && rc != O365_E_PROTO)
		abort();
	if (rc == O365_OK) {
		if (r.text_len > 0)
			check_in(copy, size, r.text, r.text_len);
		check_in(copy, size, r.data, r.data_len);
		check_in(copy, size, r.code_args, r.code_args_len);
		if (memchr(r.tag, '\0', sizeof(r.tag)) == NULL ||
		    memchr(r.code, '\0', sizeof(r.code)) == NULL)
			abort();
		if (r.kind == O365_IMAP_TAGGED && (r.tag[0] == '\0' ||
		    (r.status != O365_IMAP_OK && r.status != O365_IMAP_NO && r.status != O365_IMAP_BAD)))
			abort();
		if (r.has_literal && r.kind != O365_IMAP_UNTAGGED)
			abort();
	}
	free(copy);
	return 0;
}
