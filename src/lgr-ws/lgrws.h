/* lgr-ws: the parts of the egress server and how they meet.
 *
 * Envelopes come from a *feed*: the local hub (frames on stdin, the
 * doppler side) or upstream subscriptions (gRPC streams opened on every
 * --upstream server for each subscriber, the traffic controller and
 * reverse-log-proxy side). They go to *subscribers*: gRPC streams (v2
 * Egress, v1 Doppler), websockets and SSE responses. Each subscriber owns
 * a bounded queue; the feed pushes into it and wakes the subscriber, the
 * subscriber's writer pops when its peer can take more. One event loop,
 * one thread. */
#ifndef LGR_WS_LGRWS_H
#define LGR_WS_LGRWS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "squeue.h"

/* What the bytes in a subscriber's queue are. */
enum sub_form {
	SUB_V1 = 1,	/* one marshalled events.Envelope (dropsonde) */
	SUB_V2 = 2,	/* one marshalled loggregator.v2.Envelope */
};

/* v1 classes, as doppler's v1 router keys subscriptions. */
enum v1_class {
	V1_ALL = 0,
	V1_LOGS = 1,
	V1_METRICS = 2,
};

#define SEL_LOG		0x01
#define SEL_COUNTER	0x02
#define SEL_GAUGE	0x04
#define SEL_TIMER	0x08
#define SEL_EVENT	0x10

/* One v2 selector, as EgressRequest carries it. */
struct selector {
	char *source_id;	/* NULL: any */
	unsigned kind;		/* one SEL_* */
	char *counter_name;	/* NULL: any (SEL_COUNTER) */
	char **gauge_names;	/* the exact key set (SEL_GAUGE); NULL: any */
	size_t ngauge_names;
};

/* What a subscriber asks for. */
struct sub_filter {
	char *shard_id;		/* "" or NULL: gets everything it selects */
	/* form SUB_V1 */
	char *app_id;		/* NULL: firehose */
	enum v1_class v1_class;
	/* form SUB_V2 */
	struct selector *sel;
	size_t nsel;
	int preferred_tags;	/* use_preferred_tags (tag convergence) */
};

struct sub;

struct sub_ops {
	/* Messages were queued (once per input batch, not per message). */
	void (*wake)(struct sub *s);
	/* The queue was full (evict == 0): the newest was refused. */
	void (*full)(struct sub *s);
};

struct sub {
	enum sub_form form;
	struct sub_filter f;
	struct squeue q;
	int evict;		/* full queue: 1 drops its oldest, 0 refuses the
				 * newest and calls ops->full */
	const struct sub_ops *ops;
	void *owner;		/* the writer's own state */
	struct wsd *d;		/* set by sub_init */
	char name[96];		/* for log lines: kind, peer, path */
	/* Kept by the feed. */
	struct sub *prev, *next;
	struct sub_group *group;
	void *feed_state;
	uint64_t egress;	/* written to the peer (the writer adds) */
};

struct wsd;

/* A subscriber's queue: subscriber_buffer messages, subscriber_bytes. */
int sub_init(struct wsd *d, struct sub *s, enum sub_form form,
    const struct sub_ops *ops, void *owner, const char *name);
/* Free what sub_init and the filter hold (after feed_detach). */
void sub_release(struct sub *s);
void sub_filter_free(struct sub_filter *f);

/* Start delivering to s from the local hub or the upstreams (whichever
 * this lgr-ws was started with); s->f must be set. 0, or -1 with a
 * reason (for a 503 / UNAVAILABLE). */
int feed_attach(struct wsd *d, struct sub *s, const char **why);
/* Stop delivering; nothing touches s afterwards. */
void feed_detach(struct wsd *d, struct sub *s);

/* Self-metrics and events into lgr-ws's output stream (stdout). */
enum wsd_counter {
	WSD_INGRESS,		/* envelopes in from stdin or upstreams */
	WSD_EGRESS_FIREHOSE,	/* v1 envelopes out on firehose websockets */
	WSD_EGRESS_STREAM,	/* ... on app stream websockets */
	WSD_EGRESS_V2,		/* envelopes out on v2 gRPC and SSE */
	WSD_EGRESS_V1GRPC,	/* envelopes out on v1 Subscribe/BatchSubscribe */
	WSD_DROPPED,		/* dropped from subscriber queues */
	WSD_SLOW_CONSUMER,	/* websocket clients cut off */
	WSD_REJECTED,		/* subscriptions refused (limits, auth) */
	WSD_NCOUNTERS
};
void wsd_count(struct wsd *d, enum wsd_counter c, uint64_t n);
/* An Event envelope (title, body) into the output stream, at once. */
void wsd_event(struct wsd *d, const char *title, const char *body);

uv_loop_t *wsd_loop(struct wsd *d);

#endif
