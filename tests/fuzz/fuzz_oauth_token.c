/*
 * fuzz_oauth_token.c: the token and device code answer parsers.  The first
 * byte picks the HTTP status the answer came with and the parser; the rest is
 * the body.
 */
#include <stddef.h>
#include <stdint.h>

#include "o365/oauth.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = { 200, 400, 401, 429, 500, 503, 302, 0 };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct o365_oauth_error oerr;
	struct o365_devicecode dc;
	struct o365_token *tok = NULL;
	struct o365_error err;
	long status;

	if (size < 1)
		return 0;
	status = statuses[data[0] & 7];
	if (data[0] & 0x80) {
		if (o365_oauth_parse_devicecode(status, (const char *)data + 1, size - 1, &dc,
		    &oerr, &err) == O365_OK && (dc.device_code[0] == '\0' || dc.interval <= 0))
			__builtin_trap();	/* success must mean a usable answer */
		return 0;
	}
	if (o365_oauth_parse_token(status, (const char *)data + 1, size - 1, &tok, &oerr,
	    &err) == O365_OK) {
		if (tok == NULL || tok->access_token == NULL || tok->access_token->len == 0 ||
		    tok->expires_in <= 0)
			__builtin_trap();
		o365_token_free(&tok);
	} else if (tok != NULL) {
		__builtin_trap();
	}
	return 0;
}
