/* deadline.h: one monotonic deadline for a whole operation. */
#ifndef O365_DEADLINE_H
#define O365_DEADLINE_H

#include <time.h>

struct o365_deadline {
	struct timespec at;	/* CLOCK_MONOTONIC */
};

/* Set dl to now + ms. */
void	o365_deadline_in(struct o365_deadline *dl, unsigned int ms);

/* Milliseconds left, rounded up; 0 when passed.  Capped at INT_MAX. */
int	o365_deadline_left_ms(const struct o365_deadline *dl);

/* Non-zero when the deadline has passed. */
int	o365_deadline_expired(const struct o365_deadline *dl);

/* Milliseconds elapsed since *start (a CLOCK_MONOTONIC reading). */
long	o365_elapsed_ms(const struct timespec *start);

#endif
