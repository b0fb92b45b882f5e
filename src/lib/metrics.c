/* metrics: self-metrics as v2 Counter envelopes. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "v2/envelope.pb-c.h"

void
metrics_init(struct metrics *ms, const char *source_id, const char *origin)
{
	memset(ms, 0, sizeof(*ms));
	ms->source_id = source_id;
	ms->origin = origin;
}

int
metrics_add(struct metrics *ms, const char *name, const char *tag_key,
    const char *tag_value)
{
	struct metric *m;

	if (ms->n == METRICS_MAX) {
		errno = ENOSPC;
		return -1;
	}
	m = &ms->m[ms->n];
	m->name = name;
	m->tag_key = tag_key;
	m->tag_value = tag_value;
	return (int)ms->n++;
}

static int
metrics_emit_one(struct metrics *ms, struct metric *m, int64_t now_ns,
    struct frame_writer *w)
{
	Loggregator__V2__Envelope env = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Counter c = LOGGREGATOR__V2__COUNTER__INIT;
	Loggregator__V2__Envelope__TagsEntry t[2] = {
		LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
		LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT,
	};
	Loggregator__V2__Envelope__TagsEntry *tp[2];
	unsigned char *dst;
	size_t len;

	c.name = (char *)m->name;
	c.delta = m->total - m->emitted;
	c.total = m->total;
	env.timestamp = now_ns;
	env.source_id = (char *)ms->source_id;
	env.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	env.counter = &c;
	if (ms->origin) {
		t[env.n_tags].key = "origin";
		t[env.n_tags].value = (char *)ms->origin;
		tp[env.n_tags] = &t[env.n_tags];
		env.n_tags++;
	}
	if (m->tag_key) {
		t[env.n_tags].key = (char *)m->tag_key;
		t[env.n_tags].value = (char *)m->tag_value;
		tp[env.n_tags] = &t[env.n_tags];
		env.n_tags++;
	}
	env.tags = tp;
	len = loggregator__v2__envelope__get_packed_size(&env);
	dst = frame_reserve(w, len);
	if (dst == NULL)
		return -1;
	loggregator__v2__envelope__pack(&env, dst);
	frame_commit(w, len);
	m->emitted = m->total;
	return 0;
}

int
metrics_emit(struct metrics *ms, int64_t now_ns, struct frame_writer *w)
{
	size_t i;

	for (i = 0; i < ms->n; i++)
		if (metrics_emit_one(ms, &ms->m[i], now_ns, w) == -1)
			return -1;
	return 0;
}

int64_t
time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
