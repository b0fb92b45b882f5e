/* fuzz_cachestore: untrusted envelope bytes into lgr-cache's store, then
 * every answer made from them: recentlogs (the v1 conversion of logs),
 * containermetrics (that of gauges), log-cache's read and meta. The
 * store must take or drop anything, and answer without a fault. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lgr-cache/store.c"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct store_opts o = {
		.recent_logs = 2, .recent_other = 2, .max_sources = 4,
		.max_bytes = 64 * 1024, .ttl_ns = INT64_MAX / 2,
		.max_frame = 8192,
	};
	struct cq q = { .route = CQ_READ, .limit = 10 };
	unsigned char *frame;
	struct store *s;
	struct peek k;
	struct buf b;
	int i;

	if (size > 8192 || (s = store_new(&o)) == NULL)
		return 0;
	frame = malloc(size + FRAME_HEADER);
	if (frame == NULL || buf_init(&b, 1024, 1024 * 1024) == -1) {
		free(frame);
		store_free(s);
		return 0;
	}
	frame_put_len(frame, (uint32_t)size);
	memcpy(frame + FRAME_HEADER, data, size);
	/* Twice, so the second finds its source and its lists in use. */
	for (i = 0; i < 2; i++)
		store_put_run(s, frame, size + FRAME_HEADER, 1);
	if (peek(data, size, &k) == 0 && k.sidn > 0) {
		q.id = (char *)k.sid;
		q.idlen = k.sidn;
		store_recent_logs(s, k.sid, k.sidn, -1, "b", 1024 * 1024, &b);
		/* Again, from the v1 forms cached the first time. */
		store_recent_logs(s, k.sid, k.sidn, 1, "b", 1024 * 1024, &b);
		store_container_metrics(s, k.sid, k.sidn, 0, "b", &b);
		q.end_time = INT64_MAX;
		q.start_time = INT64_MIN;
		store_read(s, &q, NULL, 0, &b);
	}
	store_meta(s, &b);
	store_expire(s, INT64_MAX);
	buf_release(&b);
	free(frame);
	store_free(s);
	return 0;
}
