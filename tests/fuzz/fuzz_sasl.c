/*
 * fuzz_sasl.c: arbitrary bytes as base64 from a server (an AUTH LOGIN
 * challenge).  The decoder is strict, so every text it accepts is canonical:
 * encoding the result must give back exactly the input.  Then the bytes are
 * used as credentials, which must be built or refused cleanly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "o365/sasl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct o365_secret *d = NULL, *e = NULL, *b = NULL;
	struct o365_error err;
	int r;

	r = o365_base64_decode((const char *)data, size, &d);
	if (r != O365_OK) {
		if (d != NULL)
			abort();
	} else {
		if (o365_base64_encode(d->data, d->len, &e) != O365_OK ||
		    e->len != size || memcmp(e->data, data, size) != 0)
			abort();
		/* the decoded bytes as a user name and as a password / token */
		if (o365_sasl_plain("u@example.com", d->data, d->len, &b, &err) == O365_OK)
			o365_secret_free(&b);
		else if (b != NULL)
			abort();
		if (o365_sasl_xoauth2(d->data, "tok", 3, &b, &err) == O365_OK)
			o365_secret_free(&b);
		else if (b != NULL)
			abort();
		if (o365_sasl_xoauth2("u", d->data, d->len, &b, &err) == O365_OK)
			o365_secret_free(&b);
		else if (b != NULL)
			abort();
	}
	o365_secret_free(&d);
	o365_secret_free(&e);
	return 0;
}
