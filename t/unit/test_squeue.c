/* test_squeue: a subscriber queue keeps its messages in order, whole,
 * within its count and byte bounds, refuses or evicts as asked, and
 * accounts for every message: pushed = popped + dropped + held. */
#include <stdlib.h>
#include <string.h>

#include "squeue.h"
#include "tap.h"

/* Message k: 4 bytes of k, then (k * 7 % 61) bytes of (k & 0xff). */
static size_t
make(unsigned char *p, unsigned k)
{
	size_t extra = (size_t)k * 7 % 61;

	memcpy(p, &k, 4);
	memset(p + 4, (int)(k & 0xff), extra);
	return 4 + extra;
}

static int
check(const unsigned char *p, size_t n, unsigned k)
{
	unsigned char want[80];

	return n == make(want, k) && memcmp(p, want, n) == 0;
}

int
main(void)
{
	struct squeue q;
	unsigned char buf[80];
	const unsigned char *p;
	size_t n, i;
	unsigned k, next, bad;
	int rc;

	ok(squeue_init(&q, 0, 100) == -1, "a count of 0 is refused");
	ok(squeue_init(&q, 10, 4) == -1, "too few bytes is refused");

	/* Refusing: count bound. */
	squeue_init(&q, 5, 4096);
	for (k = 0; k < 5; k++)
		squeue_push(&q, buf, make(buf, k));
	ok(squeue_push(&q, buf, make(buf, 5)) == -1 && q.dropped == 1,
	    "a sixth message is refused and counted");
	for (k = 0, bad = 0; (p = squeue_peek(&q, &n)) != NULL; k++) {
		bad += !check(p, n, k);
		squeue_pop(&q);
	}
	ok(k == 5 && bad == 0, "the five come out whole and in order");
	squeue_release(&q);

	/* Refusing: byte bound, and a message over half of it. */
	squeue_init(&q, 1000, 256);
	ok(squeue_push(&q, buf, 129) == -1, "a message over half the bytes is refused");
	for (k = 0; squeue_push(&q, buf, make(buf, k)) == 0; k++)
		;
	ok(q.used <= q.cap && k > 2, "filled to the byte bound (%u messages, %zu bytes)",
	    k, q.used);
	squeue_release(&q);

	/* Evicting, with wrap-around: a long run through a small buffer. */
	squeue_init(&q, 50, 1000);
	next = 0;
	bad = 0;
	for (k = 0; k < 100000; k++) {
		rc = squeue_push_evict(&q, buf, make(buf, k));
		if (rc < 0)
			bad++;
		/* Read a few now and then: the oldest are evicted between. */
		if (k % 13 == 0) {
			for (i = 0; i < 3 && (p = squeue_peek(&q, &n)) != NULL; i++) {
				unsigned got;

				memcpy(&got, p, 4);
				if (got < next || !check(p, n, got))
					bad++;
				next = got + 1;
				squeue_pop(&q);
			}
		}
		if (q.used > q.cap || squeue_count(&q) > 50)
			bad++;
	}
	while ((p = squeue_peek(&q, &n)) != NULL) {
		unsigned got;

		memcpy(&got, p, 4);
		if (got < next || !check(p, n, got))
			bad++;
		next = got + 1;
		squeue_pop(&q);
	}
	ok(bad == 0, "evicting: messages whole, in order, within bounds");
	ok(next == 100000, "the newest message survives");
	ok(q.pushed == 100000 && q.popped + q.dropped == q.pushed,
	    "every message accounted: pushed %llu = popped %llu + dropped %llu",
	    (unsigned long long)q.pushed, (unsigned long long)q.popped,
	    (unsigned long long)q.dropped);

	/* Clearing counts what was held. */
	for (k = 0; k < 10; k++)
		squeue_push(&q, buf, make(buf, k));
	{
		uint64_t before = q.dropped;

		squeue_clear(&q);
		ok(squeue_count(&q) == 0 && q.dropped == before + 10,
		    "clear drops and counts the 10 held");
	}
	ok(squeue_push(&q, buf, make(buf, 7)) == 0 &&
	    (p = squeue_peek(&q, &n)) != NULL && check(p, n, 7),
	    "usable after a clear");
	squeue_release(&q);
	return tap_done();
}
