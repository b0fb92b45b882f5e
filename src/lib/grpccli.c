/* grpccli: a BatchSender client over several HTTP/2 connections, on
 * libuv, nghttp2 and OpenSSL memory BIOs, fed from a ring. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "addr.h"
#include "frame.h"
#include "grpccli.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "pbwire.h"
#include "tls.h"

#define GRPC_PREFIX 5		/* compressed flag, 4-byte length */
#define BATCH_PATH "/loggregator.v2.Ingress/BatchSender"
#define IO_CHUNK (64 * 1024)
/* Bytes waiting in libuv's write queue before a connection stops making
 * more: the socket is full, and HTTP/2 windows alone may be large. */
#define WQ_LIMIT (1024 * 1024)
/* How often the ring is looked at: at once while it has frames, backing
 * off to POLL_MAX_MS while it is empty. The ring has no fd to wait on. */
#define POLL_MIN_MS 1
#define POLL_MAX_MS 8
#define CLOSE_GRACE_MS 1000	/* for servers to answer our half-close */
#define STREAM_OK_MS 1000	/* a stream living this long did not fail */
#define BATCH_INIT 65536
#define ERR_LEN 256

enum conn_state {
	CONN_IDLE,		/* no socket: waiting to (re)connect */
	CONN_CONNECTING,	/* TCP connect under way */
	CONN_OPEN,		/* connected: TLS, then HTTP/2 */
	CONN_CLOSING,		/* socket being shut down and closed */
};

struct gbatch {
	unsigned char *buf;	/* GRPC_PREFIX bytes, an EnvelopeBatch */
	size_t cap;
	size_t len;		/* bytes in buf, prefix included */
	size_t n;		/* envelopes */
	uint64_t end;		/* stream offset past it, once taken */
};

struct gtarget {
	struct gcli *cli;
	const char *spec;	/* HOST:PORT as given; borrowed */
	char host[256];
	char port[8];
	uv_getaddrinfo_t req;
	uv_timer_t timer;	/* retry a resolution that found nothing */
	unsigned backoff_ms;
	int resolving;
	unsigned nconns;
};

struct gconn {
	struct gcli *cli;
	struct gtarget *tgt;
	struct gconn *next;
	struct sockaddr_storage addr;
	char name[64];		/* addr as text */
	enum conn_state state;
	int handles;		/* uv handles open; freed at 0 once dead */
	int dead;		/* address gone, or shutting down */
	int up;			/* the server's SETTINGS came */
	int want_connect;	/* waiting for its name to be resolved */
	int dirty;		/* has HTTP/2 output to flush */
	int blocked;		/* output stopped: write queue full */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_shutdown_t sreq;
	uv_timer_t timer;	/* backoff, connect deadline, stream reopen */
	uv_timer_t ka;		/* keepalive */
	nghttp2_session *h2;
	SSL *ssl;		/* owns the two BIOs */
	BIO *rbio, *wbio;	/* network side of ssl */
	unsigned backoff_ms;	/* next reconnect delay, before jitter */
	unsigned retry_ms;	/* the delay chosen when it went down */
	unsigned reopen_ms;	/* next stream reopen delay */
	uint64_t last_read;	/* loop time of the last bytes in */
	int ping_out;		/* a keepalive PING is unanswered */

	/* The BatchSender stream; 0 when none. */
	int32_t stream;
	int deferred;		/* its data source ran dry */
	int ending;		/* half-close it once the queue is out */
	int goaway;		/* the server is going away */
	int http_status;
	int grpc_status;	/* -1 until one comes */
	char grpc_msg[128];
	uint64_t stream_t0;	/* loop time it was opened */
	uint64_t taken;		/* stream bytes handed to nghttp2 */
	uint64_t sent;		/* stream bytes in DATA frames sent */

	/* Batches, a ring of cli->queue slots indexed by running counts:
	 * [qh, take) handed to nghttp2 whole and not yet known sent, take
	 * handed over up to take_off, [take, qt) not started. */
	struct gbatch *q;
	uint64_t qh, take, qt;
	size_t take_off;
};

struct gcli {
	struct grpccli_opts o;
	struct ring *ring;
	struct grpccli_stats *st;
	uv_loop_t loop;
	uv_timer_t poll;	/* look at the ring */
	uv_timer_t flush;	/* the building batch is due */
	uv_timer_t deadline;	/* draining, then closing, must end */
	uv_idle_t kick;		/* pump once more, outside callbacks */
	nghttp2_session_callbacks *cbs;
	struct gtarget *tgts;
	size_t ntgts;
	struct gconn *conns;
	unsigned nconns;
	struct frame_writer fw;	/* scratch the ring's frames land in */
	size_t scratch_cap;
	struct gbatch build;	/* the batch being filled */
	unsigned poll_ms;
	unsigned rr;		/* round robin among equals */
	int flush_due;
	int build_full;		/* the next frame does not fit */
	int ring_done;		/* closed, and all of it popped */
	int draining;		/* the ring is closed; deadline set */
	int finishing;		/* closing the connections */
	uint64_t seed;
	char tag[96];		/* "sink=NAME " for log lines, or "" */
	unsigned char rbuf[IO_CHUNK];	/* socket reads */
	unsigned char tbuf[IO_CHUNK];	/* TLS plaintext in */
	unsigned char obuf[IO_CHUNK];	/* HTTP/2 output, gathered */
};

struct gwrite {
	uv_write_t req;
	uv_buf_t buf;
	struct gconn *k;
	unsigned char data[];
};

static void cli_kick(struct gcli *c);
static void cli_pump(struct gcli *c);
static void conn_connect(struct gconn *k);
static void conn_down(struct gconn *k, const char *why, int graceful);
static void conn_flush(struct gconn *k);
static void conn_on_timer(uv_timer_t *t);
static void tgt_resolve(struct gtarget *t);

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, \
	strlen(v), NGHTTP2_NV_FLAG_NONE }

static inline void
stat_add(_Atomic uint64_t *v, uint64_t n)
{
	atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

static inline void
stat_sub(_Atomic uint64_t *v, uint64_t n)
{
	atomic_fetch_sub_explicit(v, n, memory_order_relaxed);
}

/* A value for a log field inside quotes: no quotes, no control bytes. */
static const char *
log_safe(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = s[i] == '"' || (unsigned char)s[i] < 0x20 ||
		    s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* --- addresses ------------------------------------------------------- */




int
grpccli_check(const struct grpccli_opts *o, char *err, size_t errlen)
{
	char host[256], port[8];
	size_t i;

	if (o->addrs == NULL || o->naddrs == 0) {
		snprintf(err, errlen, "no address to send to");
		return -1;
	}
	if (o->naddrs > GRPCCLI_MAX_TARGETS) {
		snprintf(err, errlen, "more than %d addresses",
		    GRPCCLI_MAX_TARGETS);
		return -1;
	}
	for (i = 0; i < o->naddrs; i++)
		if (addr_split(o->addrs[i], host, sizeof(host), port,
		    sizeof(port), err, errlen) == -1)
			return -1;
	if (o->batch_max > 100000) {
		snprintf(err, errlen, "batch of %zu envelopes is over 100000",
		    o->batch_max);
		return -1;
	}
	if (o->max_message != 0 && (o->max_message < 1024 ||
	    o->max_message > 256u * 1024 * 1024)) {
		snprintf(err, errlen, "message size %zu is not within "
		    "1024 to 268435456", o->max_message);
		return -1;
	}
	if (o->queue > 1024) {
		snprintf(err, errlen, "queue of %u batches is over 1024",
		    o->queue);
		return -1;
	}
	if (o->backoff_min_ms != 0 && o->backoff_max_ms != 0 &&
	    o->backoff_min_ms > o->backoff_max_ms) {
		snprintf(err, errlen, "backoff minimum %u ms is over the "
		    "maximum %u ms", o->backoff_min_ms, o->backoff_max_ms);
		return -1;
	}
	return 0;
}

/* --- batches --------------------------------------------------------- */

/* Room for need bytes in all. 0, or -1 with errno ENOMEM. */
static int
gbatch_reserve(struct gbatch *b, size_t need)
{
	size_t cap;
	unsigned char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap < BATCH_INIT ? BATCH_INIT : b->cap;
	while (cap < need)
		cap *= 2;
	p = realloc(b->buf, cap);
	if (p == NULL)
		return -1;
	b->buf = p;
	b->cap = cap;
	return 0;
}

static void
gbatch_clear(struct gbatch *b)
{
	b->len = GRPC_PREFIX;
	b->n = 0;
	b->end = 0;
}

static void
gbatch_seal(struct gbatch *b)
{
	uint32_t n = (uint32_t)(b->len - GRPC_PREFIX);

	b->buf[0] = 0;		/* not compressed */
	frame_put_len(b->buf + 1, n);
}

/* --- randomness for backoff jitter ----------------------------------- */

static uint64_t
cli_rand(struct gcli *c)
{
	uint64_t x = c->seed;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->seed = x;
	return x;
}

/* The next delay from *cur, which then doubles up to the maximum. The
 * delay is cut by up to a quarter at random, so connections that failed
 * together do not all come back in the same millisecond. */
static unsigned
backoff_next(struct gcli *c, unsigned *cur)
{
	unsigned d = *cur;

	*cur = d > c->o.backoff_max_ms / 2 ? c->o.backoff_max_ms : d * 2;
	return d - (unsigned)(cli_rand(c) % (d / 4 + 1));
}

/* --- connection queues ----------------------------------------------- */

static int
conn_ready(const struct gconn *k)
{
	return k->state == CONN_OPEN && k->up && k->stream > 0 &&
	    !k->ending && !k->goaway && !k->dead;
}

static int
conn_room(const struct gconn *k)
{
	return conn_ready(k) && k->qt - k->qh < k->cli->o.queue;
}

static int
cli_room(struct gcli *c)
{
	struct gconn *k;

	for (k = c->conns; k != NULL; k = k->next)
		if (conn_room(k))
			return 1;
	return 0;
}

/* Move the sealed batch src to the connection with the fewest batches
 * queued, other than not; src gets that slot's empty buffer back. 0, or
 * -1 when no connection has room. */
static int
cli_dispatch(struct gcli *c, struct gbatch *src, struct gconn *not)
{
	struct gconn *k, *best = NULL;
	uint64_t least = 0;
	unsigned i, n, start, rank, best_rank = 0;
	struct gbatch *dst, tmp;

	n = c->nconns;
	if (n == 0)
		return -1;
	/* Ties go to the first in an order whose start moves on each call:
	 * round robin while the queues are short, the least loaded
	 * connection when they fill. */
	start = c->rr++ % n;
	for (i = 0, k = c->conns; k != NULL; k = k->next, i++) {
		uint64_t qn;

		if (k == not || !conn_room(k))
			continue;
		qn = k->qt - k->qh;
		rank = (i + n - start) % n;
		if (best == NULL || qn < least ||
		    (qn == least && rank < best_rank)) {
			best = k;
			least = qn;
			best_rank = rank;
		}
	}
	if (best == NULL)
		return -1;
	k = best;
	dst = &k->q[k->qt % c->o.queue];
	tmp = *dst;
	*dst = *src;
	*src = tmp;
	gbatch_clear(src);
	k->qt++;
	if (k->deferred) {
		k->deferred = 0;
		nghttp2_session_resume_data(k->h2, k->stream);
	}
	k->dirty = 1;
	return 0;
}

/* The stream is gone: batches handed to nghttp2 and not known sent are
 * dropped. Returns how many envelopes. */
static uint64_t
conn_stream_lost(struct gconn *k)
{
	unsigned qn = k->cli->o.queue;
	uint64_t last = k->take + (k->take_off > 0), i, lost = 0;

	for (i = k->qh; i < last; i++) {
		lost += k->q[i % qn].n;
		k->q[i % qn].n = 0;
	}
	k->qh = k->take = last;
	k->take_off = 0;
	k->taken = k->sent = 0;
	stat_add(&k->cli->st->dropped, lost);
	return lost;
}

/* The connection is going: batches not started move to others with room,
 * or are dropped. Returns the envelopes dropped. */
static uint64_t
conn_empty_queue(struct gconn *k, int move)
{
	struct gcli *c = k->cli;
	uint64_t lost = conn_stream_lost(k), i;

	for (i = k->qh; i < k->qt; i++) {
		struct gbatch *b = &k->q[i % c->o.queue];

		if (move && cli_dispatch(c, b, k) == 0)
			continue;
		lost += b->n;
		stat_add(&c->st->dropped, b->n);
		gbatch_clear(b);
	}
	k->qh = k->take = k->qt;
	return lost;
}

/* --- nghttp2 callbacks ----------------------------------------------- */

/* The request body: the queued batches back to back, as long as the
 * stream lasts. Called by nghttp2 within its flow-control window. */
static ssize_t
conn_read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct gconn *k = user;
	unsigned qn = k->cli->o.queue;
	size_t done = 0;

	(void)h2;
	(void)src;
	if (id != k->stream) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	while (done < len && k->take < k->qt) {
		struct gbatch *b = &k->q[k->take % qn];
		size_t n = b->len - k->take_off;

		if (k->take_off == 0)
			b->end = k->taken + b->len;
		if (n > len - done)
			n = len - done;
		memcpy(buf + done, b->buf + k->take_off, n);
		done += n;
		k->take_off += n;
		k->taken += n;
		if (k->take_off == b->len) {
			k->take++;
			k->take_off = 0;
		}
	}
	if (done > 0)
		return (ssize_t)done;
	if (k->ending) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	k->deferred = 1;
	return NGHTTP2_ERR_DEFERRED;
}

/* A DATA frame of ours went out: every batch whose last byte it carried
 * is egress, and its slot is free. */
static int
on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct gconn *k = user;
	struct gcli *c = k->cli;
	int freed = 0;

	(void)h2;
	if (f->hd.type != NGHTTP2_DATA || f->hd.stream_id != k->stream)
		return 0;
	k->sent += f->hd.length;
	while (k->qh < k->take && k->q[k->qh % c->o.queue].end <= k->sent) {
		struct gbatch *b = &k->q[k->qh % c->o.queue];

		stat_add(&c->st->egress, b->n);
		stat_add(&c->st->batches, 1);
		b->n = 0;
		k->qh++;
		freed = 1;
	}
	if (freed)
		cli_kick(c);
	return 0;
}

static int
on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
    void *user)
{
	struct gconn *k = user;
	char num[12];

	(void)h2;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != k->stream)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen < 4) {
		memcpy(num, value, valuelen);
		num[valuelen] = '\0';
		k->http_status = atoi(num);
	} else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0 &&
	    valuelen > 0 && valuelen < sizeof(num)) {
		memcpy(num, value, valuelen);
		num[valuelen] = '\0';
		k->grpc_status = atoi(num);
	} else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		if (valuelen >= sizeof(k->grpc_msg))
			valuelen = sizeof(k->grpc_msg) - 1;
		memcpy(k->grpc_msg, value, valuelen);
		k->grpc_msg[valuelen] = '\0';
	}
	return 0;
}

static void
conn_up(struct gconn *k)
{
	struct gcli *c = k->cli;

	k->up = 1;
	k->backoff_ms = c->o.backoff_min_ms;
	stat_add(&c->st->connects, 1);
	stat_add(&c->st->conns_up, 1);
	log_info("event=grpc_connected %starget=%s addr=%s tls=%s", c->tag,
	    k->tgt->spec, k->name, k->ssl ? "yes" : "no");
	/* The stream opens from the timer, outside nghttp2's callbacks; the
	 * connect deadline ends with it. */
	uv_timer_start(&k->timer, conn_on_timer, 0, 0);
	uv_timer_start(&k->ka, conn_on_timer, c->o.keepalive_ms,
	    c->o.keepalive_ms);
}

static int
on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct gconn *k = user;
	struct gcli *c = k->cli;
	char dbg[128], safe[128];
	size_t n;

	(void)h2;
	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !k->up)
			conn_up(k);
		break;
	case NGHTTP2_GOAWAY:
		n = f->goaway.opaque_data_len;
		if (n >= sizeof(dbg))
			n = sizeof(dbg) - 1;
		if (n > 0)
			memcpy(dbg, f->goaway.opaque_data, n);
		dbg[n] = '\0';
		log_info("event=grpc_goaway %saddr=%s code=%s debug=\"%s\"",
		    c->tag, k->name,
		    nghttp2_http2_strerror(f->goaway.error_code),
		    log_safe(dbg, safe, sizeof(safe)));
		/* Send what is queued, end the stream, then reconnect. */
		k->goaway = 1;
		k->ending = 1;
		if (k->deferred && k->stream > 0) {
			k->deferred = 0;
			nghttp2_session_resume_data(k->h2, k->stream);
		}
		k->dirty = 1;
		break;
	}
	return 0;
}

static int
on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct gconn *k = user;
	struct gcli *c = k->cli;
	char safe[sizeof(k->grpc_msg)];
	uint64_t lost;
	int failed;

	(void)h2;
	if (id != k->stream || id == 0)
		return 0;
	k->stream = 0;
	k->deferred = 0;
	lost = conn_stream_lost(k);
	failed = code != NGHTTP2_NO_ERROR || k->grpc_status != 0 ||
	    (k->http_status != 200 && k->http_status != 0);
	if (c->finishing || k->ending) {
		/* Our half-close answered: Go's servers say UNKNOWN "EOF"
		 * there, which is no failure, and every batch was counted. */
	} else if (code != NGHTTP2_NO_ERROR) {
		stat_add(&c->st->stream_failures, 1);
		log_warn("event=grpc_stream_failed %saddr=%s reset=%s "
		    "dropped=%llu", c->tag, k->name,
		    nghttp2_http2_strerror(code), (unsigned long long)lost);
	} else if (k->http_status != 200) {
		stat_add(&c->st->stream_failures, 1);
		log_warn("event=grpc_stream_failed %saddr=%s http_status=%d "
		    "dropped=%llu", c->tag, k->name, k->http_status,
		    (unsigned long long)lost);
	} else if (k->grpc_status != 0) {
		stat_add(&c->st->stream_failures, 1);
		log_warn("event=grpc_stream_failed %saddr=%s status=%d "
		    "message=\"%s\" dropped=%llu", c->tag, k->name,
		    k->grpc_status, log_safe(k->grpc_msg, safe, sizeof(safe)),
		    (unsigned long long)lost);
	} else {
		log_info("event=grpc_stream_ended %saddr=%s status=0", c->tag,
		    k->name);
	}
	if (k->ending || c->finishing) {
		/* Nothing more on this connection: GOAWAY, then close it
		 * once that is out (conn_flush sees the session done). */
		nghttp2_submit_goaway(k->h2, NGHTTP2_FLAG_NONE, 0,
		    NGHTTP2_NO_ERROR, NULL, 0);
		k->dirty = 1;
		return 0;
	}
	/* Reopen at once after a stream that lived a while; quickly failing
	 * ones back off, so a server refusing every call is not flooded. */
	if (uv_now(&c->loop) - k->stream_t0 >= STREAM_OK_MS)
		k->reopen_ms = c->o.backoff_min_ms;
	uv_timer_start(&k->timer, conn_on_timer,
	    failed ? backoff_next(c, &k->reopen_ms) : 0, 0);
	return 0;
}

/* --- streams --------------------------------------------------------- */

static int
conn_open_stream(struct gconn *k)
{
	struct gcli *c = k->cli;
	nghttp2_nv nv[] = {
		NV(":method", "POST"),
		NV(":scheme", k->ssl ? "https" : "http"),
		NV(":path", BATCH_PATH),
		NV(":authority", k->tgt->spec),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("user-agent", "lgr-grpccli/" LGR_VERSION),
	};
	nghttp2_data_provider prd;
	int32_t id;

	prd.source.ptr = k;
	prd.read_callback = conn_read_body;
	id = nghttp2_submit_request(k->h2, NULL, nv, sizeof(nv) / sizeof(nv[0]),
	    &prd, NULL);
	if (id < 0)
		return -1;
	k->stream = id;
	k->deferred = 0;
	k->http_status = 0;
	k->grpc_status = -1;
	k->grpc_msg[0] = '\0';
	k->stream_t0 = uv_now(&c->loop);
	k->taken = k->sent = 0;
	k->dirty = 1;
	return 0;
}

/* --- output ---------------------------------------------------------- */

static void
conn_on_write(uv_write_t *req, int status)
{
	struct gwrite *w = (struct gwrite *)req;
	struct gconn *k = w->k;

	free(w);
	if (status < 0) {
		if (status != UV_ECANCELED)
			conn_down(k, uv_strerror(status), 0);
		return;
	}
	if (k->blocked && k->state == CONN_OPEN &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&k->tcp) <
	    WQ_LIMIT / 2) {
		k->blocked = 0;
		conn_flush(k);
	}
}

/* Queue n bytes to the socket. 0, or -1. */
static int
conn_write(struct gconn *k, const void *p, size_t n)
{
	struct gwrite *w;

	if (n == 0)
		return 0;
	w = malloc(sizeof(*w) + n);
	if (w == NULL)
		return -1;
	memcpy(w->data, p, n);
	w->k = k;
	w->buf = uv_buf_init((char *)w->data, n);
	if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &w->buf, 1,
	    conn_on_write) < 0) {
		free(w);
		return -1;
	}
	return 0;
}

/* Move what TLS has made to the socket, in one write. */
static int
conn_tls_drain(struct gconn *k)
{
	size_t n = BIO_ctrl_pending(k->wbio);
	struct gwrite *w;

	if (n == 0)
		return 0;
	w = malloc(sizeof(*w) + n);
	if (w == NULL)
		return -1;
	if (BIO_read(k->wbio, w->data, (int)n) != (int)n) {
		free(w);
		return -1;
	}
	w->k = k;
	w->buf = uv_buf_init((char *)w->data, n);
	if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &w->buf, 1,
	    conn_on_write) < 0) {
		free(w);
		return -1;
	}
	return 0;
}

static int
conn_out(struct gconn *k, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (k->ssl == NULL)
		return conn_write(k, p, n);
	if (SSL_write(k->ssl, p, (int)n) != (int)n)
		return -1;
	return conn_tls_drain(k);
}

/* Everything nghttp2 has to send, gathered into few writes. Stops while
 * the socket's write queue is long; the write callback comes back. */
static void
conn_flush(struct gconn *k)
{
	struct gcli *c = k->cli;
	size_t have = 0;

	if (k->state != CONN_OPEN || k->h2 == NULL)
		return;
	/* HTTP/2 waits for the handshake. */
	if (k->ssl != NULL && !SSL_is_init_finished(k->ssl))
		return;
	k->dirty = 0;
	for (;;) {
		const uint8_t *data;
		ssize_t n;

		if (uv_stream_get_write_queue_size((uv_stream_t *)&k->tcp) >=
		    WQ_LIMIT) {
			k->blocked = 1;
			break;
		}
		n = nghttp2_session_mem_send(k->h2, &data);
		if (n < 0) {
			conn_down(k, nghttp2_strerror((int)n), 0);
			return;
		}
		if (n == 0)
			break;
		if (have + n > sizeof(c->obuf)) {
			if (conn_out(k, c->obuf, have) == -1)
				goto fail;
			have = 0;
		}
		if ((size_t)n > sizeof(c->obuf)) {
			if (conn_out(k, data, n) == -1)
				goto fail;
			continue;
		}
		memcpy(c->obuf + have, data, n);
		have += n;
	}
	if (conn_out(k, c->obuf, have) == -1)
		goto fail;
	if (!nghttp2_session_want_read(k->h2) &&
	    !nghttp2_session_want_write(k->h2))
		conn_down(k, k->goaway ? "goaway" : NULL, 1);
	return;
fail:
	conn_down(k, "write failed", 0);
}

/* --- input ----------------------------------------------------------- */

static void
conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct gconn *k = h->data;

	(void)hint;
	/* One buffer per client: each read is used up before the next. */
	*buf = uv_buf_init((char *)k->cli->rbuf, sizeof(k->cli->rbuf));
}

static int
conn_h2_in(struct gconn *k, const uint8_t *p, size_t n)
{
	ssize_t rc = nghttp2_session_mem_recv(k->h2, p, n);

	if (rc < 0) {
		conn_down(k, nghttp2_strerror((int)rc), 0);
		return -1;
	}
	return 0;
}

static int
conn_tls_in(struct gconn *k, const char *p, size_t n)
{
	struct gcli *c = k->cli;
	char why[ERR_LEN], msg[ERR_LEN + 32];
	const unsigned char *alpn;
	unsigned alen;
	int rc, err;

	if (BIO_write(k->rbio, p, (int)n) != (int)n) {
		conn_down(k, "tls buffer", 0);
		return -1;
	}
	if (!SSL_is_init_finished(k->ssl)) {
		rc = SSL_do_handshake(k->ssl);
		if (conn_tls_drain(k) == -1) {
			conn_down(k, "write failed", 0);
			return -1;
		}
		if (rc != 1) {
			err = SSL_get_error(k->ssl, rc);
			if (err == SSL_ERROR_WANT_READ)
				return 0;
			snprintf(msg, sizeof(msg), "tls handshake: %s",
			    tls_handshake_error(k->ssl, why, sizeof(why)));
			conn_down(k, msg, 0);
			return -1;
		}
		SSL_get0_alpn_selected(k->ssl, &alpn, &alen);
		if (alen != 0 && (alen != 2 || memcmp(alpn, "h2", 2) != 0)) {
			conn_down(k, "tls: the server chose a protocol other "
			    "than h2", 0);
			return -1;
		}
		k->dirty = 1;	/* the preface and the request can go */
	}
	for (;;) {
		rc = SSL_read(k->ssl, c->tbuf, sizeof(c->tbuf));
		if (rc <= 0) {
			err = SSL_get_error(k->ssl, rc);
			if (err == SSL_ERROR_WANT_READ)
				break;
			if (err == SSL_ERROR_ZERO_RETURN) {
				conn_down(k, "the server ended tls", 0);
				return -1;
			}
			snprintf(msg, sizeof(msg), "tls: %s",
			    tls_error(why, sizeof(why)));
			conn_down(k, msg, 0);
			return -1;
		}
		if (conn_h2_in(k, c->tbuf, rc) == -1)
			return -1;
	}
	/* TLS 1.3 may answer on its own (a key update, say). */
	if (conn_tls_drain(k) == -1) {
		conn_down(k, "write failed", 0);
		return -1;
	}
	return 0;
}

static void
conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct gconn *k = s->data;

	if (n == 0)
		return;
	if (n < 0) {
		conn_down(k, n == UV_EOF ? "the server closed the connection" :
		    uv_strerror((int)n), 0);
		return;
	}
	if (k->state != CONN_OPEN)
		return;
	k->last_read = uv_now(&k->cli->loop);
	k->ping_out = 0;
	if (k->ssl != NULL) {
		if (conn_tls_in(k, buf->base, n) == -1)
			return;
	} else if (conn_h2_in(k, (const uint8_t *)buf->base, n) == -1) {
		return;
	}
	conn_flush(k);
}

/* --- connection life ------------------------------------------------- */

static void
conn_free_if_done(struct gconn *k)
{
	struct gcli *c = k->cli;
	struct gconn **pp;
	unsigned i;

	if (!k->dead || k->handles > 0)
		return;
	for (pp = &c->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	for (i = 0; i < c->o.queue; i++)
		free(k->q[i].buf);
	free(k->q);
	k->tgt->nconns--;
	c->nconns--;
	free(k);
	if (c->finishing && c->nconns == 0 &&
	    !uv_is_closing((uv_handle_t *)&c->deadline))
		uv_close((uv_handle_t *)&c->deadline, NULL);
}

static void
conn_on_handle_closed(uv_handle_t *h)
{
	struct gconn *k = h->data;

	k->handles--;
	conn_free_if_done(k);
}

/* Close the timers and free the connection; its socket is closed first
 * if it has one. */
static void
conn_destroy(struct gconn *k)
{
	if (k->dead)
		return;
	k->dead = 1;
	if (k->state != CONN_IDLE) {
		conn_down(k, NULL, 0);
		return;	/* back from the socket's close callback */
	}
	uv_close((uv_handle_t *)&k->timer, conn_on_handle_closed);
	uv_close((uv_handle_t *)&k->ka, conn_on_handle_closed);
}

static void
conn_on_tcp_closed(uv_handle_t *h)
{
	struct gconn *k = h->data;
	struct gcli *c = k->cli;

	k->handles--;
	if (k->h2 != NULL)
		nghttp2_session_del(k->h2);
	if (k->ssl != NULL)
		SSL_free(k->ssl);
	k->h2 = NULL;
	k->ssl = NULL;
	k->rbio = k->wbio = NULL;
	k->state = CONN_IDLE;
	k->stream = 0;
	k->up = k->ending = k->goaway = k->blocked = k->dirty = 0;
	k->ping_out = 0;
	if (k->dead) {
		k->dead = 0;	/* conn_destroy takes it from here */
		conn_destroy(k);
		return;
	}
	if (c->finishing) {
		conn_destroy(k);
		return;
	}
	uv_timer_start(&k->timer, conn_on_timer, k->retry_ms, 0);
}

/* Close the socket. What the server sent and nobody read is read and
 * thrown away first: closing over unread bytes sends RST, not FIN, and
 * an RST makes the server's kernel drop what the server has not read
 * yet, our last batches among them. */
static void
conn_close_tcp(struct gconn *k)
{
	uv_os_fd_t fd;
	int i;

	if (uv_is_closing((uv_handle_t *)&k->tcp))
		return;
	if (uv_fileno((uv_handle_t *)&k->tcp, &fd) == 0)
		for (i = 0; i < 64 && recv(fd, k->cli->rbuf,
		    sizeof(k->cli->rbuf), MSG_DONTWAIT) > 0; i++)
			;
	uv_close((uv_handle_t *)&k->tcp, conn_on_tcp_closed);
}

static void
conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct gconn *k = req->data;

	(void)status;
	conn_close_tcp(k);
}

/* Take the connection down: account for its batches, log why (why NULL:
 * a close of our own, not logged), and close the socket, after what is
 * written when graceful. Then it reconnects after a backoff, unless the
 * client is finishing. */
static void
conn_down(struct gconn *k, const char *why, int graceful)
{
	struct gcli *c = k->cli;
	int was_up = k->up;
	uint64_t lost;

	if (k->state != CONN_CONNECTING && k->state != CONN_OPEN)
		return;
	/* Callbacks during the close must not touch the queue again. */
	k->stream = 0;
	lost = conn_empty_queue(k, !c->finishing && !k->dead);
	k->retry_ms = backoff_next(c, &k->backoff_ms);
	if (was_up) {
		stat_add(&c->st->disconnects, 1);
		stat_sub(&c->st->conns_up, 1);
	} else if (why != NULL) {
		stat_add(&c->st->connect_failures, 1);
	}
	if (why != NULL || lost > 0) {
		char retry[32] = "";

		if (!c->finishing && !k->dead)
			snprintf(retry, sizeof(retry), " retry_ms=%u",
			    k->retry_ms);
		log_warn("event=%s %starget=%s addr=%s reason=\"%s\" "
		    "dropped=%llu%s", was_up ? "grpc_disconnected" :
		    "grpc_connect_failed", c->tag, k->tgt->spec, k->name,
		    why ? why : "closing", (unsigned long long)lost, retry);
	}
	k->up = 0;
	uv_timer_stop(&k->timer);
	uv_timer_stop(&k->ka);
	if (!c->finishing)
		cli_kick(c);	/* batches moved to others want flushing */
	if (graceful && k->state == CONN_OPEN) {
		k->state = CONN_CLOSING;
		uv_read_stop((uv_stream_t *)&k->tcp);
		if (k->ssl != NULL && SSL_is_init_finished(k->ssl)) {
			SSL_shutdown(k->ssl);	/* close_notify */
			(void)conn_tls_drain(k);
		}
		k->sreq.data = k;
		/* The shutdown waits for the queued writes. */
		if (uv_shutdown(&k->sreq, (uv_stream_t *)&k->tcp,
		    conn_on_shutdown) == 0)
			return;
	}
	k->state = CONN_CLOSING;
	conn_close_tcp(k);
}

static int
conn_start_h2(struct gconn *k)
{
	struct gcli *c = k->cli;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};

	if (nghttp2_session_client_new(&k->h2, c->cbs, k) != 0)
		return -1;
	if (nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, 1) != 0)
		return -1;
	k->dirty = 1;
	return 0;
}

static void
conn_on_connect(uv_connect_t *req, int status)
{
	struct gconn *k = req->data;
	struct gcli *c = k->cli;
	const char *name;
	int rc;

	if (k->state != CONN_CONNECTING)
		return;		/* closed meanwhile */
	if (status < 0) {
		conn_down(k, uv_strerror(status), 0);
		return;
	}
	k->state = CONN_OPEN;
	k->last_read = uv_now(&c->loop);
	uv_tcp_nodelay(&k->tcp, 1);
	if (conn_start_h2(k) == -1) {
		conn_down(k, "http2 setup failed", 0);
		return;
	}
	if (c->o.ssl != NULL) {
		k->ssl = SSL_new(c->o.ssl);
		k->rbio = BIO_new(BIO_s_mem());
		k->wbio = BIO_new(BIO_s_mem());
		if (k->ssl == NULL || k->rbio == NULL || k->wbio == NULL) {
			BIO_free(k->rbio);
			BIO_free(k->wbio);
			k->rbio = k->wbio = NULL;
			conn_down(k, "tls setup failed", 0);
			return;
		}
		SSL_set_bio(k->ssl, k->rbio, k->wbio);
		SSL_set_connect_state(k->ssl);
		name = c->o.server_name ? c->o.server_name : k->tgt->host;
		if (tls_client_set_name(k->ssl, name) == -1) {
			conn_down(k, "tls: bad server name", 0);
			return;
		}
		rc = SSL_do_handshake(k->ssl);	/* the ClientHello */
		if (rc != 1 &&
		    SSL_get_error(k->ssl, rc) != SSL_ERROR_WANT_READ) {
			char why[ERR_LEN];

			conn_down(k, tls_error(why, sizeof(why)), 0);
			return;
		}
		if (conn_tls_drain(k) == -1) {
			conn_down(k, "write failed", 0);
			return;
		}
	}
	if (uv_read_start((uv_stream_t *)&k->tcp, conn_alloc,
	    conn_on_read) != 0) {
		conn_down(k, "read failed", 0);
		return;
	}
	conn_flush(k);
}

static void
conn_connect(struct gconn *k)
{
	struct gcli *c = k->cli;
	int rc;

	k->want_connect = 0;
	if (c->finishing)
		return;
	if ((rc = uv_tcp_init(&c->loop, &k->tcp)) != 0) {
		log_warn("event=grpc_connect_failed %starget=%s addr=%s "
		    "reason=\"%s\"", c->tag, k->tgt->spec, k->name,
		    uv_strerror(rc));
		uv_timer_start(&k->timer, conn_on_timer,
		    backoff_next(c, &k->backoff_ms), 0);
		return;
	}
	k->tcp.data = k;
	k->handles++;
	k->state = CONN_CONNECTING;
	k->creq.data = k;
	rc = uv_tcp_connect(&k->creq, &k->tcp, (struct sockaddr *)&k->addr,
	    conn_on_connect);
	if (rc != 0) {
		conn_down(k, uv_strerror(rc), 0);
		return;
	}
	uv_timer_start(&k->timer, conn_on_timer, c->o.connect_ms, 0);
}

static void
conn_keepalive(struct gconn *k)
{
	struct gcli *c = k->cli;

	if (k->state != CONN_OPEN || !k->up)
		return;
	if (k->ping_out) {
		conn_down(k, "keepalive timeout", 0);
		return;
	}
	if (uv_now(&c->loop) - k->last_read < c->o.keepalive_ms)
		return;		/* the server spoke lately: alive */
	if (nghttp2_submit_ping(k->h2, NGHTTP2_FLAG_NONE, NULL) == 0) {
		k->ping_out = 1;
		conn_flush(k);
	}
}

static void
conn_on_timer(uv_timer_t *t)
{
	struct gconn *k = t->data;
	struct gcli *c = k->cli;

	if (t == &k->ka) {
		conn_keepalive(k);
		return;
	}
	switch (k->state) {
	case CONN_IDLE:
		/* Backoff over: resolve the name again, then connect. */
		k->want_connect = 1;
		tgt_resolve(k->tgt);
		break;
	case CONN_CONNECTING:
		conn_down(k, "connect timeout", 0);
		break;
	case CONN_OPEN:
		if (!k->up) {
			conn_down(k, "connect timeout", 0);
			break;
		}
		if (k->stream == 0 && !k->ending && !k->goaway &&
		    !c->finishing) {
			if (conn_open_stream(k) == -1) {
				conn_down(k, "cannot open a stream", 0);
				break;
			}
			conn_flush(k);
			cli_kick(c);
		}
		break;
	case CONN_CLOSING:
		break;
	}
}

static struct gconn *
conn_new(struct gtarget *t, const struct sockaddr_storage *ss)
{
	struct gcli *c = t->cli;
	struct gconn *k = calloc(1, sizeof(*k));
	unsigned i;

	if (k == NULL)
		return NULL;
	k->q = calloc(c->o.queue, sizeof(*k->q));
	if (k->q == NULL) {
		free(k);
		return NULL;
	}
	for (i = 0; i < c->o.queue; i++)
		gbatch_clear(&k->q[i]);
	k->cli = c;
	k->tgt = t;
	k->addr = *ss;
	addr_name(ss, k->name, sizeof(k->name));
	k->backoff_ms = c->o.backoff_min_ms;
	k->reopen_ms = c->o.backoff_min_ms;
	uv_timer_init(&c->loop, &k->timer);
	uv_timer_init(&c->loop, &k->ka);
	k->timer.data = k->ka.data = k;
	k->handles = 2;
	k->next = c->conns;
	c->conns = k;
	c->nconns++;
	t->nconns++;
	return k;
}

/* --- names ----------------------------------------------------------- */

static void
tgt_on_timer(uv_timer_t *h)
{
	tgt_resolve(h->data);
}

static void
tgt_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gtarget *t = req->data;
	struct gcli *c = t->cli;
	struct sockaddr_storage found[GRPCCLI_MAX_RESOLVED];
	int have[GRPCCLI_MAX_RESOLVED];
	struct addrinfo *ai;
	struct gconn *k, *next;
	size_t n = 0, i;

	t->resolving = 0;
	if (c->finishing) {
		uv_freeaddrinfo(res);
		return;
	}
	if (status < 0) {
		log_warn("event=grpc_resolve_failed %starget=%s reason=\"%s\"",
		    c->tag, t->spec, uv_strerror(status));
		/* Waiting connections try the address they had. */
		for (k = c->conns; k != NULL; k = k->next)
			if (k->tgt == t && k->want_connect)
				conn_connect(k);
		if (t->nconns == 0)
			uv_timer_start(&t->timer, tgt_on_timer,
			    backoff_next(c, &t->backoff_ms), 0);
		return;
	}
	for (ai = res; ai != NULL && n < GRPCCLI_MAX_RESOLVED;
	    ai = ai->ai_next) {
		struct sockaddr_storage ss;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(ss))
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		for (i = 0; i < n && !addr_same(&found[i], &ss); i++)
			;
		if (i == n) {
			have[n] = 0;
			found[n++] = ss;
		}
	}
	uv_freeaddrinfo(res);
	t->backoff_ms = c->o.backoff_min_ms;
	for (k = c->conns; k != NULL; k = next) {
		next = k->next;
		if (k->tgt != t || k->dead)
			continue;
		for (i = 0; i < n && !addr_same(&found[i], &k->addr); i++)
			;
		if (i < n)
			have[i] = 1;
		if (!k->want_connect)
			continue;
		if (i < n) {
			conn_connect(k);
		} else {
			log_info("event=grpc_address_gone %starget=%s addr=%s",
			    c->tag, t->spec, k->name);
			conn_destroy(k);
		}
	}
	for (i = 0; i < n; i++) {
		if (have[i])
			continue;
		k = conn_new(t, &found[i]);
		if (k == NULL) {
			log_error("event=grpc_connect_failed %starget=%s "
			    "reason=\"out of memory\"", c->tag, t->spec);
			continue;
		}
		log_info("event=grpc_address %starget=%s addr=%s", c->tag,
		    t->spec, k->name);
		conn_connect(k);
	}
	if (t->nconns == 0)
		uv_timer_start(&t->timer, tgt_on_timer,
		    backoff_next(c, &t->backoff_ms), 0);
}

static void
tgt_resolve(struct gtarget *t)
{
	struct gcli *c = t->cli;
	struct addrinfo hints;
	int rc;

	if (t->resolving || c->finishing)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	t->req.data = t;
	rc = uv_getaddrinfo(&c->loop, &t->req, tgt_on_resolved, t->host,
	    t->port, &hints);
	if (rc != 0) {
		struct gconn *k;

		log_warn("event=grpc_resolve_failed %starget=%s reason=\"%s\"",
		    c->tag, t->spec, uv_strerror(rc));
		for (k = c->conns; k != NULL; k = k->next)
			if (k->tgt == t && k->want_connect)
				conn_connect(k);
		if (t->nconns == 0)
			uv_timer_start(&t->timer, tgt_on_timer,
			    backoff_next(c, &t->backoff_ms), 0);
		return;
	}
	t->resolving = 1;
}

/* --- the ring side --------------------------------------------------- */

/* Closed, and every frame it will ever hold popped. */
static int
cli_ring_over(struct gcli *c)
{
	/* ring_close stores head before closed, so once closed is seen,
	 * head is final. */
	if (!atomic_load_explicit(&c->ring->closed, memory_order_acquire))
		return 0;
	return c->ring->tail >= ring_ingress(c->ring);
}

/* Envelope bytes an EnvelopeBatch spends on a frame of len bytes. */
static size_t
batch_bytes(uint32_t len)
{
	return 1 + pb_varint_size(len) + len;
}

/* Append the moved frames lying in the scratch buffer to the building
 * batch. The caller made sure they fit max_message. */
static void
cli_take_scratch(struct gcli *c, uint64_t moved)
{
	struct gbatch *b = &c->build;
	const unsigned char *p, *end = c->fw.buf + c->fw.len;
	size_t add = 0;

	stat_add(&c->st->popped, moved);
	for (p = c->fw.buf; p < end; p += FRAME_HEADER + frame_get_len(p))
		add += batch_bytes(frame_get_len(p));
	if (gbatch_reserve(b, b->len + add) == -1) {
		log_error("event=grpc_dropped %sreason=\"out of memory\" "
		    "envelopes=%llu", c->tag, (unsigned long long)moved);
		stat_add(&c->st->dropped, moved);
		return;
	}
	for (p = c->fw.buf; p < end; p += FRAME_HEADER + frame_get_len(p)) {
		uint32_t len = frame_get_len(p);
		ssize_t w = pb_batch_put(b->buf + b->len, b->cap - b->len,
		    p + FRAME_HEADER, len);

		b->len += (size_t)w;	/* reserved above: never -1 */
		b->n++;
	}
}

#define POP_FULL (-2)

/* Move frames from the ring into the building batch: as many as fit in
 * it by count and bytes. Returns the number moved, 0 when the ring is
 * empty, POP_FULL when the next frame needs a new batch. */
static int
cli_pop(struct gcli *c)
{
	struct gbatch *b = &c->build;
	size_t room = c->o.max_message - (b->len - GRPC_PREFIX), fcap;
	uint64_t before = c->fw.frames, moved;
	int rc;

	/* A frame's 4-byte header becomes a tag and a varint of 2 to 4
	 * bytes for envelopes under 2 MiB, and 5 or 6 above: frames of
	 * fcap bytes in all make at most room bytes of batch. */
	fcap = room - 2 * (room >> 21);
	if (fcap > c->scratch_cap)
		fcap = c->scratch_cap;
	if (fcap <= FRAME_HEADER)
		return POP_FULL;
	/* The scratch writer has no fd: ring_pop_into stops, failing to
	 * flush it, as soon as the next run does not fit, so what it holds
	 * is exactly what this call moved. */
	c->fw.cap = fcap;
	c->fw.len = 0;
	rc = ring_pop_into(c->ring, &c->fw, c->o.batch_max - b->n);
	moved = c->fw.frames - before;
	if (moved > 0) {
		cli_take_scratch(c, moved);
		return (int)moved;
	}
	if (rc != -1 || errno != EMSGSIZE)
		return 0;
	if (b->n > 0)
		return POP_FULL;
	/* Alone in a batch and still too big by the estimate: take it with
	 * the whole scratch buffer, which holds any frame the ring can. */
	c->fw.cap = c->scratch_cap;
	c->fw.len = 0;
	(void)ring_pop_into(c->ring, &c->fw, 1);
	moved = c->fw.frames - before;
	if (moved == 0)
		return 0;
	if (batch_bytes(frame_get_len(c->fw.buf)) <= room) {
		cli_take_scratch(c, moved);
		return 1;
	}
	stat_add(&c->st->popped, 1);
	stat_add(&c->st->dropped, 1);
	log_warn("event=grpc_dropped %sreason=\"envelope over the message "
	    "size\" len=%u max_message=%zu", c->tag, frame_get_len(c->fw.buf),
	    c->o.max_message);
	return 1;
}

/* Pop and drop all the closed ring still holds. */
static uint64_t
cli_drop_ring(struct gcli *c)
{
	uint64_t n = 0, before;

	for (;;) {
		before = c->fw.frames;
		c->fw.cap = c->scratch_cap;
		c->fw.len = 0;
		(void)ring_pop_into(c->ring, &c->fw, 4096);
		if (c->fw.frames == before)
			break;
		n += c->fw.frames - before;
	}
	stat_add(&c->st->popped, n);
	stat_add(&c->st->dropped, n);
	return n;
}

static void cli_finish(struct gcli *c, int force);

static void
cli_on_flush(uv_timer_t *t)
{
	struct gcli *c = t->data;

	c->flush_due = 1;
	cli_pump(c);
}

static int
cli_all_sent(struct gcli *c)
{
	struct gconn *k;

	if (c->build.n > 0)
		return 0;
	for (k = c->conns; k != NULL; k = k->next)
		if (k->qh != k->qt)
			return 0;
	return 1;
}

static void cli_on_deadline(uv_timer_t *t);

/* Move frames from the ring into batches and batches to connections,
 * as far as the connections have room; then flush them. */
static void
cli_pump(struct gcli *c)
{
	struct gbatch *b = &c->build;
	struct gconn *k;
	int rc;

	if (c->finishing)
		return;
	for (;;) {
		if (b->n > 0 && (b->n >= c->o.batch_max || c->build_full ||
		    c->flush_due || c->ring_done)) {
			gbatch_seal(b);
			if (cli_dispatch(c, b, NULL) == -1)
				break;	/* frames wait in the ring */
			uv_timer_stop(&c->flush);
			c->flush_due = c->build_full = 0;
			continue;
		}
		if (c->ring_done || !cli_room(c))
			break;
		rc = cli_pop(c);
		if (rc == POP_FULL) {
			c->build_full = 1;
			continue;
		}
		if (rc == 0) {
			c->ring_done = cli_ring_over(c);
			if (c->ring_done && b->n > 0)
				continue;
			break;
		}
		c->poll_ms = POLL_MIN_MS;
		if (b->n == (size_t)rc)
			uv_timer_start(&c->flush, cli_on_flush,
			    c->o.flush_ms, 0);
	}
	for (k = c->conns; k != NULL; k = k->next)
		if (k->dirty)
			conn_flush(k);
	if (!c->draining &&
	    atomic_load_explicit(&c->ring->closed, memory_order_acquire)) {
		c->draining = 1;
		uv_timer_start(&c->deadline, cli_on_deadline, c->o.drain_ms, 0);
	}
	if (!c->ring_done && c->draining)
		c->ring_done = cli_ring_over(c);
	if (c->ring_done && cli_all_sent(c))
		cli_finish(c, 0);
}

static void
cli_on_poll(uv_timer_t *t)
{
	struct gcli *c = t->data;

	/* cli_pump sets poll_ms to the minimum when it moved frames. */
	c->poll_ms = c->poll_ms >= POLL_MAX_MS / 2 ? POLL_MAX_MS :
	    c->poll_ms * 2;
	cli_pump(c);
	if (!c->finishing)
		uv_timer_start(&c->poll, cli_on_poll, c->poll_ms, 0);
}

static void
cli_on_kick(uv_idle_t *h)
{
	struct gcli *c = h->data;

	uv_idle_stop(h);
	cli_pump(c);
}

static void
cli_kick(struct gcli *c)
{
	if (!c->finishing)
		uv_idle_start(&c->kick, cli_on_kick);
}

/* Close every connection: gracefully (send what is queued, half-close
 * the stream, wait for the server's answer) unless force. */
static void
cli_finish(struct gcli *c, int force)
{
	struct gconn *k, *next;
	size_t i;

	if (c->finishing) {
		if (!force)
			return;
	} else {
		c->finishing = 1;
		uv_close((uv_handle_t *)&c->poll, NULL);
		uv_close((uv_handle_t *)&c->flush, NULL);
		uv_close((uv_handle_t *)&c->kick, NULL);
		for (i = 0; i < c->ntgts; i++) {
			struct gtarget *t = &c->tgts[i];

			if (t->resolving)
				uv_cancel((uv_req_t *)&t->req);
			uv_close((uv_handle_t *)&t->timer, NULL);
		}
	}
	for (k = c->conns; k != NULL; k = next) {
		next = k->next;
		if (force && k->state == CONN_CLOSING) {
			/* Maybe waiting on writes a server does not read:
			 * stop waiting. */
			conn_close_tcp(k);
			k->dead = 1;
			continue;
		}
		if (k->dead)
			continue;
		if (!force && k->state == CONN_OPEN && k->up) {
			k->ending = 1;
			if (k->stream > 0 && k->deferred) {
				k->deferred = 0;
				nghttp2_session_resume_data(k->h2, k->stream);
			}
			if (k->stream <= 0)
				nghttp2_submit_goaway(k->h2,
				    NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
				    NULL, 0);
			conn_flush(k);
			continue;
		}
		conn_destroy(k);
	}
	if (c->nconns == 0) {
		if (!uv_is_closing((uv_handle_t *)&c->deadline))
			uv_close((uv_handle_t *)&c->deadline, NULL);
		return;
	}
	uv_timer_start(&c->deadline, cli_on_deadline, CLOSE_GRACE_MS, 0);
}

static void
cli_on_deadline(uv_timer_t *t)
{
	struct gcli *c = t->data;
	struct gbatch *b = &c->build;
	struct gconn *k;
	uint64_t lost;

	if (c->finishing) {
		cli_finish(c, 1);
		return;
	}
	/* Draining took too long: whatever is left is dropped. */
	lost = b->n;
	stat_add(&c->st->dropped, b->n);
	gbatch_clear(b);
	for (k = c->conns; k != NULL; k = k->next)
		lost += conn_empty_queue(k, 0);
	lost += cli_drop_ring(c);
	log_warn("event=grpc_drain_timeout %sdropped=%llu drain_ms=%u", c->tag,
	    (unsigned long long)lost, c->o.drain_ms);
	cli_finish(c, 1);
}

/* --- setup and teardown ---------------------------------------------- */

static void
cli_opts_defaults(struct grpccli_opts *o)
{
	if (o->batch_max == 0)
		o->batch_max = GRPCCLI_BATCH_MAX;
	if (o->flush_ms == 0)
		o->flush_ms = GRPCCLI_FLUSH_MS;
	if (o->backoff_min_ms == 0)
		o->backoff_min_ms = GRPCCLI_BACKOFF_MIN_MS;
	if (o->backoff_max_ms == 0)
		o->backoff_max_ms = GRPCCLI_BACKOFF_MAX_MS;
	if (o->backoff_max_ms < o->backoff_min_ms)
		o->backoff_max_ms = o->backoff_min_ms;
	if (o->max_message == 0)
		o->max_message = GRPCCLI_MAX_MESSAGE;
	if (o->queue == 0)
		o->queue = GRPCCLI_QUEUE;
	if (o->keepalive_ms == 0)
		o->keepalive_ms = GRPCCLI_KEEPALIVE_MS;
	if (o->connect_ms == 0)
		o->connect_ms = GRPCCLI_CONNECT_MS;
	if (o->drain_ms == 0)
		o->drain_ms = GRPCCLI_DRAIN_MS;
}

static nghttp2_session_callbacks *
cli_callbacks(void)
{
	nghttp2_session_callbacks *cbs;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
	    on_frame_send);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    on_frame_recv);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    on_stream_close);
	return cbs;
}

static void
cli_close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
cli_release(struct gcli *c)
{
	if (c->cbs != NULL)
		nghttp2_session_callbacks_del(c->cbs);
	free(c->tgts);
	free(c->build.buf);
	frame_writer_release(&c->fw);
	free(c);
}

int
grpccli_run(const struct grpccli_opts *o, struct ring *r,
    struct grpccli_stats *st)
{
	char err[ERR_LEN];
	struct gcli *c;
	size_t i;
	int rc;

	if (grpccli_check(o, err, sizeof(err)) == -1) {
		log_error("event=grpc_bad_options %s%s%sreason=\"%s\"",
		    o->name ? "sink=" : "", o->name ? o->name : "",
		    o->name ? " " : "", err);
		errno = EINVAL;
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -1;
	c->o = *o;
	cli_opts_defaults(&c->o);
	c->ring = r;
	c->st = st;
	c->poll_ms = POLL_MIN_MS;
	c->seed = (uint64_t)time_now_ns() ^ (uint64_t)(uintptr_t)c;
	if (c->seed == 0)
		c->seed = 1;
	if (o->name != NULL)
		snprintf(c->tag, sizeof(c->tag), "sink=%s ", o->name);
	/* Any frame the ring can hold fits the scratch buffer. */
	c->scratch_cap = r->nbytes / 2 > 4096 ? r->nbytes / 2 : 4096;
	c->tgts = calloc(o->naddrs, sizeof(*c->tgts));
	c->cbs = cli_callbacks();
	if (c->tgts == NULL || c->cbs == NULL ||
	    frame_writer_init(&c->fw, -1, c->scratch_cap) == -1 ||
	    gbatch_reserve(&c->build, GRPC_PREFIX) == -1) {
		cli_release(c);
		errno = ENOMEM;
		return -1;
	}
	gbatch_clear(&c->build);
	if ((rc = uv_loop_init(&c->loop)) != 0) {
		log_error("event=grpc_start_failed %sreason=\"%s\"", c->tag,
		    uv_strerror(rc));
		cli_release(c);
		errno = -rc;
		return -1;
	}
	uv_timer_init(&c->loop, &c->poll);
	uv_timer_init(&c->loop, &c->flush);
	uv_timer_init(&c->loop, &c->deadline);
	uv_idle_init(&c->loop, &c->kick);
	c->poll.data = c->flush.data = c->deadline.data = c->kick.data = c;
	c->ntgts = o->naddrs;
	for (i = 0; i < o->naddrs; i++) {
		struct gtarget *t = &c->tgts[i];

		t->cli = c;
		t->spec = o->addrs[i];
		t->backoff_ms = c->o.backoff_min_ms;
		(void)addr_split(t->spec, t->host, sizeof(t->host), t->port,
		    sizeof(t->port), err, sizeof(err));
		uv_timer_init(&c->loop, &t->timer);
		t->timer.data = t;
		tgt_resolve(t);
	}
	uv_timer_start(&c->poll, cli_on_poll, POLL_MIN_MS, 0);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	/* Nothing should be left open; if something is, close it rather
	 * than leak it with the loop. */
	if (uv_loop_close(&c->loop) == UV_EBUSY) {
		uv_walk(&c->loop, cli_close_any, NULL);
		uv_run(&c->loop, UV_RUN_DEFAULT);
		uv_loop_close(&c->loop);
	}
	while (c->conns != NULL) {
		struct gconn *k = c->conns;

		c->conns = k->next;
		for (i = 0; i < c->o.queue; i++)
			free(k->q[i].buf);
		free(k->q);
		free(k);
	}
	cli_release(c);
	return 0;
}
