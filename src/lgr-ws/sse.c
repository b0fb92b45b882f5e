/* sse: a /v2/read stream, written by libmicrohttpd's content reader.
 *
 * The reader hands out what is pending in out; when out is empty it makes
 * the next event (a batch from the queue, a heartbeat, the closing
 * event); when there is nothing to say it suspends the connection and
 * returns 0, so an idle stream costs nothing until the feed wakes it or a
 * timer fires. A stream whose client stops reading is never waited for:
 * the subscriber drops its own oldest envelopes (evict), and
 * libmicrohttpd's connection timeout ends a socket that stays full. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "conv.h"
#include "envelope.h"
#include "json.h"
#include "log.h"
#include "sse.h"

#define SSE_BATCH_MAX 100	/* envelopes per event, as the RLP batches */
#define SSE_BATCH_BYTES (192 * 1024)	/* raw bytes per event, about */
#define SSE_OUT_INITIAL (64 * 1024)
#define SSE_OUT_MAX (16 * 1024 * 1024)
#define SSE_ARENA_CHUNK (64 * 1024)
#define SSE_ARENA_MAX (64 * 1024 * 1024)

struct sse {
	const struct sse_cfg *cfg;
	struct sse_list *list;
	struct sse *prev, *next;
	void *kick_arg;
	struct sub sub;
	int attached;
	struct MHD_Connection *conn;	/* once the response is made */
	int suspended;
	int stopping;		/* send what is queued, then end */
	int closing_due;	/* stream_max_ms passed */
	int heartbeat_due;
	int ended;		/* the last event is in out */
	int dead;
	uv_timer_t heartbeat, lifetime;
	int handles;
	struct buf out;
	size_t out_off;
	struct arena arena;
	Loggregator__V2__Envelope *batch[SSE_BATCH_MAX];
	uint64_t sent;
	char peer[64];
	char *path;
};

/* --- making events ------------------------------------------------------- */

static void
sse_resume(struct sse *s)
{
	if (!s->suspended || s->dead)
		return;
	s->suspended = 0;
	MHD_resume_connection(s->conn);
	s->cfg->kick(s->kick_arg);
}

/* One `data:` event from up to SSE_BATCH_MAX queued envelopes. */
static void
sse_batch(struct sse *s)
{
	const unsigned char *p;
	size_t len, n = 0, bytes = 0, bad = 0, mark;
	Loggregator__V2__Envelope *e;

	arena_reset(&s->arena);
	while (n < SSE_BATCH_MAX && bytes < SSE_BATCH_BYTES &&
	    (p = squeue_peek(&s->sub.q, &len)) != NULL) {
		e = envelope_unpack(&s->arena, p, len);
		if (e == NULL && errno == ENOMEM && n > 0)
			break;	/* the rest goes in the next event */
		squeue_pop(&s->sub.q);
		if (e == NULL || conv_converge_tags(e, 1, &s->arena) == -1) {
			bad++;
			continue;
		}
		s->batch[n++] = e;
		bytes += len;
	}
	if (n > 0) {
		mark = s->out.len;
		if (buf_puts(&s->out, "data: ") == -1 ||
		    json_encode_batch(&s->out, s->batch, n) == -1 ||
		    buf_puts(&s->out, "\n\n") == -1) {
			s->out.len = mark;
			bad += n;
			n = 0;
		}
	}
	if (bad > 0) {
		log_warn("event=sse_dropped peer=%s count=%zu reason=\"%s\"",
		    s->peer, bad, "envelope could not be decoded or encoded");
		wsd_count(s->cfg->d, WSD_DROPPED, bad);
	}
	if (n > 0) {
		s->sent += n;
		s->sub.egress += n;
		wsd_count(s->cfg->d, WSD_EGRESS_V2, n);
		/* The heartbeat counts from the last event, as in the
		 * gateway. */
		uv_timer_start(&s->heartbeat, s->heartbeat.timer_cb,
		    s->cfg->heartbeat_ms, 0);
	}
}

/* Put the next event in out. 1 if there is something to send (or the
 * stream ends), 0 if there is nothing to say now. */
static int
sse_produce(struct sse *s)
{
	if (s->closing_due) {
		buf_puts(&s->out, "event: closing\n"
		    "data: closing due to stream timeout\n\n");
		s->ended = 1;
		return 1;
	}
	if (squeue_count(&s->sub.q) > 0) {
		sse_batch(s);
		return 1;
	}
	if (s->stopping) {
		s->ended = 1;
		return 1;
	}
	if (s->heartbeat_due) {
		s->heartbeat_due = 0;
		buf_printf(&s->out, "event: heartbeat\ndata: %lld\n\n",
		    (long long)time(NULL));
		return 1;
	}
	return 0;
}

static ssize_t
sse_read(void *cls, uint64_t pos, char *dst, size_t max)
{
	struct sse *s = cls;
	size_t n;

	(void)pos;
	for (;;) {
		if (s->out_off < s->out.len) {
			n = s->out.len - s->out_off;
			if (n > max)
				n = max;
			memcpy(dst, s->out.data + s->out_off, n);
			s->out_off += n;
			if (s->out_off == s->out.len) {
				s->out_off = 0;
				buf_reset(&s->out);
			}
			return (ssize_t)n;
		}
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!sse_produce(s))
			break;
	}
	/* Nothing to say: sleep until the feed or a timer wakes us. */
	s->suspended = 1;
	MHD_suspend_connection(s->conn);
	return 0;
}

/* --- timers and the subscriber ---------------------------------------------- */

static void
sse_heartbeat_cb(uv_timer_t *t)
{
	struct sse *s = t->data;

	s->heartbeat_due = 1;
	uv_timer_start(&s->heartbeat, sse_heartbeat_cb, s->cfg->heartbeat_ms,
	    0);
	sse_resume(s);
}

static void
sse_lifetime_cb(uv_timer_t *t)
{
	struct sse *s = t->data;

	s->closing_due = 1;
	sse_resume(s);
}

static void
sse_wake(struct sub *sub)
{
	sse_resume(sub->owner);
}

static void
sse_full(struct sub *sub)
{
	(void)sub;	/* evict == 1: never called */
}

static const struct sub_ops sse_ops = { sse_wake, sse_full };

/* --- life ---------------------------------------------------------------- */

static void
sse_handle_closed(uv_handle_t *h)
{
	struct sse *s = h->data;

	if (--s->handles > 0)
		return;
	buf_release(&s->out);
	arena_release(&s->arena);
	free(s->path);
	free(s);
}

static void
sse_end(struct sse *s)
{
	struct sse_list *l = s->list;

	if (s->dead)
		return;
	s->dead = 1;
	if (s->attached)
		feed_detach(s->cfg->d, &s->sub);
	s->attached = 0;
	sub_release(&s->sub);
	if (s->conn != NULL)
		log_info("event=sse_end peer=%s path=\"%s\" sent=%llu",
		    s->peer, s->path, (unsigned long long)s->sent);
	uv_close((uv_handle_t *)&s->heartbeat, sse_handle_closed);
	uv_close((uv_handle_t *)&s->lifetime, sse_handle_closed);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (--l->n == 0 && l->empty != NULL)
		l->empty(l->arg);
}

static void
sse_response_freed(void *cls)
{
	sse_end(cls);
}

struct sse *
sse_new(const struct sse_cfg *cfg, struct sse_list *list, void *kick_arg,
    const char *peer, const char *path)
{
	uv_loop_t *loop = wsd_loop(cfg->d);
	struct sse *s;
	char name[96];

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->path = strdup(path);
	if (s->path == NULL)
		goto fail;
	if (buf_init(&s->out, SSE_OUT_INITIAL, SSE_OUT_MAX) == -1)
		goto fail;
	if (arena_init(&s->arena, SSE_ARENA_CHUNK, SSE_ARENA_MAX) == -1) {
		buf_release(&s->out);
		goto fail;
	}
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	snprintf(name, sizeof(name), "sse %s %s", peer, path);
	if (sub_init(cfg->d, &s->sub, SUB_V2, &sse_ops, s, name) == -1) {
		buf_release(&s->out);
		arena_release(&s->arena);
		goto fail;
	}
	/* A reader that falls behind loses its own oldest envelopes. */
	s->sub.evict = 1;
	s->cfg = cfg;
	s->kick_arg = kick_arg;
	uv_timer_init(loop, &s->heartbeat);
	uv_timer_init(loop, &s->lifetime);
	s->heartbeat.data = s->lifetime.data = s;
	s->heartbeat.timer_cb = sse_heartbeat_cb;
	s->handles = 2;
	s->list = list;
	s->next = list->head;
	if (list->head != NULL)
		list->head->prev = s;
	list->head = s;
	list->n++;
	return s;
fail:
	free(s->path);
	free(s);
	errno = ENOMEM;
	return NULL;
}

struct sub *
sse_sub(struct sse *s)
{
	return &s->sub;
}

int
sse_attach(struct sse *s, const char **why)
{
	if (feed_attach(s->cfg->d, &s->sub, why) == -1)
		return -1;
	s->attached = 1;
	return 0;
}

void
sse_free(struct sse *s)
{
	sse_end(s);
}

struct MHD_Response *
sse_response(struct sse *s, struct MHD_Connection *c)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024,
	    sse_read, s, sse_response_freed);
	if (r == NULL) {
		sse_end(s);
		return NULL;
	}
	s->conn = c;
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	/* libmicrohttpd drops a Connection header it would imply; ask for
	 * it the way it allows. */
	MHD_set_response_options(r, MHD_RF_SEND_KEEP_ALIVE_HEADER,
	    MHD_RO_END);
	uv_timer_start(&s->heartbeat, sse_heartbeat_cb, s->cfg->heartbeat_ms,
	    0);
	uv_timer_start(&s->lifetime, sse_lifetime_cb, s->cfg->stream_max_ms,
	    0);
	log_info("event=sse_open peer=%s path=\"%s\"", s->peer, s->path);
	if (s->list->stopping)
		s->stopping = 1;
	return r;
}

void
sse_stop_all(struct sse_list *list)
{
	struct sse *s, *next;

	list->stopping = 1;
	for (s = list->head; s != NULL; s = next) {
		next = s->next;
		if (s->attached) {
			feed_detach(s->cfg->d, &s->sub);
			s->attached = 0;
		}
		s->stopping = 1;
		sse_resume(s);
	}
}
