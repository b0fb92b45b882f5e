/* fuzz_envelope: the v2 envelope decoder on arbitrary bytes, and what
 * every program does next with a decoded envelope: pack it again, write
 * it as gateway JSON, convert it to v1. A decoded envelope must pack to
 * bytes that decode to the same packing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "conv.h"
#include "envelope.h"
#include "json.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena a;
	static struct buf b;
	static int ready;
	Loggregator__V2__Envelope *e, *again;
	Events__Envelope **v1;
	unsigned char *p1, *p2;
	size_t n1, n2, nv1;

	if (!ready) {
		if (arena_init(&a, 64 * 1024, 64 << 20) == -1 ||
		    buf_init(&b, 4096, 64 << 20) == -1)
			abort();
		ready = 1;
	}
	arena_reset(&a);
	buf_reset(&b);
	e = envelope_unpack(&a, data, size);
	if (e == NULL)
		return 0;
	n1 = loggregator__v2__envelope__get_packed_size(e);
	p1 = arena_alloc(&a, n1 + 1);
	if (p1 == NULL)
		return 0;
	loggregator__v2__envelope__pack(e, p1);
	again = loggregator__v2__envelope__unpack(&a.pb, n1, p1);
	if (again == NULL)
		abort();
	n2 = loggregator__v2__envelope__get_packed_size(again);
	p2 = arena_alloc(&a, n2 + 1);
	if (p2 == NULL)
		return 0;
	loggregator__v2__envelope__pack(again, p2);
	if (n1 != n2 || memcmp(p1, p2, n1) != 0)
		abort();
	if (json_encode_envelope(&b, e) == -1)
		abort();
	(void)conv_v2_to_v1(e, &a, &v1, &nv1);
	return 0;
}
