/* fuzz_json: json_decode on arbitrary bytes. Whatever decodes must encode
 * to JSON that decodes to the same JSON again, and must pack as protobuf. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct arena fz_arena;
static struct buf fz_first, fz_again;
static int fz_ready;

/*
 * What decodes packs as protobuf, and unpacks to what packs the same.
 * (Not compared as JSON: protobuf-c leaves out a proto3 double that
 * equals 0, so -0 comes back as 0, where Go would have kept it.)
 */
static void
fz_through_protobuf(Loggregator__V2__Envelope **e, size_t n)
{
	Loggregator__V2__Envelope *u;
	uint8_t *pb, *pb2;
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = loggregator__v2__envelope__get_packed_size(e[i]);
		pb = arena_alloc(&fz_arena, len + 1);
		pb2 = arena_alloc(&fz_arena, len + 1);
		if (pb == NULL || pb2 == NULL ||
		    loggregator__v2__envelope__pack(e[i], pb) != len)
			abort();
		u = loggregator__v2__envelope__unpack(&fz_arena.pb, len, pb);
		if (u == NULL ||
		    loggregator__v2__envelope__get_packed_size(u) != len ||
		    loggregator__v2__envelope__pack(u, pb2) != len ||
		    memcmp(pb, pb2, len) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Loggregator__V2__Envelope **e, **e2;
	char err[256];
	size_t n, n2;

	if (!fz_ready) {
		if (arena_init(&fz_arena, 64 * 1024, 256u << 20) == -1 ||
		    buf_init(&fz_first, 4096, 256u << 20) == -1 ||
		    buf_init(&fz_again, 4096, 256u << 20) == -1)
			abort();
		fz_ready = 1;
	}
	arena_reset(&fz_arena);
	if (json_decode((const char *)data, size, &fz_arena, &e, &n, err,
	    sizeof(err)) == -1) {
		/* A refusal always says why, on one line. */
		if (errno != EINVAL && errno != ENOMEM)
			abort();
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			abort();
		return 0;
	}
	buf_reset(&fz_first);
	if (json_encode_batch(&fz_first, e, n) == -1)
		abort();
	if (json_decode(fz_first.data, fz_first.len, &fz_arena, &e2, &n2, err,
	    sizeof(err)) == -1 || n2 != n)
		abort();
	buf_reset(&fz_again);
	if (json_encode_batch(&fz_again, e2, n2) == -1 ||
	    fz_again.len != fz_first.len ||
	    memcmp(fz_again.data, fz_first.data, fz_first.len) != 0)
		abort();
	fz_through_protobuf(e, n);
	return 0;
}
