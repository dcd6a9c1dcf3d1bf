/* deadline.c: CLOCK_MONOTONIC deadlines. */
#include <limits.h>
#include <time.h>

#include "o365/deadline.h"

void
o365_deadline_in(struct o365_deadline *dl, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, &dl->at);
	dl->at.tv_sec += ms / 1000;
	dl->at.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl->at.tv_nsec >= 1000000000L) {
		dl->at.tv_sec++;
		dl->at.tv_nsec -= 1000000000L;
	}
}

int
o365_deadline_left_ms(const struct o365_deadline *dl)
{
	struct timespec now;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (long long)(dl->at.tv_sec - now.tv_sec) * 1000000000LL +
	    (dl->at.tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	ns = (ns + 999999) / 1000000;
	return ns > INT_MAX ? INT_MAX : (int)ns;
}

int
o365_deadline_expired(const struct o365_deadline *dl)
{
	return o365_deadline_left_ms(dl) == 0;
}

long
o365_elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)((now.tv_sec - start->tv_sec) * 1000L +
	    (now.tv_nsec - start->tv_nsec) / 1000000L);
}
