/*
 * fuzz_smtp_reply.c: the SMTP reply-line, enhanced-code and EHLO-keyword
 * parsers.  The input is split at LF; each piece is one reply line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "o365/smtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_line(const char *line, size_t len)
{
	struct o365_smtp_caps caps;
	const char *text;
	char enh[12], *copy;
	int code, more;
	size_t n;

	if (o365_smtp_parse_reply_line(line, len, &code, &more, &text) != O365_OK)
		return;
	if (code < 200 || code > 559 || (more != 0 && more != 1) || text < line ||
	    text > line + len)
		abort();
	/* the other parsers want NUL-terminated text */
	n = len - (size_t)(text - line);
	if ((copy = malloc(n + 1)) == NULL)
		return;
	memcpy(copy, text, n);
	copy[n] = '\0';
	n = o365_smtp_parse_enhanced(copy, enh);
	if (n > strlen(copy) || strlen(enh) > 9 || (n == 0) != (enh[0] == '\0'))
		abort();
	memset(&caps, 0, sizeof(caps));
	o365_smtp_parse_ehlo_line(copy, &caps);
	if (caps.auth & ~7u)
		abort();
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		one_line(p, (size_t)(nl - p));
		p = nl + 1;
	}
	return 0;
}
