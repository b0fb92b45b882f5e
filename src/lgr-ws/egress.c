/* egress: the doppler's subscription services, loggregator.v2.Egress
 * (Receiver, BatchedReceiver) and plumbing.Doppler (Subscribe,
 * BatchSubscribe), served on lgr-ws's own gRPC port or relayed from
 * lgr-recv's over a unix socket (relay.h). Either way a call becomes a
 * subscriber whose queue is pumped into response messages while the peer
 * keeps up; when it does not, the queue drops its oldest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "conv.h"
#include "envelope.h"
#include "filter.h"
#include "frame.h"
#include "log.h"
#include "pbwire.h"
#include "relay.h"
#include "wsd.h"

#define BATCH_MAX 100		/* envelopes per batch message, as doppler */
#define BATCH_BYTES (256 * 1024)	/* ... and bytes, unless one is larger */
#define PUMP_LIMIT (256 * 1024)	/* bytes queued at the transport */
#define RELAY_REQ_MAX (64 * 1024)

enum ekind { E_V2_ONE, E_V2_BATCH, E_V1_ONE, E_V1_BATCH };

struct rconn;

struct ecall {
	struct sub s;
	struct wsd *d;
	enum ekind kind;
	struct grpc_call *call;	/* served here, or */
	struct rconn *rc;	/* relayed */
	int attached, done;
	int draining;		/* stopping: end the call once the queue is out */
	int converge;		/* reverse log proxy: converge tags */
	unsigned char *msg;
	size_t msgcap;
	struct arena a;
	struct ecall *prev, *next;	/* every live call, for egress_stop_all */
};

static struct ecall *calls;

static void ecall_pump(struct ecall *ec);

static void
on_wake(struct sub *s)
{
	ecall_pump(s->owner);
}

static const struct sub_ops ecall_ops = { .wake = on_wake };

static enum ekind
kind_of(const char *path)
{
	if (strcmp(path, RELAY_V2_RECEIVER) == 0)
		return E_V2_ONE;
	if (strcmp(path, RELAY_V2_BATCHED) == 0)
		return E_V2_BATCH;
	if (strcmp(path, RELAY_V1_SUBSCRIBE) == 0)
		return E_V1_ONE;
	return E_V1_BATCH;
}

/* A new subscriber for a call on path with request message p. */
static struct ecall *
ecall_open(struct wsd *d, const char *path, const char *peer,
    const uint8_t *p, size_t n, int *status, const char **why)
{
	struct ecall *ec = calloc(1, sizeof(*ec));
	char name[96];
	int v2;

	*status = GRPC_RESOURCE_EXHAUSTED;
	*why = "out of memory";
	if (ec == NULL)
		return NULL;
	ec->d = d;
	ec->kind = kind_of(path);
	v2 = ec->kind == E_V2_ONE || ec->kind == E_V2_BATCH;
	snprintf(name, sizeof(name), "grpc:%s%s", peer,
	    strrchr(path, '/'));
	if (sub_init(d, &ec->s, v2 ? SUB_V2 : SUB_V1, &ecall_ops, ec,
	    name) == -1) {
		free(ec);
		return NULL;
	}
	ec->s.evict = 1;
	*status = v2 ? filter_from_egress_request(&ec->s.f, p, n, why) :
	    filter_from_subscription_request(&ec->s.f, p, n, why);
	if (*status != GRPC_OK)
		goto fail;
	if (d->nsubs >= d->max_subs) {
		/* As the reverse log proxy answers past max_streams. */
		static char full[96];	/* outlives ec: the status needs it */

		snprintf(full, sizeof(full), "unable to create stream, "
		    "max egress streams reached: %zu", d->max_subs);
		*why = full;
		*status = GRPC_RESOURCE_EXHAUSTED;
		goto fail;
	}
	ec->converge = v2 && d->up != NULL;
	if (ec->converge && arena_init(&ec->a, 64 * 1024, 64u << 20) == -1) {
		ec->converge = 0;
		*status = GRPC_RESOURCE_EXHAUSTED;
		*why = "out of memory";
		goto fail;
	}
	if (feed_attach(d, &ec->s, why) == -1) {
		*status = GRPC_UNAVAILABLE;
		goto fail;
	}
	ec->attached = 1;
	ec->next = calls;
	if (calls)
		calls->prev = ec;
	calls = ec;
	log_info("event=subscribe sub=%s shard_id=\"%s\"", ec->s.name,
	    ec->s.f.shard_id ? ec->s.f.shard_id : "");
	return ec;
fail:
	wsd_count(d, WSD_REJECTED, 1);
	if (ec->converge)
		arena_release(&ec->a);
	sub_release(&ec->s);
	free(ec);
	return NULL;
}

static void
ecall_free(struct ecall *ec)
{
	if (ec->attached) {
		feed_detach(ec->d, &ec->s);
		if (ec->prev)
			ec->prev->next = ec->next;
		else
			calls = ec->next;
		if (ec->next)
			ec->next->prev = ec->prev;
	}
	if (ec->draining && squeue_count(&ec->s.q) > 0) {
		/* The stop grace ran out before the peer took these. */
		wsd_count(ec->d, WSD_DROPPED, squeue_count(&ec->s.q));
		squeue_clear(&ec->s.q);
	}
	log_info("event=unsubscribe sub=%s egress=%llu dropped=%llu",
	    ec->s.name, (unsigned long long)ec->s.egress,
	    (unsigned long long)ec->s.q.dropped);
	if (ec->converge)
		arena_release(&ec->a);
	sub_release(&ec->s);
	free(ec->msg);
	free(ec);
}

/* --- the relay connection ----------------------------------------------- */

struct relay_srv {
	struct wsd *d;
	uv_pipe_t pipe;
	char path[108];
};

struct rconn {
	uv_pipe_t pipe;
	struct relay_srv *srv;
	struct ecall *ec;
	unsigned char *in;	/* the request: frame(path) frame(message) */
	size_t in_len;
	int closing;
};

struct rwrite {
	uv_write_t req;
	uv_buf_t buf;
	unsigned char data[];
};

static void rconn_close(struct rconn *rc);

static void
rconn_written(uv_write_t *req, int status)
{
	struct rconn *rc = req->data;

	free(req);
	if (rc->closing)
		return;
	if (status < 0) {
		rconn_close(rc);
		return;
	}
	if (rc->ec != NULL && rc->pipe.write_queue_size < PUMP_LIMIT / 2)
		ecall_pump(rc->ec);
}

/* One frame: mark (if not -1) then p. */
static int
rconn_frame(struct rconn *rc, int mark, const void *p, size_t n)
{
	size_t m = mark >= 0 ? 1 : 0;
	struct rwrite *w = malloc(sizeof(*w) + FRAME_HEADER + m + n);

	if (w == NULL)
		return -1;
	frame_put_len(w->data, (uint32_t)(m + n));
	if (m)
		w->data[FRAME_HEADER] = (unsigned char)mark;
	memcpy(w->data + FRAME_HEADER + m, p, n);
	w->buf = uv_buf_init((char *)w->data, FRAME_HEADER + m + n);
	w->req.data = rc;
	if (uv_write(&w->req, (uv_stream_t *)&rc->pipe, &w->buf, 1,
	    rconn_written) < 0) {
		free(w);
		return -1;
	}
	return 0;
}

static void
rconn_status(struct rconn *rc, int mark, int status, const char *why)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "%d %s", status, why ? why : "");

	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1;
	rconn_frame(rc, mark, line, (size_t)n);
}

static void
rconn_free(uv_handle_t *h)
{
	struct rconn *rc = h->data;

	free(rc->in);
	free(rc);
}

static void
rconn_close(struct rconn *rc)
{
	if (rc->closing)
		return;
	rc->closing = 1;
	if (rc->ec != NULL) {
		ecall_free(rc->ec);
		rc->ec = NULL;
	}
	uv_close((uv_handle_t *)&rc->pipe, rconn_free);
}

static void
rconn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char chunk[16384];

	(void)h;
	(void)hint;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Both request frames are in: open the call. */
static void
rconn_dispatch(struct rconn *rc, const unsigned char *path, size_t plen,
    const unsigned char *msg, size_t mlen)
{
	char p[RELAY_MAX_PATH + 1];
	const char *why = NULL;
	int status;

	if (plen > RELAY_MAX_PATH) {
		rconn_status(rc, -1, GRPC_UNIMPLEMENTED, "unknown method");
		return;
	}
	memcpy(p, path, plen);
	p[plen] = '\0';
	/* The whole path, not a prefix of one of ours. */
	if (strlen(p) != plen || (strcmp(p, RELAY_V2_RECEIVER) &&
	    strcmp(p, RELAY_V2_BATCHED) && strcmp(p, RELAY_V1_SUBSCRIBE) &&
	    strcmp(p, RELAY_V1_BATCH))) {
		rconn_status(rc, -1, GRPC_UNIMPLEMENTED, "unknown method");
		return;
	}
	rc->ec = ecall_open(rc->srv->d, p, "relay", msg, mlen, &status, &why);
	if (rc->ec == NULL) {
		rconn_status(rc, -1, status, why);
		return;
	}
	rc->ec->rc = rc;
	rconn_status(rc, -1, GRPC_OK, "");
	ecall_pump(rc->ec);
}

static void
rconn_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
	struct rconn *rc = h->data;
	size_t a, b;

	if (n < 0) {
		rconn_close(rc);	/* lgr-recv's client went away */
		return;
	}
	if (n == 0 || rc->ec != NULL || rc->in == NULL)
		return;		/* after the request, nothing is expected */
	if (rc->in_len + (size_t)n > RELAY_REQ_MAX) {
		rconn_status(rc, -1, GRPC_RESOURCE_EXHAUSTED, "request too large");
		free(rc->in);
		rc->in = NULL;
		return;
	}
	memcpy(rc->in + rc->in_len, buf->base, (size_t)n);
	rc->in_len += (size_t)n;
	if (rc->in_len < FRAME_HEADER)
		return;
	a = frame_get_len(rc->in);
	if (rc->in_len < 2 * FRAME_HEADER + a)
		return;
	b = frame_get_len(rc->in + FRAME_HEADER + a);
	if (rc->in_len < 2 * FRAME_HEADER + a + b)
		return;
	rconn_dispatch(rc, rc->in + FRAME_HEADER, a,
	    rc->in + 2 * FRAME_HEADER + a, b);
	free(rc->in);
	rc->in = NULL;
}

static void
relay_accept(uv_stream_t *ls, int status)
{
	struct relay_srv *r = ls->data;
	struct rconn *rc;

	if (status < 0)
		return;
	rc = calloc(1, sizeof(*rc));
	if (rc == NULL || (rc->in = malloc(RELAY_REQ_MAX)) == NULL) {
		free(rc);
		return;
	}
	rc->srv = r;
	uv_pipe_init(r->d->loop, &rc->pipe, 0);
	rc->pipe.data = rc;
	if (uv_accept(ls, (uv_stream_t *)&rc->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&rc->pipe, rconn_alloc,
	    rconn_read) < 0) {
		rconn_close(rc);
		return;
	}
}

struct relay_srv *
relay_listen(struct wsd *d, const char *path, char *err, size_t errlen)
{
	struct relay_srv *r = calloc(1, sizeof(*r));
	int rc;

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->d = d;
	snprintf(r->path, sizeof(r->path), "%s", path);
	uv_pipe_init(d->loop, &r->pipe, 0);
	r->pipe.data = r;
	(void)unlink(path);	/* a socket left by a previous run */
	if ((rc = uv_pipe_bind(&r->pipe, path)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&r->pipe, 128, relay_accept)) < 0) {
		snprintf(err, errlen, "%s: %s", path, uv_strerror(rc));
		uv_close((uv_handle_t *)&r->pipe, NULL);
		return NULL;	/* r leaks until exit: start-up only */
	}
	return r;
}

static void
relay_free(uv_handle_t *h)
{
	struct relay_srv *r = h->data;

	(void)unlink(r->path);
	free(r);
}

void
relay_close(struct relay_srv *r)
{
	if (r != NULL)
		uv_close((uv_handle_t *)&r->pipe, relay_free);
}

/* --- pumping a subscriber into messages ------------------------------------ */

static size_t
ecall_pending(struct ecall *ec)
{
	return ec->call ? grpc_call_pending(ec->call) :
	    ec->rc->pipe.write_queue_size;
}

static int
ecall_send(struct ecall *ec, const void *p, size_t n)
{
	if (ec->call)
		return grpc_call_send(ec->call, p, n);
	return rconn_frame(ec->rc, -1, p, n);
}

static int
msg_room(struct ecall *ec, size_t n)
{
	unsigned char *p;
	size_t cap = ec->msgcap ? ec->msgcap : 4096;

	if (n <= ec->msgcap)
		return 0;
	while (cap < n)
		cap *= 2;
	if ((p = realloc(ec->msg, cap)) == NULL)
		return -1;
	ec->msg = p;
	ec->msgcap = cap;
	return 0;
}

/* The envelope as this subscriber gets it: with tags converged for a
 * reverse-log-proxy subscriber, as is otherwise. */
static const unsigned char *
ecall_form(struct ecall *ec, const unsigned char *p, size_t *n)
{
	Loggregator__V2__Envelope *e;
	unsigned char *out;
	size_t len;

	if (!ec->converge)
		return p;
	arena_reset(&ec->a);
	e = envelope_unpack(&ec->a, p, *n);
	if (e == NULL || conv_converge_tags(e, ec->s.f.preferred_tags,
	    &ec->a) == -1)
		return p;	/* sent as it came */
	len = loggregator__v2__envelope__get_packed_size(e);
	if ((out = arena_alloc(&ec->a, len ? len : 1)) == NULL)
		return p;
	loggregator__v2__envelope__pack(e, out);
	*n = len;
	return out;
}

static void
shutdown_done(uv_shutdown_t *req, int status)
{
	(void)status;
	free(req);
}

/* Everything queued has gone to the transport: end the call with OK.
 * A gRPC call may close, and ec be freed, before this returns. */
static void
ecall_end(struct ecall *ec)
{
	uv_shutdown_t *req;

	ec->done = 1;
	if (ec->call) {
		grpc_call_finish(ec->call, GRPC_OK, NULL);
		return;
	}
	if (ec->rc && !ec->rc->closing &&
	    (req = malloc(sizeof(*req))) != NULL &&
	    uv_shutdown(req, (uv_stream_t *)&ec->rc->pipe, shutdown_done) < 0)
		free(req);
}

/* Move queued envelopes into messages while the transport takes them;
 * ec may be freed when it returns (a draining call that ended). */
static void
ecall_pump(struct ecall *ec)
{
	struct squeue *q = &ec->s.q;
	enum wsd_counter c = ec->kind <= E_V2_BATCH ? WSD_EGRESS_V2 :
	    WSD_EGRESS_V1GRPC;
	size_t max = ec->kind == E_V2_BATCH || ec->kind == E_V1_BATCH ?
	    BATCH_MAX : 1;

	while (!ec->done && squeue_count(q) > 0 &&
	    ecall_pending(ec) < PUMP_LIMIT) {
		size_t len = 0, k = 0, n;
		const unsigned char *p;
		ssize_t w;

		while (k < max && (p = squeue_peek(q, &n)) != NULL) {
			p = ecall_form(ec, p, &n);
			if (ec->kind == E_V2_ONE) {
				if (msg_room(ec, n) == -1)
					break;
				memcpy(ec->msg, p, n);
				len = n;
			} else {
				if (k > 0 && len + n > BATCH_BYTES)
					break;
				if (msg_room(ec, len + n + 16) == -1)
					break;
				w = pb_batch_put(ec->msg + len, ec->msgcap - len,
				    p, n);
				if (w < 0)
					break;
				len += (size_t)w;
			}
			squeue_pop(q);
			k++;
		}
		if (k == 0) {
			squeue_pop(q);	/* cannot be sent: out of memory */
			q->dropped++;
			wsd_count(ec->d, WSD_DROPPED, 1);
			continue;
		}
		if (ecall_send(ec, ec->msg, len) == -1) {
			q->dropped += k;
			wsd_count(ec->d, WSD_DROPPED, k);
			break;
		}
		ec->s.egress += k;
		wsd_count(ec->d, c, k);
	}
	if (ec->draining && !ec->done && squeue_count(q) == 0)
		ecall_end(ec);
}

/* --- gRPC methods ------------------------------------------------------------ */

static int
grpc_open(void *ctx, struct grpc_call *call, const char *path,
    const uint8_t *p, size_t n, const char **why)
{
	struct wsd *d = ctx;
	struct ecall *ec;
	int status;

	ec = ecall_open(d, path, grpc_call_peer(call), p, n, &status, why);
	if (ec == NULL)
		return status;
	ec->call = call;
	grpc_call_set_arg(call, ec);
	ecall_pump(ec);
	return GRPC_OK;
}

#define OPENER(fn, path) \
static int \
fn(void *ctx, struct grpc_call *call, const uint8_t *p, size_t n, \
    const char **why) \
{ \
	return grpc_open(ctx, call, path, p, n, why); \
}
OPENER(open_receiver, RELAY_V2_RECEIVER)
OPENER(open_batched, RELAY_V2_BATCHED)
OPENER(open_subscribe, RELAY_V1_SUBSCRIBE)
OPENER(open_batch_subscribe, RELAY_V1_BATCH)

static void
grpc_writable(void *ctx, struct grpc_call *call, void *arg)
{
	(void)ctx;
	(void)call;
	ecall_pump(arg);
}

static void
grpc_closed(void *ctx, struct grpc_call *call, void *arg)
{
	(void)ctx;
	(void)call;
	if (arg != NULL)
		ecall_free(arg);
}

#define SERVER_STREAM(path, fn) { path, 1, 1, fn, grpc_writable, grpc_closed, \
	NULL }

const struct grpc_method egress_methods[] = {
	SERVER_STREAM(RELAY_V2_RECEIVER, open_receiver),
	SERVER_STREAM(RELAY_V2_BATCHED, open_batched),
	SERVER_STREAM(RELAY_V1_SUBSCRIBE, open_subscribe),
	SERVER_STREAM(RELAY_V1_BATCH, open_batch_subscribe),
};
const size_t egress_nmethods = sizeof(egress_methods) /
    sizeof(egress_methods[0]);

/* Stop: no more envelopes come; each call sends what it has queued,
 * then ends with OK (main.c's grace timer ends those that cannot). */
void
egress_cut_relayed(void)
{
	struct ecall *ec, *next;

	for (ec = calls; ec; ec = next) {
		next = ec->next;
		if (ec->rc != NULL)
			rconn_close(ec->rc);	/* frees ec, counting its queue */
	}
}

int
egress_open(void)
{
	return calls != NULL;
}

void
egress_stop_all(struct wsd *d)
{
	struct ecall *ec, *next;

	(void)d;
	for (ec = calls; ec; ec = next) {
		next = ec->next;	/* ec may be gone after the pump */
		if (ec->done)
			continue;
		ec->draining = 1;
		ecall_pump(ec);
	}
}
