/* fuzz_conv: arbitrary bytes decoded as a v1 and as a v2 envelope and put
 * through every conversion. What conv builds must pack, decode strictly
 * and pack again to the same bytes; a v1 that conv_v1_complete accepts
 * must convert back; and a short arena must only ever give ENOMEM. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "conv.h"

static void
check_v2(struct arena *a, const Loggregator__V2__Envelope *e)
{
	size_t n = loggregator__v2__envelope__get_packed_size(e), m;
	uint8_t *p = malloc(n + 1), *q = malloc(n + 1);
	Loggregator__V2__Envelope *back;

	if (p == NULL || q == NULL)
		abort();
	if (loggregator__v2__envelope__pack(e, p) != n)
		abort();
	back = loggregator__v2__envelope__unpack(&a->pb, n, p);
	if (back == NULL) {
		if (!a->failed)
			abort();
	} else {
		m = loggregator__v2__envelope__pack(back, q);
		if (m != n || memcmp(p, q, n) != 0)
			abort();
	}
	free(p);
	free(q);
}

static void
check_v1(struct arena *a, const Events__Envelope *e)
{
	Loggregator__V2__Envelope *v2;
	Events__Envelope *back;
	uint8_t *p, *q;
	size_t n;

	if (!conv_v1_complete(e))
		return;		/* doppler drops it; never pack it */
	n = events__envelope__get_packed_size(e);
	if ((p = malloc(n + 1)) == NULL || (q = malloc(n + 1)) == NULL)
		abort();
	if (events__envelope__pack(e, p) != n)
		abort();
	if ((back = conv_v1_unpack(a, p, n)) == NULL) {
		if (errno != ENOMEM)
			abort();
	} else {
		if (!conv_v1_complete(back) ||
		    events__envelope__pack(back, q) != n ||
		    memcmp(p, q, n) != 0)
			abort();
		if (conv_v1_to_v2(back, 1, a, &v2) == -1 && errno != ENOMEM)
			abort();
	}
	free(p);
	free(q);
}

static void
run_v2(struct arena *a, struct arena *out, const Loggregator__V2__Envelope *e,
    int check)
{
	Events__Envelope **v;
	size_t n, i;

	if (conv_v2_to_v1(e, out, &v, &n) == -1) {
		if (errno != ENOMEM)
			abort();
		return;
	}
	for (i = 0; check && i < n; i++)
		check_v1(a, v[i]);
}

/* Decoding happens in a; conversions build in out. */
static void
run(struct arena *a, struct arena *out, const uint8_t *data, size_t size,
    int check)
{
	struct conv_agent ag = { "d", "j", "i", "1.2.3.4" };
	Loggregator__V2__Envelope *e;
	Events__Envelope *v1;
	int pref;

	if ((v1 = conv_v1_unpack(a, data, size)) != NULL) {
		/* A strict decode is complete: only ENOMEM may stop ToV2. */
		for (pref = 0; pref < 2; pref++) {
			if (conv_v1_to_v2(v1, pref, out, &e) == -1) {
				if (errno != ENOMEM)
					abort();
				continue;
			}
			if (check) {
				check_v2(a, e);
				run_v2(a, out, e, check);
			}
		}
		if (conv_v1_agent_to_v2(v1, &ag, out, &e) == -1) {
			if (errno != ENOMEM && errno != EINVAL)
				abort();
		} else if (check)
			check_v2(a, e);
	}
	e = loggregator__v2__envelope__unpack(&a->pb, size, data);
	if (e != NULL)
		run_v2(a, out, e, check);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena a, small;

	if (arena_init(&a, 4096, 64 << 20) == -1)
		abort();
	run(&a, &a, data, size, 1);
	/* Again into an arena cut short at a size the input picks. */
	arena_reset(&a);
	if (arena_init(&small, 256, 256 + (size ? data[0] : 0) * 16) == -1)
		abort();
	run(&a, &small, data, size, 0);
	arena_release(&small);
	arena_release(&a);
	return 0;
}
