/* fuzz_dropsonde: a UDP datagram through lgr-recv's dropsonde path, step
 * for step: strict v1 decode, the agent's v1 -> v2, -0 kept, pack, then
 * the --tag tags appended on the wire. Whatever comes out must decode as
 * an envelope carrying every tag. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "conv.h"
#include "envelope.h"
#include "pbwire.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct conv_agent ag = { "cf", "router", "0", "10.0.0.1" };
	static const struct pb_tag tags[] = {
		{ "deployment", 10, "cf", 2 },
		{ "az", 2, "z1", 2 },
	};
	static struct arena a;
	static uint8_t packed[1 << 20], out[(1 << 20) + 256];
	Loggregator__V2__Envelope *v2, *back;
	Events__Envelope *v1;
	const char *v;
	size_t n, vn;
	ssize_t m;

	if (a.head == NULL && arena_init(&a, 64 * 1024, 64 << 20) == -1)
		abort();
	arena_reset(&a);
	v1 = conv_v1_unpack(&a, data, size);
	if (v1 == NULL || conv_v1_agent_to_v2(v1, &ag, &a, &v2) == -1)
		return 0;
	if (envelope_keep_sign(v2, &a) == -1)
		return 0;
	n = loggregator__v2__envelope__get_packed_size(v2);
	if (n > sizeof(packed))
		return 0;
	loggregator__v2__envelope__pack(v2, packed);
	m = envelope_add_tags(packed, n, tags, 2, out, sizeof(out));
	if (m < 0)
		abort();
	back = envelope_unpack(&a, out, (size_t)m);
	if (back == NULL && !a.failed)
		abort();
	if (envelope_peek_tag(out, (size_t)m, "az", 2, &v, &vn) != 1 ||
	    envelope_peek_tag(out, (size_t)m, "deployment", 10, &v, &vn) != 1)
		abort();
	return 0;
}
