/* sse: one GET /v2/read answer, as the RLP gateway streams it: server-sent
 * events, one `data: {"batch":[...]}` event per batch of queued v2
 * envelopes (tags converged, as the reverse log proxy does), heartbeats
 * while idle, a closing event when the stream has lasted its time.
 *
 * Life: sse_new (a subscriber with its queue), the caller fills the
 * filter and calls sse_attach, then sse_response; from then on the
 * response owns the stream and frees it when libmicrohttpd is done with
 * it. Before sse_response, sse_free. */
#ifndef LGR_WS_SSE_H
#define LGR_WS_SSE_H

#include <stddef.h>

#include "lgrws.h"

struct MHD_Connection;
struct MHD_Response;
struct sse;

struct sse_cfg {
	struct wsd *d;
	unsigned heartbeat_ms;	/* idle this long: a heartbeat event */
	unsigned stream_max_ms;	/* then a closing event, and the end */
	/* libmicrohttpd must run soon (a connection was resumed). */
	void (*kick)(void *kick_arg);
};

/* The streams alive, for a shutdown. */
struct sse_list {
	struct sse *head;
	size_t n;
	int stopping;		/* sse_stop_all was called */
	void (*empty)(void *arg);	/* called when n drops to 0 */
	void *arg;
};

/* NULL with errno (ENOMEM). peer and path name it in log lines. */
struct sse *sse_new(const struct sse_cfg *cfg, struct sse_list *list,
    void *kick_arg, const char *peer, const char *path);
/* The subscriber whose filter the caller sets before sse_attach. */
struct sub *sse_sub(struct sse *s);
/* feed_attach: 0, or -1 with a reason. */
int sse_attach(struct sse *s, const char **why);
/* The response to queue on c (headers set); it owns s. NULL on ENOMEM,
 * and s is freed. */
struct MHD_Response *sse_response(struct sse *s, struct MHD_Connection *c);
/* Before sse_response only. */
void sse_free(struct sse *s);
/* Shutdown: stop taking envelopes, send what is queued, end each stream. */
void sse_stop_all(struct sse_list *list);

#endif
