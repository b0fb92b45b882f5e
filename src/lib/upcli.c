/* upcli: server-streaming gRPC subscriptions multiplexed on one HTTP/2
 * connection per upstream address, on libuv, nghttp2 and tlsio.
 *
 * Lifetimes. A stream (struct ustream) is one subscription's call on one
 * connection and sits on two lists, its subscription's and its
 * connection's. Whichever goes first unlinks it from the other and frees
 * it: a cancelled subscription when it is reaped, a destroyed connection
 * when its handles have closed. Nothing is freed under a callback: every
 * entry from the loop runs between cli_enter and cli_leave, and the
 * outermost cli_leave flushes output and reaps cancelled subscriptions,
 * so a user callback may cancel anything, or close the client, and the
 * code that called it still finds its memory. nghttp2 only knows a
 * stream through its stream user data, set to NULL whenever the stream
 * leaves it, so late callbacks about it are ignored. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>

#include "addr.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "tlsio.h"
#include "upcli.h"

#define GRPC_PREFIX 5		/* compressed flag, 4-byte length */
#define IO_CHUNK (64 * 1024)
/* Bytes waiting in libuv's write queue before a connection stops making
 * more. A subscriber sends little, but a server that stops reading must
 * not make us buffer without end. */
#define WQ_LIMIT (1024 * 1024)
/* Windows sized so that the server never waits on us: we consume at
 * once and WINDOW_UPDATEs go out as nghttp2 sees fit. */
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)
#define MAX_HEADER_LIST (64 * 1024)
#define STREAM_OK_MS 1000	/* a stream living this long did not fail */
#define CLOSE_GRACE_MS 1000	/* for a graceful shutdown to get out */
#define KEEP_BUF (64 * 1024)	/* reassembly buffers kept between messages */
#define MIN_BUFFERED (64u * 1024 * 1024)
#define ERR_LEN 256
#define MSG_LEN 128

enum conn_state {
	CONN_IDLE,		/* no socket: waiting to (re)connect */
	CONN_CONNECTING,	/* TCP connect under way */
	CONN_OPEN,		/* connected: TLS, then HTTP/2 */
	CONN_CLOSING,		/* socket being shut down and closed */
};

struct utarget {
	struct upcli *cli;
	size_t index;		/* in o.addrs */
	const char *spec;	/* HOST:PORT as given; borrowed */
	char host[256];
	char port[8];
	uv_getaddrinfo_t req;
	uv_timer_t timer;	/* retry a resolution that found nothing */
	unsigned backoff_ms;
	int resolving;
	unsigned nconns;
};

struct ustream {
	struct upsub *sub;	/* NULL once its connection is destroyed */
	struct uconn *k;	/* NULL once its subscription is cancelled */
	struct ustream *sprev, *snext;
	struct ustream *kprev, *knext;
	int32_t id;		/* HTTP/2 stream; 0 when not open */
	int reported;		/* -1 nothing yet, else the last up told */
	int answered;		/* the server's response headers came */
	int http_status;
	int grpc_status;	/* -1 until trailers bring one */
	char grpc_msg[MSG_LEN];	/* percent-decoded */
	size_t req_off;		/* request bytes handed to nghttp2 */
	uint64_t t0;		/* loop time it was opened */
	uint64_t reopen_at;	/* loop time it may open again */
	unsigned backoff_ms;
	/* The message being reassembled: its prefix, then its bytes. */
	unsigned char hdr[GRPC_PREFIX];
	size_t hlen;
	size_t need;
	size_t have;
	unsigned char *buf;
	size_t cap;
};

struct upsub {
	struct upcli *cli;
	struct upsub *prev, *next;	/* live list, then the reap list */
	unsigned long id;	/* sub= in log lines */
	char *path;
	uint8_t *req;		/* GRPC_PREFIX bytes, then the message */
	size_t reqlen;
	upsub_msg_cb on_msg;
	upsub_state_cb on_state;
	void *arg;
	struct ustream *streams;
	int dead;
};

struct uconn {
	struct upcli *cli;
	struct utarget *tgt;
	struct uconn *next;
	struct sockaddr_storage addr;
	char name[64];		/* addr as text */
	enum conn_state state;
	int handles;		/* uv handles open; freed at 0 once dead */
	int dead;		/* address gone, or closing */
	int up;			/* the server's SETTINGS came */
	int want_connect;	/* waiting for its name to be resolved */
	int dirty;		/* HTTP/2 output may be waiting */
	int blocked;		/* output stopped: write queue full */
	int goaway;		/* the server is going away */
	int ping_out;		/* a keepalive PING is unanswered */
	int in_h2;		/* inside nghttp2's send or receive */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_shutdown_t sreq;
	uv_timer_t timer;	/* backoff, connect deadline */
	uv_timer_t ka;		/* keepalive */
	uv_timer_t reopen;	/* streams due to (re)open */
	int reopen_armed;
	uint64_t reopen_due;	/* when reopen fires, if armed */
	nghttp2_session *h2;
	struct tlsio tls;	/* tls.ssl NULL: clear text */
	unsigned backoff_ms;	/* next reconnect delay, before jitter */
	unsigned retry_ms;	/* the delay chosen when it went down */
	uint64_t last_read;	/* loop time of the last bytes in */
	struct ustream *streams;
	char goaway_why[MSG_LEN];
};

struct upcli {
	struct upcli_opts o;
	uv_loop_t *loop;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *h2opt;
	struct utarget *tgts;
	size_t ntgts;
	struct uconn *conns;
	unsigned nconns;
	struct upsub *subs;
	struct upsub *reap;	/* cancelled, freed by the outermost leave */
	unsigned long next_id;
	struct upcli_stats st;
	size_t buffered;	/* bytes in reassembly buffers */
	int depth;		/* cli_enter nesting */
	int closing;
	unsigned handles;	/* handles and requests still to call back */
	uint64_t seed;
	unsigned char rbuf[IO_CHUNK];	/* socket reads */
	unsigned char tbuf[IO_CHUNK];	/* TLS plaintext in */
	unsigned char obuf[IO_CHUNK];	/* HTTP/2 output, gathered */
};

struct uwrite {
	uv_write_t req;
	uv_buf_t buf;
	struct uconn *k;
	unsigned char data[];
};

static void cli_maybe_free(struct upcli *c);
static void conn_connect(struct uconn *k);
static void conn_down(struct uconn *k, const char *why, int graceful);
static void conn_destroy(struct uconn *k);
static void conn_flush(struct uconn *k);
static void conn_on_timer(uv_timer_t *t);
static void conn_on_reopen(uv_timer_t *t);
static void tgt_resolve(struct utarget *t);

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, \
	strlen(v), NGHTTP2_NV_FLAG_NONE }

/* --- entry and exit -------------------------------------------------- */

static void
cli_enter(struct upcli *c)
{
	c->depth++;
}

static void
sub_free(struct upsub *s)
{
	struct ustream *st, *next;

	for (st = s->streams; st != NULL; st = next) {
		next = st->snext;
		free(st->buf);
		free(st);
	}
	free(s->path);
	free(s->req);
	free(s);
}

/* Leaving the outermost callback: write what the callbacks made, then
 * free what they cancelled. */
static void
cli_leave(struct upcli *c)
{
	struct uconn *k;
	int round, again;

	if (c->depth == 1) {
		/* Flushing may call back, and a callback may make more. */
		for (round = 0, again = 1; again && round < 16; round++) {
			again = 0;
			for (k = c->conns; k != NULL; k = k->next) {
				if (k->dirty && k->state == CONN_OPEN) {
					conn_flush(k);
					again = 1;
				}
			}
		}
		while (c->reap != NULL) {
			struct upsub *s = c->reap;

			c->reap = s->next;
			sub_free(s);
		}
	}
	c->depth--;
}

/* --- text ------------------------------------------------------------ */

/* A value for a log field inside quotes: no quotes, no control bytes. */
static const char *
log_safe(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = s[i] == '"' || s[i] == '\\' ||
		    (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* grpc-message is percent-encoded; decode what fits in out. */
static void
pct_decode(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < outlen; i++) {
		int hi, lo;

		if (p[i] == '%' && i + 2 < n &&
		    (hi = hexval(p[i + 1])) >= 0 &&
		    (lo = hexval(p[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = (char)p[i];
		}
	}
	out[o] = '\0';	/* a %00 just ends it early */
}

/* A small decimal header value; -1 if it is not one. */
static int
small_num(const uint8_t *p, size_t n)
{
	int v = 0;
	size_t i;

	if (n == 0 || n > 9)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* --- addresses ------------------------------------------------------- */

int
upcli_check(const struct upcli_opts *o, char *err, size_t errlen)
{
	char host[256], port[8];
	size_t i;

	if (o->addrs == NULL || o->naddrs == 0) {
		snprintf(err, errlen, "no upstream address");
		return -1;
	}
	if (o->naddrs > UPCLI_MAX_TARGETS) {
		snprintf(err, errlen, "more than %d upstream addresses",
		    UPCLI_MAX_TARGETS);
		return -1;
	}
	for (i = 0; i < o->naddrs; i++)
		if (o->addrs[i] == NULL || addr_split(o->addrs[i], host,
		    sizeof(host), port, sizeof(port), err, errlen) == -1)
			return -1;
	if (o->max_message != 0 && (o->max_message < 1024 ||
	    o->max_message > 256u * 1024 * 1024)) {
		snprintf(err, errlen, "message size %zu is not within "
		    "1024 to 268435456", o->max_message);
		return -1;
	}
	if (o->max_buffered != 0 && o->max_message != 0 &&
	    o->max_buffered < o->max_message) {
		snprintf(err, errlen, "buffer limit %zu is under the message "
		    "size %zu", o->max_buffered, o->max_message);
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

/* --- backoff --------------------------------------------------------- */

static uint64_t
cli_rand(struct upcli *c)
{
	uint64_t x = c->seed;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->seed = x;
	return x;
}

/* The next delay from *cur, which then doubles up to the maximum. Up to
 * a quarter is cut at random, so streams and connections that failed
 * together do not all come back in the same millisecond. */
static unsigned
backoff_next(struct upcli *c, unsigned *cur)
{
	unsigned d = *cur;

	*cur = d > c->o.backoff_max_ms / 2 ? c->o.backoff_max_ms : d * 2;
	return d - (unsigned)(cli_rand(c) % (d / 4 + 1));
}

/* --- streams --------------------------------------------------------- */

static struct ustream *
stream_new(struct upsub *s, struct uconn *k)
{
	struct ustream *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->sub = s;
	st->k = k;
	st->reported = -1;
	st->backoff_ms = s->cli->o.backoff_min_ms;
	st->snext = s->streams;
	if (s->streams != NULL)
		s->streams->sprev = st;
	s->streams = st;
	st->knext = k->streams;
	if (k->streams != NULL)
		k->streams->kprev = st;
	k->streams = st;
	return st;
}

/* Off its connection's list. Its own knext stays, so a walk of that list
 * standing on it (under a callback that cancelled it) still goes on. */
static void
stream_unlink_k(struct ustream *st)
{
	struct uconn *k = st->k;

	if (st->kprev != NULL)
		st->kprev->knext = st->knext;
	else
		k->streams = st->knext;
	if (st->knext != NULL)
		st->knext->kprev = st->kprev;
	st->kprev = NULL;
	st->k = NULL;
}

static void
stream_unlink_s(struct ustream *st)
{
	struct upsub *s = st->sub;

	if (st->sprev != NULL)
		st->sprev->snext = st->snext;
	else
		s->streams = st->snext;
	if (st->snext != NULL)
		st->snext->sprev = st->sprev;
	st->sprev = st->snext = NULL;
	st->sub = NULL;
}

static int
stream_live(const struct ustream *st)
{
	return st->sub != NULL && !st->sub->dead && st->k != NULL;
}

static void
stream_buf_free(struct upcli *c, struct ustream *st)
{
	if (st->buf != NULL) {
		c->buffered -= st->cap;
		free(st->buf);
		st->buf = NULL;
		st->cap = 0;
	}
}

/* nghttp2 forgets the stream (late callbacks about it find no user
 * data); the partial message goes. */
static void
stream_detach(struct upcli *c, struct ustream *st)
{
	struct uconn *k = st->k;

	if (st->id > 0 && k != NULL && k->h2 != NULL)
		(void)nghttp2_session_set_stream_user_data(k->h2, st->id,
		    NULL);
	if (st->id > 0 && st->answered)
		c->st.streams_up--;
	st->id = 0;
	st->answered = 0;
	st->hlen = st->have = st->need = 0;
	if (st->cap > KEEP_BUF)
		stream_buf_free(c, st);
}

/* Tell the subscription, transitions only. The callback may cancel
 * anything: the caller looks at stream_live(st) before going on. */
static void
stream_report(struct ustream *st, int up, const char *why)
{
	struct upsub *s = st->sub;

	if (!stream_live(st) || st->reported == up)
		return;
	st->reported = up;
	if (s->on_state != NULL)
		s->on_state(s->arg, st->k->tgt->index, up, why);
}

/* Open due streams when the reopen timer next fires, at `at`. */
static void
conn_arm_reopen(struct uconn *k, uint64_t at)
{
	struct upcli *c = k->cli;
	uint64_t now = uv_now(c->loop);

	if (!k->up || k->dead || c->closing)
		return;
	if (k->reopen_armed && k->reopen_due <= at)
		return;
	k->reopen_armed = 1;
	k->reopen_due = at > now ? at : now;
	uv_timer_start(&k->reopen, conn_on_reopen, k->reopen_due - now, 0);
}

/* The stream is down on a live connection: forget it in nghttp2, tell
 * the subscription, and reopen it after its backoff. */
static void
stream_down(struct ustream *st, const char *why)
{
	struct uconn *k = st->k;
	struct upcli *c = k->cli;
	uint64_t now = uv_now(c->loop);

	if (now - st->t0 >= STREAM_OK_MS)
		st->backoff_ms = c->o.backoff_min_ms;
	stream_detach(c, st);
	st->reopen_at = now + backoff_next(c, &st->backoff_ms);
	conn_arm_reopen(k, st->reopen_at);
	stream_report(st, 0, why);
}

static void
stream_answered(struct ustream *st)
{
	struct upcli *c = st->k->cli;

	if (st->answered)
		return;
	st->answered = 1;
	c->st.streams_up++;
	stream_report(st, 1, "open");
}

/* The request body: the one request message, then end of stream. */
static ssize_t
stream_read_req(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct ustream *st = nghttp2_session_get_stream_user_data(h2, id);
	size_t n;

	(void)src;
	(void)user;
	if (st == NULL || !stream_live(st)) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	n = st->sub->reqlen - st->req_off;
	if (n > len)
		n = len;
	memcpy(buf, st->sub->req + st->req_off, n);
	st->req_off += n;
	if (st->req_off == st->sub->reqlen)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Submit the call. 0, or -1 (the connection must be renewed). */
static int
stream_open(struct ustream *st)
{
	struct uconn *k = st->k;
	struct upcli *c = k->cli;
	nghttp2_nv nv[] = {
		NV(":method", "POST"),
		NV(":scheme", k->tls.ssl != NULL ? "https" : "http"),
		NV(":path", st->sub->path),
		NV(":authority", k->tgt->spec),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("grpc-accept-encoding", "identity"),
		NV("user-agent", "lgr/" LGR_VERSION),
	};
	nghttp2_data_provider prd;
	int32_t id;

	memset(&prd, 0, sizeof(prd));
	prd.read_callback = stream_read_req;
	id = nghttp2_submit_request(k->h2, NULL, nv, sizeof(nv) / sizeof(nv[0]),
	    &prd, st);
	if (id < 0)
		return -1;
	st->id = id;
	st->answered = 0;
	st->http_status = 0;
	st->grpc_status = -1;
	st->grpc_msg[0] = '\0';
	st->req_off = 0;
	st->hlen = st->have = st->need = 0;
	st->t0 = uv_now(c->loop);
	k->dirty = 1;
	return 0;
}

/* We end the stream: log, reset it (CANCEL), reopen it later. */
__attribute__((format(printf, 2, 3)))
static void
stream_reject(struct ustream *st, const char *fmt, ...)
{
	struct uconn *k = st->k;
	struct upcli *c = k->cli;
	char why[ERR_LEN];
	va_list ap;
	int32_t id = st->id;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	c->st.stream_failures++;
	log_warn("event=upstream_stream_reset target=%s addr=%s path=%s "
	    "sub=%lu reason=\"%s\"", k->tgt->spec, k->name, st->sub->path,
	    st->sub->id, why);
	if (id > 0 && k->h2 != NULL)
		(void)nghttp2_submit_rst_stream(k->h2, NGHTTP2_FLAG_NONE, id,
		    NGHTTP2_CANCEL);
	k->dirty = 1;
	stream_down(st, why);
}

/* One whole message to the subscriber. 0, or -1 when the stream is no
 * longer ours to read (the callback cancelled or closed). */
static int
stream_deliver(struct ustream *st, const uint8_t *p, size_t n)
{
	struct upsub *s = st->sub;
	struct upcli *c = s->cli;

	c->st.messages++;
	c->st.bytes += n;
	if (!st->answered)
		stream_answered(st);
	if (!stream_live(st))
		return -1;
	s->on_msg(s->arg, p, n);
	return stream_live(st) && st->id > 0 ? 0 : -1;
}

/* Reassemble gRPC messages from the stream's DATA: whole messages lying
 * in one chunk go out from nghttp2's buffer, others are copied. */
static void
stream_take(struct ustream *st, const uint8_t *p, size_t n)
{
	struct upcli *c = st->k->cli;

	while (n > 0) {
		size_t take;

		if (st->hlen < GRPC_PREFIX) {
			take = GRPC_PREFIX - st->hlen;
			if (take > n)
				take = n;
			memcpy(st->hdr + st->hlen, p, take);
			st->hlen += take;
			p += take;
			n -= take;
			if (st->hlen < GRPC_PREFIX)
				return;
			st->need = frame_get_len(st->hdr + 1);
			st->have = 0;
			if (st->hdr[0] != 0) {
				stream_reject(st, "%s message (flag %u): "
				    "compression was not offered",
				    st->hdr[0] == 1 ? "compressed" : "bad",
				    st->hdr[0]);
				return;
			}
			if (st->need > c->o.max_message) {
				stream_reject(st, "message of %zu bytes over "
				    "max_message %zu", st->need,
				    c->o.max_message);
				return;
			}
		}
		if (st->have == 0 && n >= st->need) {
			take = st->need;
			st->hlen = 0;
			if (stream_deliver(st, p, take) == -1)
				return;
			p += take;
			n -= take;
			continue;
		}
		if (st->cap < st->need) {
			unsigned char *b;
			size_t cap = st->need < 4096 ? 4096 : st->need;

			if (c->buffered - st->cap + cap > c->o.max_buffered) {
				stream_reject(st, "%zu bytes already held in "
				    "partial messages (max_buffered %zu)",
				    c->buffered, c->o.max_buffered);
				return;
			}
			b = realloc(st->buf, cap);
			if (b == NULL) {
				stream_reject(st, "out of memory for a "
				    "message of %zu bytes", st->need);
				return;
			}
			c->buffered += cap - st->cap;
			st->buf = b;
			st->cap = cap;
		}
		take = st->need - st->have;
		if (take > n)
			take = n;
		memcpy(st->buf + st->have, p, take);
		st->have += take;
		p += take;
		n -= take;
		if (st->have == st->need) {
			st->hlen = 0;
			st->have = 0;
			if (stream_deliver(st, st->buf, st->need) == -1)
				return;
			if (st->cap > KEEP_BUF)
				stream_buf_free(c, st);
		}
	}
}

/* The server or nghttp2 closed the stream. */
static void
stream_closed(struct ustream *st, uint32_t code)
{
	struct uconn *k = st->k;
	struct upcli *c = k->cli;
	char why[ERR_LEN], safe[MSG_LEN];
	const char *path = st->sub->path;
	unsigned long sid = st->sub->id;

	c->st.stream_failures++;
	if (code != NGHTTP2_NO_ERROR) {
		snprintf(why, sizeof(why), "reset %s",
		    nghttp2_http2_strerror(code));
		log_warn("event=upstream_stream_reset target=%s addr=%s "
		    "path=%s sub=%lu code=%s", k->tgt->spec, k->name, path, sid,
		    nghttp2_http2_strerror(code));
	} else if (st->http_status != 200) {
		snprintf(why, sizeof(why), "http status %d", st->http_status);
		log_warn("event=upstream_stream_ended target=%s addr=%s "
		    "path=%s sub=%lu http_status=%d", k->tgt->spec, k->name,
		    path, sid, st->http_status);
	} else if (st->grpc_status < 0) {
		snprintf(why, sizeof(why), "ended without grpc-status");
		log_warn("event=upstream_stream_ended target=%s addr=%s "
		    "path=%s sub=%lu status=none", k->tgt->spec, k->name, path,
		    sid);
	} else {
		log_safe(st->grpc_msg, safe, sizeof(safe));
		snprintf(why, sizeof(why), "status %d: %s",
		    st->grpc_status, safe);
		if (st->grpc_status == 0)
			log_info("event=upstream_stream_ended target=%s "
			    "addr=%s path=%s sub=%lu status=0 message=\"%s\"",
			    k->tgt->spec, k->name, path, sid, safe);
		else
			log_warn("event=upstream_stream_ended target=%s "
			    "addr=%s path=%s sub=%lu status=%d message=\"%s\"",
			    k->tgt->spec, k->name, path, sid, st->grpc_status,
			    safe);
	}
	stream_down(st, why);
}

/* --- nghttp2 callbacks ----------------------------------------------- */

static struct ustream *
stream_of(struct uconn *k, int32_t id)
{
	struct ustream *st;

	if (k->state != CONN_OPEN || id <= 0)
		return NULL;
	st = nghttp2_session_get_stream_user_data(k->h2, id);
	if (st == NULL || !stream_live(st) || st->id != id)
		return NULL;
	return st;
}

static int
on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
    void *user)
{
	struct ustream *st;

	(void)h2;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    (st = stream_of(user, f->hd.stream_id)) == NULL)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		st->http_status = small_num(value, valuelen);
	else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		st->grpc_status = small_num(value, valuelen);
	else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		pct_decode(value, valuelen, st->grpc_msg, sizeof(st->grpc_msg));
	return 0;
}

static void
conn_up(struct uconn *k)
{
	struct upcli *c = k->cli;
	struct ustream *st;
	unsigned n = 0;

	k->up = 1;
	k->backoff_ms = c->o.backoff_min_ms;
	c->st.connects++;
	c->st.conns_up++;
	uv_timer_stop(&k->timer);	/* the connect deadline */
	uv_timer_start(&k->ka, conn_on_timer, c->o.keepalive_ms,
	    c->o.keepalive_ms);
	for (st = k->streams; st != NULL; st = st->knext) {
		if (!stream_live(st))
			continue;
		st->reopen_at = 0;
		n++;
	}
	log_info("event=upstream_connected target=%s addr=%s tls=%s "
	    "streams=%u", k->tgt->spec, k->name,
	    k->tls.ssl != NULL ? "yes" : "no", n);
	/* The streams open from the timer, outside nghttp2's callbacks. */
	conn_arm_reopen(k, 0);
}

static int
on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct uconn *k = user;
	struct ustream *st;
	char dbg[MSG_LEN], safe[MSG_LEN];
	size_t n;

	(void)h2;
	if (k->state != CONN_OPEN)
		return 0;
	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !k->up)
			conn_up(k);
		break;
	case NGHTTP2_GOAWAY:
		n = f->goaway.opaque_data_len;
		if (n >= sizeof(dbg))
			n = sizeof(dbg) - 1;
		if (n > 0)	/* opaque_data is NULL when empty */
			memcpy(dbg, f->goaway.opaque_data, n);
		dbg[n] = '\0';
		log_safe(dbg, safe, sizeof(safe));
		log_info("event=upstream_goaway target=%s addr=%s code=%s "
		    "debug=\"%s\"", k->tgt->spec, k->name,
		    nghttp2_http2_strerror(f->goaway.error_code), safe);
		snprintf(k->goaway_why, sizeof(k->goaway_why), "goaway %s",
		    nghttp2_http2_strerror(f->goaway.error_code));
		/* Close once this input is through (conn_flush), and come
		 * back on a new connection: a subscription's streams never
		 * end by themselves, so waiting for them is no use. */
		k->goaway = 1;
		k->dirty = 1;
		break;
	case NGHTTP2_HEADERS:
		st = stream_of(k, f->hd.stream_id);
		if (st != NULL && f->headers.cat == NGHTTP2_HCAT_RESPONSE &&
		    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
		    st->http_status == 200)
			stream_answered(st);
		break;
	}
	return 0;
}

static int
on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *user)
{
	struct ustream *st = stream_of(user, id);

	(void)h2;
	(void)flags;
	if (st != NULL)
		stream_take(st, data, len);
	return 0;
}

static int
on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct ustream *st = stream_of(user, id);

	(void)h2;
	if (st != NULL)
		stream_closed(st, code);
	return 0;
}

/* --- output ---------------------------------------------------------- */

static void
conn_on_write(uv_write_t *req, int status)
{
	struct uwrite *w = (struct uwrite *)req;
	struct uconn *k = w->k;
	struct upcli *c = k->cli;

	free(w);
	if (status == UV_ECANCELED)
		return;
	cli_enter(c);
	if (status < 0) {
		conn_down(k, uv_strerror(status), 0);
	} else if (k->blocked && k->state == CONN_OPEN &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&k->tcp) <
	    WQ_LIMIT / 2) {
		k->blocked = 0;
		k->dirty = 1;
	}
	cli_leave(c);
}

/* Queue n bytes, made by fill, to the socket. 0, or -1. */
static int
conn_write(struct uconn *k, const void *p, size_t n)
{
	struct uwrite *w;

	if (n == 0)
		return 0;
	w = malloc(sizeof(*w) + n);
	if (w == NULL)
		return -1;
	if (p != NULL)
		memcpy(w->data, p, n);
	else if (tlsio_take(&k->tls, w->data, n) != n) {
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

/* What TLS has made goes to the socket in one write. */
static int
conn_tls_drain(struct uconn *k)
{
	return conn_write(k, NULL, tlsio_pending(&k->tls));
}

static int
conn_out(struct uconn *k, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (k->tls.ssl == NULL)
		return conn_write(k, p, n);
	if (tlsio_write(&k->tls, p, n) == -1)
		return -1;
	return conn_tls_drain(k);
}

/* Everything nghttp2 has to send, gathered into few writes. */
static void
conn_flush(struct uconn *k)
{
	struct upcli *c = k->cli;
	size_t have = 0;

	k->dirty = 0;
	if (k->state != CONN_OPEN || k->h2 == NULL)
		return;
	if (k->goaway) {
		conn_down(k, k->goaway_why, 1);
		return;
	}
	/* HTTP/2 waits for the handshake. */
	if (k->tls.ssl != NULL && !tlsio_ready(&k->tls))
		return;
	for (;;) {
		const uint8_t *data;
		ssize_t n;

		if (uv_stream_get_write_queue_size((uv_stream_t *)&k->tcp) >=
		    WQ_LIMIT) {
			k->blocked = 1;
			break;
		}
		k->in_h2 = 1;
		n = nghttp2_session_mem_send(k->h2, &data);
		k->in_h2 = 0;
		if (k->state != CONN_OPEN)
			return;	/* a callback closed it */
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
		conn_down(k, "the session ended", 1);
	return;
fail:
	conn_down(k, "write failed", 0);
}

/* --- input ----------------------------------------------------------- */

static void
conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct uconn *k = h->data;

	(void)hint;
	/* One buffer per client: each read is used up before the next. */
	*buf = uv_buf_init((char *)k->cli->rbuf, sizeof(k->cli->rbuf));
}

static int
conn_h2_in(struct uconn *k, const uint8_t *p, size_t n)
{
	ssize_t rc;

	k->in_h2 = 1;
	rc = nghttp2_session_mem_recv(k->h2, p, n);
	k->in_h2 = 0;
	if (k->state != CONN_OPEN)
		return -1;	/* a callback closed it */
	if (rc < 0) {
		char why[ERR_LEN];

		snprintf(why, sizeof(why), "http2: %s",
		    nghttp2_strerror((int)rc));
		conn_down(k, why, 0);
		return -1;
	}
	k->dirty = 1;
	return 0;
}

static void
conn_tls_in(struct uconn *k, const uint8_t *p, size_t n)
{
	struct upcli *c = k->cli;
	char why[ERR_LEN];
	ssize_t got;
	int rc;

	rc = tlsio_feed(&k->tls, p, n, why, sizeof(why));
	/* A failed handshake may still have an alert to send. */
	if (conn_tls_drain(k) == -1) {
		conn_down(k, "write failed", 0);
		return;
	}
	if (rc == -1) {
		conn_down(k, why, 0);
		return;
	}
	if (rc == 1) {
		if (!tlsio_alpn_h2(&k->tls)) {
			conn_down(k, "tls: the server chose a protocol other "
			    "than h2", 0);
			return;
		}
		k->dirty = 1;	/* the preface and SETTINGS can go */
	}
	while ((got = tlsio_read(&k->tls, c->tbuf, sizeof(c->tbuf), why,
	    sizeof(why))) > 0) {
		if (conn_h2_in(k, c->tbuf, (size_t)got) == -1)
			return;
	}
	if (got == TLSIO_CLOSED) {
		conn_down(k, "the server ended tls", 0);
		return;
	}
	if (got == -1) {
		conn_down(k, why, 0);
		return;
	}
	/* TLS 1.3 may answer on its own (a key update, say). */
	if (conn_tls_drain(k) == -1)
		conn_down(k, "write failed", 0);
}

static void
conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct uconn *k = s->data;
	struct upcli *c = k->cli;

	if (n == 0)
		return;
	cli_enter(c);
	if (n < 0) {
		conn_down(k, n == UV_EOF ? "the server closed the connection" :
		    uv_strerror((int)n), 0);
	} else if (k->state == CONN_OPEN) {
		k->last_read = uv_now(c->loop);
		k->ping_out = 0;
		if (k->tls.ssl != NULL)
			conn_tls_in(k, (const uint8_t *)buf->base, n);
		else
			(void)conn_h2_in(k, (const uint8_t *)buf->base, n);
	}
	cli_leave(c);
}

/* --- connection life ------------------------------------------------- */

static void
conn_free_if_done(struct uconn *k)
{
	struct upcli *c = k->cli;
	struct uconn **pp;
	struct ustream *st, *next;

	if (!k->dead || k->handles > 0)
		return;
	for (pp = &c->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	/* conn_destroy took them off their subscriptions. */
	for (st = k->streams; st != NULL; st = next) {
		next = st->knext;
		stream_buf_free(c, st);
		free(st);
	}
	k->tgt->nconns--;
	c->nconns--;
	free(k);
}

static void
conn_on_handle_closed(uv_handle_t *h)
{
	struct uconn *k = h->data;
	struct upcli *c = k->cli;

	k->handles--;
	c->handles--;
	conn_free_if_done(k);
	cli_maybe_free(c);
}

static void
conn_on_tcp_closed(uv_handle_t *h)
{
	struct uconn *k = h->data;
	struct upcli *c = k->cli;

	k->handles--;
	c->handles--;
	if (k->h2 != NULL)
		nghttp2_session_del(k->h2);
	k->h2 = NULL;
	tlsio_release(&k->tls);
	k->state = CONN_IDLE;
	k->up = k->goaway = k->blocked = k->dirty = k->ping_out = 0;
	if (k->dead || c->closing) {
		k->dead = 0;	/* conn_destroy takes it from here */
		conn_destroy(k);
		return;
	}
	uv_timer_start(&k->timer, conn_on_timer, k->retry_ms, 0);
}

static void
conn_close_tcp(struct uconn *k)
{
	if (!uv_is_closing((uv_handle_t *)&k->tcp))
		uv_close((uv_handle_t *)&k->tcp, conn_on_tcp_closed);
}

static void
conn_on_shutdown(uv_shutdown_t *req, int status)
{
	struct uconn *k = req->data;

	(void)status;
	conn_close_tcp(k);
}

/* Take the connection down: log why (NULL: our own close, not logged),
 * close the socket (after what is written, when graceful), tell every
 * stream that was up, and reconnect after a backoff unless closing. The
 * streams wait, and all reopen when it is back. */
static void
conn_down(struct uconn *k, const char *why, int graceful)
{
	struct upcli *c = k->cli;
	struct ustream *st, *next;
	char reason[ERR_LEN];
	int was_up = k->up;
	unsigned nstreams = 0;

	if (k->state != CONN_CONNECTING && k->state != CONN_OPEN)
		return;
	for (st = k->streams; st != NULL; st = st->knext) {
		if (st->id > 0)
			nstreams++;
		stream_detach(c, st);
		st->reopen_at = 0;
	}
	k->retry_ms = backoff_next(c, &k->backoff_ms);
	if (was_up) {
		c->st.disconnects++;
		c->st.conns_up--;
	} else if (why != NULL) {
		c->st.connect_failures++;
	}
	snprintf(reason, sizeof(reason), "%s%s", was_up ? "" :
	    "connect failed: ", why != NULL ? why : "closing");
	if (why != NULL) {
		char safe[ERR_LEN], retry[32] = "";

		if (!c->closing && !k->dead)
			snprintf(retry, sizeof(retry), " retry_ms=%u",
			    k->retry_ms);
		log_warn("event=%s target=%s addr=%s reason=\"%s\" "
		    "streams=%u%s", was_up ? "upstream_disconnected" :
		    "upstream_connect_failed", k->tgt->spec, k->name,
		    log_safe(why, safe, sizeof(safe)), nstreams, retry);
	}
	k->up = 0;
	k->reopen_armed = 0;
	uv_timer_stop(&k->timer);
	uv_timer_stop(&k->ka);
	uv_timer_stop(&k->reopen);
	if (graceful && k->state == CONN_OPEN) {
		k->state = CONN_CLOSING;
		uv_read_stop((uv_stream_t *)&k->tcp);
		if (k->tls.ssl != NULL) {
			tlsio_shutdown(&k->tls);	/* close_notify */
			(void)conn_tls_drain(k);
		}
		k->sreq.data = k;
		/* The shutdown waits for the queued writes, for a while: a
		 * server that does not read must not keep it from coming
		 * back. */
		if (uv_shutdown(&k->sreq, (uv_stream_t *)&k->tcp,
		    conn_on_shutdown) != 0)
			conn_close_tcp(k);
		else
			uv_timer_start(&k->timer, conn_on_timer,
			    CLOSE_GRACE_MS, 0);
	} else {
		k->state = CONN_CLOSING;
		conn_close_tcp(k);
	}
	/* Last, as callbacks may cancel anything. */
	if (why == NULL || c->closing)
		return;
	for (st = k->streams; st != NULL; st = next) {
		next = st->knext;
		stream_report(st, 0, reason);
		if (c->closing)
			break;
	}
}

/* Forget the connection for good: its streams leave their
 * subscriptions, its handles close, and it is freed after them. */
static void
conn_destroy(struct uconn *k)
{
	struct ustream *st;

	if (k->dead)
		return;
	k->dead = 1;
	for (st = k->streams; st != NULL; st = st->knext)
		if (st->sub != NULL)
			stream_unlink_s(st);
	if (k->state == CONN_CLOSING) {
		conn_close_tcp(k);	/* no more waiting for a shutdown */
		return;	/* back from the socket's close callback */
	}
	if (k->state != CONN_IDLE) {
		conn_down(k, NULL, 0);
		return;	/* likewise */
	}
	uv_close((uv_handle_t *)&k->timer, conn_on_handle_closed);
	uv_close((uv_handle_t *)&k->ka, conn_on_handle_closed);
	uv_close((uv_handle_t *)&k->reopen, conn_on_handle_closed);
}

static int
conn_start_h2(struct uconn *k)
{
	struct upcli *c = k->cli;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST },
	};

	if (nghttp2_session_client_new2(&k->h2, c->cbs, k, c->h2opt) != 0) {
		k->h2 = NULL;
		return -1;
	}
	if (nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv,
	    sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(k->h2, NGHTTP2_FLAG_NONE, 0,
	    CONN_WINDOW) != 0)
		return -1;
	k->dirty = 1;
	return 0;
}

static void
conn_on_connect(uv_connect_t *req, int status)
{
	struct uconn *k = req->data;
	struct upcli *c = k->cli;
	char err[ERR_LEN];

	if (k->state != CONN_CONNECTING)
		return;		/* closed meanwhile */
	cli_enter(c);
	if (status < 0) {
		conn_down(k, uv_strerror(status), 0);
		goto out;
	}
	k->state = CONN_OPEN;
	k->last_read = uv_now(c->loop);
	uv_tcp_nodelay(&k->tcp, 1);
	if (conn_start_h2(k) == -1) {
		conn_down(k, "http2 setup failed", 0);
		goto out;
	}
	if (c->o.ssl != NULL) {
		const char *name = c->o.server_name ? c->o.server_name :
		    k->tgt->host;

		if (tlsio_client(&k->tls, c->o.ssl, name, err,
		    sizeof(err)) == -1) {
			conn_down(k, err, 0);
			goto out;
		}
		if (conn_tls_drain(k) == -1) {
			conn_down(k, "write failed", 0);
			goto out;
		}
	}
	if (uv_read_start((uv_stream_t *)&k->tcp, conn_alloc,
	    conn_on_read) != 0) {
		conn_down(k, "read failed", 0);
		goto out;
	}
out:
	cli_leave(c);
}

static void
conn_connect(struct uconn *k)
{
	struct upcli *c = k->cli;
	int rc;

	k->want_connect = 0;
	if (c->closing || k->dead)
		return;
	if ((rc = uv_tcp_init(c->loop, &k->tcp)) != 0) {
		log_warn("event=upstream_connect_failed target=%s addr=%s "
		    "reason=\"%s\"", k->tgt->spec, k->name, uv_strerror(rc));
		uv_timer_start(&k->timer, conn_on_timer,
		    backoff_next(c, &k->backoff_ms), 0);
		return;
	}
	k->tcp.data = k;
	k->handles++;
	c->handles++;
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
conn_keepalive(struct uconn *k)
{
	struct upcli *c = k->cli;

	if (k->state != CONN_OPEN || !k->up)
		return;
	if (k->ping_out) {
		conn_down(k, "keepalive timeout", 0);
		return;
	}
	if (uv_now(c->loop) - k->last_read < c->o.keepalive_ms)
		return;		/* the server spoke lately: alive */
	if (nghttp2_submit_ping(k->h2, NGHTTP2_FLAG_NONE, NULL) == 0) {
		k->ping_out = 1;
		k->dirty = 1;
	}
}

static void
conn_on_timer(uv_timer_t *t)
{
	struct uconn *k = t->data;
	struct upcli *c = k->cli;

	cli_enter(c);
	if (t == &k->ka) {
		conn_keepalive(k);
	} else if (k->state == CONN_IDLE) {
		/* Backoff over: resolve the name again, then connect. */
		k->want_connect = 1;
		tgt_resolve(k->tgt);
	} else if (k->state == CONN_CONNECTING ||
	    (k->state == CONN_OPEN && !k->up)) {
		conn_down(k, "connect timeout", 0);
	} else if (k->state == CONN_CLOSING) {
		conn_close_tcp(k);	/* the shutdown took too long */
	}
	cli_leave(c);
}

/* Open every stream that is due; arm the timer for the next. */
static void
conn_on_reopen(uv_timer_t *t)
{
	struct uconn *k = t->data;
	struct upcli *c = k->cli;
	struct ustream *st;
	uint64_t now, next = 0;

	cli_enter(c);
	k->reopen_armed = 0;
	if (k->state != CONN_OPEN || !k->up || k->goaway || c->closing)
		goto out;
	now = uv_now(c->loop);
	for (st = k->streams; st != NULL; st = st->knext) {
		if (!stream_live(st) || st->id != 0)
			continue;
		if (st->reopen_at > now) {
			if (next == 0 || st->reopen_at < next)
				next = st->reopen_at;
			continue;
		}
		if (stream_open(st) == -1) {
			/* Stream ids used up, or no memory: a new
			 * connection starts afresh. */
			conn_down(k, "cannot open a stream", 1);
			goto out;
		}
	}
	if (next != 0)
		conn_arm_reopen(k, next);
out:
	cli_leave(c);
}

static struct uconn *
conn_new(struct utarget *t, const struct sockaddr_storage *ss)
{
	struct upcli *c = t->cli;
	struct uconn *k = calloc(1, sizeof(*k));
	struct upsub *s;

	if (k == NULL)
		return NULL;
	k->cli = c;
	k->tgt = t;
	k->addr = *ss;
	addr_name(ss, k->name, sizeof(k->name));
	k->backoff_ms = c->o.backoff_min_ms;
	for (s = c->subs; s != NULL; s = s->next) {
		if (stream_new(s, k) == NULL) {
			struct ustream *st;

			while ((st = k->streams) != NULL) {
				k->streams = st->knext;
				stream_unlink_s(st);
				free(st);
			}
			free(k);
			return NULL;
		}
	}
	uv_timer_init(c->loop, &k->timer);
	uv_timer_init(c->loop, &k->ka);
	uv_timer_init(c->loop, &k->reopen);
	k->timer.data = k->ka.data = k->reopen.data = k;
	k->handles = 3;
	c->handles += 3;
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
	struct utarget *t = h->data;
	struct upcli *c = t->cli;

	cli_enter(c);
	tgt_resolve(t);
	cli_leave(c);
}

/* Resolution failed: waiting connections try the address they had. */
static void
tgt_resolve_failed(struct utarget *t, int status)
{
	struct upcli *c = t->cli;
	struct uconn *k;

	log_warn("event=upstream_resolve_failed target=%s reason=\"%s\"",
	    t->spec, uv_strerror(status));
	for (k = c->conns; k != NULL; k = k->next)
		if (k->tgt == t && k->want_connect)
			conn_connect(k);
	if (t->nconns == 0)
		uv_timer_start(&t->timer, tgt_on_timer,
		    backoff_next(c, &t->backoff_ms), 0);
}

static void
tgt_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct utarget *t = req->data;
	struct upcli *c = t->cli;
	struct sockaddr_storage found[UPCLI_MAX_RESOLVED];
	int have[UPCLI_MAX_RESOLVED];
	struct addrinfo *ai;
	struct uconn *k, *next;
	size_t n = 0, i;

	t->resolving = 0;
	c->handles--;
	if (c->closing) {
		uv_freeaddrinfo(res);
		cli_maybe_free(c);
		return;
	}
	cli_enter(c);
	if (status < 0) {
		tgt_resolve_failed(t, status);
		goto out;
	}
	for (ai = res; ai != NULL && n < UPCLI_MAX_RESOLVED;
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
	res = NULL;
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
			log_info("event=upstream_address_gone target=%s "
			    "addr=%s", t->spec, k->name);
			conn_destroy(k);
		}
	}
	for (i = 0; i < n; i++) {
		if (have[i])
			continue;
		k = conn_new(t, &found[i]);
		if (k == NULL) {
			log_error("event=upstream_connect_failed target=%s "
			    "reason=\"out of memory\"", t->spec);
			continue;
		}
		log_info("event=upstream_address target=%s addr=%s", t->spec,
		    k->name);
		conn_connect(k);
	}
	if (t->nconns == 0)
		uv_timer_start(&t->timer, tgt_on_timer,
		    backoff_next(c, &t->backoff_ms), 0);
out:
	if (res != NULL)
		uv_freeaddrinfo(res);
	cli_leave(c);
}

static void
tgt_resolve(struct utarget *t)
{
	struct upcli *c = t->cli;
	struct addrinfo hints;
	int rc;

	if (t->resolving || c->closing)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	t->req.data = t;
	rc = uv_getaddrinfo(c->loop, &t->req, tgt_on_resolved, t->host,
	    t->port, &hints);
	if (rc != 0) {
		tgt_resolve_failed(t, rc);
		return;
	}
	t->resolving = 1;
	c->handles++;
}

/* --- the client ------------------------------------------------------ */

static void
cli_free(struct upcli *c)
{
	if (c->cbs != NULL)
		nghttp2_session_callbacks_del(c->cbs);
	if (c->h2opt != NULL)
		nghttp2_option_del(c->h2opt);
	free(c->tgts);
	free(c);
}

static void
cli_maybe_free(struct upcli *c)
{
	if (c->closing && c->handles == 0 && c->depth == 0)
		cli_free(c);
}

static void
cli_on_handle_closed(uv_handle_t *h)
{
	struct upcli *c = ((struct utarget *)h->data)->cli;

	c->handles--;
	cli_maybe_free(c);
}

static int
cli_h2_setup(struct upcli *c)
{
	nghttp2_session_callbacks *cbs;

	if (nghttp2_option_new(&c->h2opt) != 0)
		return -1;
	/* Until the server's SETTINGS say otherwise, as gRPC servers
	 * commonly allow. */
	nghttp2_option_set_peer_max_concurrent_streams(c->h2opt, 100);
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -1;
	c->cbs = cbs;
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    on_frame_recv);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    on_stream_close);
	return 0;
}

int
upcli_new(uv_loop_t *loop, const struct upcli_opts *o, struct upcli **out,
    char *err, size_t errlen)
{
	struct upcli *c;
	size_t i;

	*out = NULL;
	if (upcli_check(o, err, errlen) == -1) {
		errno = EINVAL;
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		goto nomem;
	c->o = *o;
	if (c->o.backoff_min_ms == 0)
		c->o.backoff_min_ms = UPCLI_BACKOFF_MIN_MS;
	if (c->o.backoff_max_ms == 0)
		c->o.backoff_max_ms = UPCLI_BACKOFF_MAX_MS;
	if (c->o.backoff_max_ms < c->o.backoff_min_ms)
		c->o.backoff_max_ms = c->o.backoff_min_ms;
	if (c->o.max_message == 0)
		c->o.max_message = UPCLI_MAX_MESSAGE;
	if (c->o.max_buffered == 0)
		c->o.max_buffered = 4 * c->o.max_message > MIN_BUFFERED ?
		    4 * c->o.max_message : MIN_BUFFERED;
	if (c->o.keepalive_ms == 0)
		c->o.keepalive_ms = UPCLI_KEEPALIVE_MS;
	if (c->o.connect_ms == 0)
		c->o.connect_ms = UPCLI_CONNECT_MS;
	c->loop = loop;
	c->seed = (uint64_t)time_now_ns() ^ (uint64_t)(uintptr_t)c;
	if (c->seed == 0)
		c->seed = 1;
	c->tgts = calloc(o->naddrs, sizeof(*c->tgts));
	if (c->tgts == NULL || cli_h2_setup(c) == -1) {
		cli_free(c);
		goto nomem;
	}
	c->ntgts = o->naddrs;
	for (i = 0; i < o->naddrs; i++) {
		struct utarget *t = &c->tgts[i];

		t->cli = c;
		t->index = i;
		t->spec = o->addrs[i];
		t->backoff_ms = c->o.backoff_min_ms;
		(void)addr_split(t->spec, t->host, sizeof(t->host), t->port,
		    sizeof(t->port), err, errlen);
		uv_timer_init(loop, &t->timer);
		t->timer.data = t;
		c->handles++;
	}
	cli_enter(c);
	for (i = 0; i < c->ntgts; i++)
		tgt_resolve(&c->tgts[i]);
	cli_leave(c);
	*out = c;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	errno = ENOMEM;
	return -1;
}

struct upsub *
upcli_subscribe(struct upcli *c, const char *path, const uint8_t *req,
    size_t len, upsub_msg_cb on_msg, upsub_state_cb on_state, void *arg)
{
	struct upsub *s;
	struct uconn *k;

	if (c->closing || on_msg == NULL || path == NULL || path[0] != '/' ||
	    len > UINT32_MAX - GRPC_PREFIX) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cli = c;
	s->path = strdup(path);
	s->reqlen = GRPC_PREFIX + len;
	s->req = malloc(s->reqlen);
	if (s->path == NULL || s->req == NULL)
		goto nomem;
	s->req[0] = 0;
	frame_put_len(s->req + 1, (uint32_t)len);
	if (len > 0)
		memcpy(s->req + GRPC_PREFIX, req, len);
	s->on_msg = on_msg;
	s->on_state = on_state;
	s->arg = arg;
	for (k = c->conns; k != NULL; k = k->next) {
		if (k->dead)
			continue;
		if (stream_new(s, k) == NULL)
			goto nomem;
	}
	s->id = ++c->next_id;
	s->next = c->subs;
	if (c->subs != NULL)
		c->subs->prev = s;
	c->subs = s;
	/* Streams open from the timers, never inside this call. */
	for (k = c->conns; k != NULL; k = k->next)
		if (!k->dead)
			conn_arm_reopen(k, 0);
	return s;
nomem:
	while (s->streams != NULL) {
		struct ustream *st = s->streams;

		stream_unlink_k(st);
		stream_unlink_s(st);
		free(st);
	}
	free(s->path);
	free(s->req);
	free(s);
	errno = ENOMEM;
	return NULL;
}

void
upsub_cancel(struct upsub *s)
{
	struct upcli *c;
	struct ustream *st;

	if (s == NULL || s->dead)
		return;
	c = s->cli;
	cli_enter(c);
	s->dead = 1;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		c->subs = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = NULL;
	s->next = c->reap;
	c->reap = s;
	for (st = s->streams; st != NULL; st = st->snext) {
		struct uconn *k = st->k;
		int32_t id = st->id;

		if (k == NULL)
			continue;
		stream_detach(c, st);
		stream_buf_free(c, st);
		if (id > 0 && k->state == CONN_OPEN && k->h2 != NULL) {
			(void)nghttp2_submit_rst_stream(k->h2,
			    NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
			k->dirty = 1;
		}
		stream_unlink_k(st);
	}
	cli_leave(c);
}

const struct upcli_stats *
upcli_stats(struct upcli *c)
{
	return &c->st;
}

/* Closing: the RST_STREAMs and a GOAWAY go if the socket takes them at
 * once; nothing waits for a server that does not read. */
static void
conn_goodbye(struct uconn *k)
{
	struct upcli *c = k->cli;
	const uint8_t *data;
	ssize_t n;
	size_t have = 0;

	/* Not from inside nghttp2: it sends nothing there. */
	if (k->state != CONN_OPEN || k->h2 == NULL || !k->up || k->in_h2 ||
	    (k->tls.ssl != NULL && !tlsio_ready(&k->tls)))
		return;
	(void)nghttp2_submit_goaway(k->h2, NGHTTP2_FLAG_NONE,
	    nghttp2_session_get_last_proc_stream_id(k->h2), NGHTTP2_NO_ERROR,
	    NULL, 0);
	while ((n = nghttp2_session_mem_send(k->h2, &data)) > 0 &&
	    have + (size_t)n <= sizeof(c->obuf)) {
		memcpy(c->obuf + have, data, n);
		have += n;
	}
	if (k->tls.ssl != NULL) {
		uv_buf_t b;

		if (tlsio_write(&k->tls, c->obuf, have) == -1)
			return;
		tlsio_shutdown(&k->tls);
		have = tlsio_take(&k->tls, c->obuf, sizeof(c->obuf));
		b = uv_buf_init((char *)c->obuf, have);
		(void)uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
	} else {
		uv_buf_t b = uv_buf_init((char *)c->obuf, have);

		(void)uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
	}
}

void
upcli_close(struct upcli *c)
{
	struct uconn *k, *next;
	size_t i;

	if (c == NULL || c->closing)
		return;
	cli_enter(c);
	while (c->subs != NULL)
		upsub_cancel(c->subs);
	c->closing = 1;
	for (i = 0; i < c->ntgts; i++) {
		struct utarget *t = &c->tgts[i];

		if (t->resolving)
			(void)uv_cancel((uv_req_t *)&t->req);
		uv_close((uv_handle_t *)&t->timer, cli_on_handle_closed);
	}
	for (k = c->conns; k != NULL; k = next) {
		next = k->next;
		conn_goodbye(k);
		conn_destroy(k);
	}
	cli_leave(c);
	cli_maybe_free(c);
}
