/* grpcsrv: gRPC ingress server on nghttp2 and libuv, optionally over TLS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "grpcsrv.h"
#include "log.h"
#include "tls.h"

#define GRPC_PREFIX 5		/* compressed flag, 4-byte length */
#define READ_CHUNK (64 * 1024)
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)
/* Bytes in libuv's write queue before streaming calls stop producing:
 * the client's windows may be large, its socket still full. */
#define WQ_LIMIT (1024 * 1024)

struct grpc_server {
	uv_loop_t *loop;
	uv_tcp_t tcp;
	const struct grpc_method *methods;
	size_t nmethods;
	struct grpc_limits lim;
	SSL_CTX *ssl;
	void *ctx;
	struct grpc_stats stats;
	size_t buffered;	/* bytes held in partial messages */
	unsigned nconns;
	struct gconn *conns;	/* every open connection */
	unsigned nalive;	/* connections not yet freed, closing ones too */
	int closing;
	int draining;		/* grpc_server_drain: streaming calls only */
	int tcp_closing;	/* the listener is being closed */
	int tcp_closed;		/* freed once this and nalive == 0 */
	nghttp2_session_callbacks *cbs;
};

struct gconn {
	struct grpc_server *srv;
	struct gconn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t idle;
	int handles;		/* open uv handles, freed at 0 */
	nghttp2_session *h2;
	SSL *ssl;
	BIO *rbio, *wbio;	/* network side of ssl */
	int closing;
	int in_flush, flush_again;	/* gconn_flush is not re-entered */
	int wq_blocked;		/* a call waits for the socket to drain */
	int drained;		/* draining and no streaming call left */
	unsigned nstreaming;	/* server-streaming calls open */
	struct gstream *streams;	/* open, freed with the connection */
	char peer[64];
};

struct gstream {
	struct gstream *prev, *next;	/* the connection's open streams */
	int32_t id;
	const struct grpc_method *m;
	int bad_path;
	int done;		/* status sent: ignore what else comes */
	int rst_after;		/* stop the client's upload once it is sent */
	int compressed_ok;	/* grpc-encoding identity or absent */
	unsigned messages;
	unsigned char hdr[GRPC_PREFIX];
	size_t hdr_have;
	size_t need;		/* message bytes still to come */
	unsigned char *msg;	/* a message split across DATA frames */
	size_t msg_len, msg_have;
	size_t sent;		/* response body bytes sent */
	/* Server-streaming calls: the responses queued for HTTP/2. */
	struct gconn *c;
	int streaming;		/* opened; on_close is owed */
	void *arg;
	unsigned char *out;
	size_t out_off, out_len, out_cap;
	int deferred;		/* the data provider is waiting for more */
	int notify;		/* on_writable is owed */
	int finishing, fin_status;
	char fin_why[128];
};

struct gwrite {
	uv_write_t req;
	uv_buf_t buf;
	char data[];
};

static void gconn_close(struct gconn *c, const char *why);
static void gconn_flush(struct gconn *c);
static void grpc_server_release(struct grpc_server *s);

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, \
	strlen(v), NGHTTP2_NV_FLAG_NONE }

static void
gstream_free_msg(struct grpc_server *s, struct gstream *st)
{
	if (st->msg != NULL) {
		s->buffered -= st->msg_len;
		free(st->msg);
		st->msg = NULL;
	}
}

/* End a call with a trailers-only response: HEADERS holding the status
 * and END_STREAM; then stop the client's upload if it is still sending. */
static void
gstream_fail(struct gconn *c, struct gstream *st, int code, const char *why)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", code);
	nghttp2_nv nv[] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
		NV("grpc-status", num),
		NV("grpc-message", why ? why : ""),
	};

	if (st->done)
		return;
	st->done = 1;
	c->srv->stats.calls_failed++;
	gstream_free_msg(c->srv, st);
	st->rst_after = 1;
	nghttp2_submit_response(c->h2, st->id, nv, why ? 4 : 3, NULL);
	log_info("event=grpc_call_failed peer=%s stream=%d status=%d "
	    "reason=\"%s\"", c->peer, st->id, code, why ? why : "");
}

/* The body of an OK response: one empty message, then the trailers. */
static ssize_t
gstream_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	static const nghttp2_nv trailer[] = { NV("grpc-status", "0") };
	struct gstream *st = src->ptr;
	size_t n = GRPC_PREFIX - st->sent;

	(void)user;
	if (n > len)
		n = len;
	memset(buf, 0, n);
	st->sent += n;
	if (st->sent == GRPC_PREFIX) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		nghttp2_submit_trailer(h2, id, trailer, 1);
	}
	return (ssize_t)n;
}

static void
gstream_ok(struct gconn *c, struct gstream *st)
{
	static const nghttp2_nv nv[] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
	};
	nghttp2_data_provider prd;

	st->done = 1;
	prd.source.ptr = st;
	prd.read_callback = gstream_body;
	nghttp2_submit_response(c->h2, st->id, nv, 2, &prd);
}

/* The body of a server-streaming call: what the handler queued, then
 * the trailers once it has finished. */
static ssize_t
gstream_stream_body(nghttp2_session *h2, int32_t id, uint8_t *buf,
    size_t len, uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct gstream *st = src->ptr;
	struct gconn *c = user;
	size_t have = st->out_len - st->out_off;

	if (have == 0) {
		if (st->finishing) {
			char num[16] = "";
			nghttp2_nv tr[2];

			snprintf(num, sizeof(num), "%d", st->fin_status);
			tr[0] = (nghttp2_nv)NV("grpc-status", num);
			tr[1] = (nghttp2_nv)NV("grpc-message", st->fin_why);
			*flags |= NGHTTP2_DATA_FLAG_EOF |
			    NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(h2, id, tr,
			    st->fin_why[0] ? 2 : 1);
			return 0;
		}
		st->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (c->tcp.write_queue_size > WQ_LIMIT) {
		st->deferred = 1;
		c->wq_blocked = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (len > have)
		len = have;
	memcpy(buf, st->out + st->out_off, len);
	st->out_off += len;
	if (st->out_off == st->out_len)
		st->out_off = st->out_len = 0;
	if (st->out_len - st->out_off < GRPC_CALL_LOW_WATER && !st->finishing)
		st->notify = 1;
	return (ssize_t)len;
}

static void
gstream_open(struct gconn *c, struct gstream *st, const uint8_t *p,
    size_t n)
{
	static const nghttp2_nv nv[] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
	};
	nghttp2_data_provider prd;
	const char *why = NULL;
	int rc;

	st->c = c;
	rc = st->m->on_open(c->srv->ctx, (struct grpc_call *)st, p, n, &why);
	if (rc != GRPC_OK) {
		gstream_fail(c, st, rc, why);
		return;
	}
	st->done = 1;		/* nothing more is read from the client */
	st->streaming = 1;
	c->nstreaming++;
	prd.source.ptr = st;
	prd.read_callback = gstream_stream_body;
	nghttp2_submit_response(c->h2, st->id, nv, 2, &prd);
}

/* The call is gone: tell its handler, once. */
static void
gstream_closed(struct gconn *c, struct gstream *st)
{
	if (!st->streaming)
		return;
	st->streaming = 0;
	c->nstreaming--;
	if (st->m->on_close)
		st->m->on_close(c->srv->ctx, (struct grpc_call *)st, st->arg);
}

void
grpc_call_set_arg(struct grpc_call *call, void *arg)
{
	((struct gstream *)call)->arg = arg;
}

size_t
grpc_call_pending(const struct grpc_call *call)
{
	const struct gstream *st = (const struct gstream *)call;

	return st->out_len - st->out_off;
}

const char *
grpc_call_peer(const struct grpc_call *call)
{
	return ((const struct gstream *)call)->c->peer;
}

static void
gstream_resume(struct gconn *c, struct gstream *st)
{
	if (st->deferred) {
		st->deferred = 0;
		nghttp2_session_resume_data(c->h2, st->id);
	}
	gconn_flush(c);
}

int
grpc_call_send(struct grpc_call *call, const void *msg, size_t len)
{
	struct gstream *st = (struct gstream *)call;
	size_t need = GRPC_PREFIX + len;

	if (st->finishing || st->c->closing)
		return -1;
	if (st->out_off > 0 && st->out_len + need > st->out_cap) {
		memmove(st->out, st->out + st->out_off, st->out_len - st->out_off);
		st->out_len -= st->out_off;
		st->out_off = 0;
	}
	if (st->out_len + need > st->out_cap) {
		size_t cap = st->out_cap ? st->out_cap : 16384;
		unsigned char *p;

		while (cap < st->out_len + need)
			cap *= 2;
		p = realloc(st->out, cap);
		if (p == NULL)
			return -1;
		st->out = p;
		st->out_cap = cap;
	}
	st->out[st->out_len] = 0;
	st->out[st->out_len + 1] = (unsigned char)(len >> 24);
	st->out[st->out_len + 2] = (unsigned char)(len >> 16);
	st->out[st->out_len + 3] = (unsigned char)(len >> 8);
	st->out[st->out_len + 4] = (unsigned char)len;
	memcpy(st->out + st->out_len + GRPC_PREFIX, msg, len);
	st->out_len += need;
	gstream_resume(st->c, st);
	return 0;
}

void
grpc_call_finish(struct grpc_call *call, int status, const char *why)
{
	struct gstream *st = (struct gstream *)call;

	if (st->finishing)
		return;
	st->finishing = 1;
	st->fin_status = status;
	snprintf(st->fin_why, sizeof(st->fin_why), "%s", why ? why : "");
	if (status != GRPC_OK)
		st->c->srv->stats.calls_failed++;
	gstream_resume(st->c, st);
}

static void
gstream_message(struct gconn *c, struct gstream *st, const uint8_t *p,
    size_t n)
{
	const char *why = NULL;
	int rc;

	c->srv->stats.messages++;
	st->messages++;
	if (st->m->unary && st->messages > 1) {
		gstream_fail(c, st, GRPC_INVALID_ARGUMENT,
		    "unary call with more than one message");
		return;
	}
	if (st->m->server_stream) {
		gstream_open(c, st, p, n);
		return;
	}
	if (c->srv->draining) {
		gstream_fail(c, st, GRPC_UNAVAILABLE, "server stopping");
		return;
	}
	rc = st->m->on_message(c->srv->ctx, p, n, &why);
	if (rc != GRPC_OK)
		gstream_fail(c, st, rc, why);
}

/* Feed request body bytes through the gRPC message framing. */
static void
gstream_data(struct gconn *c, struct gstream *st, const uint8_t *p, size_t n)
{
	struct grpc_server *s = c->srv;

	while (n > 0 && !st->done) {
		if (st->need == 0 && st->hdr_have < GRPC_PREFIX) {
			size_t k = GRPC_PREFIX - st->hdr_have;

			if (k > n)
				k = n;
			memcpy(st->hdr + st->hdr_have, p, k);
			st->hdr_have += k;
			p += k;
			n -= k;
			if (st->hdr_have < GRPC_PREFIX)
				return;
			st->need = (size_t)st->hdr[1] << 24 | st->hdr[2] << 16 |
			    st->hdr[3] << 8 | st->hdr[4];
			if (st->hdr[0] != 0) {
				gstream_fail(c, st, GRPC_UNIMPLEMENTED,
				    "compressed messages are not supported");
				return;
			}
			if (st->need > s->lim.max_message) {
				char why[96];

				snprintf(why, sizeof(why), "message of %zu bytes "
				    "over the limit of %zu", st->need,
				    s->lim.max_message);
				gstream_fail(c, st, GRPC_RESOURCE_EXHAUSTED, why);
				return;
			}
			if (st->need == 0) {
				st->hdr_have = 0;
				gstream_message(c, st, (const uint8_t *)"", 0);
				continue;
			}
		}
		if (st->msg == NULL && n >= st->need) {
			/* Whole message in this chunk: no copy. */
			size_t k = st->need;

			st->need = 0;
			st->hdr_have = 0;
			gstream_message(c, st, p, k);
			p += k;
			n -= k;
			continue;
		}
		if (st->msg == NULL) {
			if (st->need > s->lim.buffer_budget - s->buffered) {
				gstream_fail(c, st, GRPC_RESOURCE_EXHAUSTED,
				    "server buffers are full");
				return;
			}
			st->msg = malloc(st->need);
			if (st->msg == NULL) {
				gstream_fail(c, st, GRPC_RESOURCE_EXHAUSTED,
				    "out of memory");
				return;
			}
			st->msg_len = st->need;
			st->msg_have = 0;
			s->buffered += st->need;
		}
		{
			size_t k = st->msg_len - st->msg_have;

			if (k > n)
				k = n;
			memcpy(st->msg + st->msg_have, p, k);
			st->msg_have += k;
			p += k;
			n -= k;
			if (st->msg_have < st->msg_len)
				return;
			st->need = 0;
			st->hdr_have = 0;
			gstream_message(c, st, st->msg, st->msg_len);
			gstream_free_msg(s, st);
		}
	}
}

static void
gstream_unlink(struct gconn *c, struct gstream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
}

static int
on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct gconn *c;
	struct gstream *st;

	if (f->hd.type != NGHTTP2_HEADERS ||
	    f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	c = user;
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	st->id = f->hd.stream_id;
	st->compressed_ok = 1;
	nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, st);
	return 0;
}

static int
on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
    void *user)
{
	struct gconn *c = user;
	struct gstream *st;
	size_t i;

	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (st == NULL)
		return 0;
	if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
		st->m = NULL;
		for (i = 0; i < c->srv->nmethods; i++) {
			const char *p = c->srv->methods[i].path;

			if (strlen(p) == valuelen && memcmp(p, value, valuelen) == 0)
				st->m = &c->srv->methods[i];
		}
		st->bad_path = st->m == NULL;
	} else if (namelen == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
		st->compressed_ok = valuelen == 8 &&
		    memcmp(value, "identity", 8) == 0;
	}
	return 0;
}

static int
on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *user)
{
	struct gconn *c = user;
	struct gstream *st = nghttp2_session_get_stream_user_data(h2, id);

	(void)flags;
	if (st != NULL && !st->done)
		gstream_data(c, st, data, len);
	return 0;
}

static int
on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct gconn *c = user;
	struct gstream *st;

	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (st == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS &&
	    f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		c->srv->stats.calls++;
		if (st->m == NULL) {
			char why[160];

			snprintf(why, sizeof(why), "unknown method%s",
			    st->bad_path ? "" : ": no :path");
			gstream_fail(c, st, GRPC_UNIMPLEMENTED, why);
			return 0;
		}
	}
	if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM) || st->done)
		return 0;
	/* The client half-closed: the call ends here. */
	if (st->hdr_have > 0 || st->need > 0)
		gstream_fail(c, st, GRPC_INVALID_ARGUMENT,
		    "stream ended inside a message");
	else if ((st->m->unary || st->m->server_stream) && st->messages == 0)
		gstream_fail(c, st, GRPC_INVALID_ARGUMENT,
		    "unary call without a message");
	else
		gstream_ok(c, st);
	return 0;
}

/* After a failed call's trailers are out, a client still sending is told
 * to stop with RST_STREAM(NO_ERROR), as gRPC servers do; sent earlier, it
 * would overtake the status. */
static int
on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct gstream *st;

	(void)user;
	if (f->hd.type != NGHTTP2_HEADERS ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	if (st != NULL && st->rst_after &&
	    !nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id))
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE,
		    f->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

static int
on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct gconn *c = user;
	struct gstream *st = nghttp2_session_get_stream_user_data(h2, id);

	(void)code;
	if (st == NULL)
		return 0;
	gstream_closed(c, st);
	free(st->out);
	gstream_free_msg(c->srv, st);
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	if (c->srv->draining && c->nstreaming == 0)
		c->drained = 1;	/* closed once this flush is out */
	gstream_unlink(c, st);
	free(st);
	return 0;
}

static void
gconn_free(uv_handle_t *h)
{
	struct gconn *c = h->data;
	struct grpc_server *s;

	if (--c->handles > 0)
		return;
	/* nghttp2_session_del closes no streams: free what is still open,
	 * and give its partial messages back to the server's budget. */
	while (c->streams) {
		struct gstream *st = c->streams;

		c->streams = st->next;
		gstream_closed(c, st);
		free(st->out);
		gstream_free_msg(c->srv, st);
		free(st);
	}
	if (c->h2)
		nghttp2_session_del(c->h2);
	if (c->ssl)
		SSL_free(c->ssl);	/* frees its BIOs too */
	s = c->srv;
	free(c);
	if (--s->nalive == 0 && s->tcp_closed)
		grpc_server_release(s);
}

static void
gconn_close(struct gconn *c, const char *why)
{
	struct grpc_server *s = c->srv;

	if (c->closing)
		return;
	c->closing = 1;
	if (why)
		log_info("event=grpc_conn_closed peer=%s reason=\"%s\"", c->peer,
		    why);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	uv_close((uv_handle_t *)&c->idle, gconn_free);
	uv_close((uv_handle_t *)&c->tcp, gconn_free);
}

static void
gconn_written(uv_write_t *req, int status)
{
	struct gwrite *w = (struct gwrite *)req;
	struct gconn *c = req->handle->data;

	free(w);
	if (status < 0 && !c->closing) {
		gconn_close(c, uv_strerror(status));
		return;
	}
	if (c->wq_blocked && !c->closing &&
	    c->tcp.write_queue_size <= WQ_LIMIT / 2) {
		struct gstream *st;

		c->wq_blocked = 0;
		for (st = c->streams; st; st = st->next)
			if (st->deferred && st->out_len > st->out_off) {
				st->deferred = 0;
				nghttp2_session_resume_data(c->h2, st->id);
			}
		gconn_flush(c);
	}
}

/* Queue n bytes to the socket as one write. */
static int
gconn_write(struct gconn *c, const void *p, size_t n)
{
	struct gwrite *w;

	if (n == 0)
		return 0;
	w = malloc(sizeof(*w) + n);
	if (w == NULL)
		return -1;
	memcpy(w->data, p, n);
	w->buf = uv_buf_init(w->data, n);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1,
	    gconn_written) < 0) {
		free(w);
		return -1;
	}
	return 0;
}

/* Move what TLS has encrypted to the socket. */
static int
gconn_drain_tls(struct gconn *c)
{
	char buf[READ_CHUNK];
	int n;

	while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
		if (gconn_write(c, buf, n) == -1)
			return -1;
	return 0;
}

static void gconn_flush_once(struct gconn *c);

/* Server-streaming handlers whose buffers drained want more. */
static void
gconn_notify(struct gconn *c)
{
	struct gstream *st;

	for (st = c->streams; st && !c->closing; st = st->next)
		if (st->notify && st->streaming) {
			st->notify = 0;
			if (st->m->on_writable)
				st->m->on_writable(c->srv->ctx,
				    (struct grpc_call *)st, st->arg);
		}
}

/* Send what nghttp2 has, then let handlers add more; never re-entered
 * (a handler's grpc_call_send asks for another round instead). */
static void
gconn_flush(struct gconn *c)
{
	if (c->in_flush) {
		c->flush_again = 1;
		return;
	}
	c->in_flush = 1;
	do {
		c->flush_again = 0;
		gconn_flush_once(c);
		if (!c->closing)
			gconn_notify(c);
	} while (c->flush_again && !c->closing);
	c->in_flush = 0;
	if (c->drained && !c->closing)
		gconn_close(c, NULL);
}

/* Everything nghttp2 wants to send, gathered into few writes. */
static void
gconn_flush_once(struct gconn *c)
{
	char batch[READ_CHUNK];
	size_t have = 0;

	if (c->closing)
		return;
	/* HTTP/2 waits for the handshake; its bytes went out already. */
	if (c->ssl && !SSL_is_init_finished(c->ssl))
		return;
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);

		if (n < 0) {
			gconn_close(c, nghttp2_strerror((int)n));
			return;
		}
		if (n == 0 || have + n > sizeof(batch)) {
			if (c->ssl) {
				if (have && SSL_write(c->ssl, batch, have) <= 0)
					goto fail;
				if (gconn_drain_tls(c) == -1)
					goto fail;
			} else if (gconn_write(c, batch, have) == -1) {
				goto fail;
			}
			have = 0;
		}
		if (n == 0)
			break;
		if ((size_t)n > sizeof(batch)) {
			if (c->ssl ? SSL_write(c->ssl, data, n) <= 0 ||
			    gconn_drain_tls(c) == -1 : gconn_write(c, data, n) == -1)
				goto fail;
			continue;
		}
		memcpy(batch + have, data, n);
		have += n;
	}
	if (!nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2))
		gconn_close(c, NULL);
	return;
fail:
	gconn_close(c, "write failed");
}

static void
gconn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char chunk[READ_CHUNK];	/* one loop thread: consumed at once */

	(void)h;
	(void)hint;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static int
gconn_h2_recv(struct gconn *c, const uint8_t *p, size_t n)
{
	ssize_t rc = nghttp2_session_mem_recv(c->h2, p, n);

	if (rc < 0) {
		gconn_close(c, nghttp2_strerror((int)rc));
		return -1;
	}
	return 0;
}

static void
gconn_tls_recv(struct gconn *c, const char *p, size_t n)
{
	char buf[READ_CHUNK], why[256];
	int k, err;

	if (BIO_write(c->rbio, p, (int)n) != (int)n) {
		gconn_close(c, "tls buffer");
		return;
	}
	if (!SSL_is_init_finished(c->ssl)) {
		k = SSL_do_handshake(c->ssl);
		if (gconn_drain_tls(c) == -1) {
			gconn_close(c, "write failed");
			return;
		}
		if (k != 1) {
			err = SSL_get_error(c->ssl, k);
			if (err == SSL_ERROR_WANT_READ)
				return;
			c->srv->stats.tls_failed++;
			snprintf(buf, sizeof(buf), "tls handshake: %s",
			    tls_error(why, sizeof(why)));
			gconn_close(c, buf);
			return;
		}
	}
	for (;;) {
		k = SSL_read(c->ssl, buf, sizeof(buf));
		if (k <= 0) {
			err = SSL_get_error(c->ssl, k);
			if (err == SSL_ERROR_WANT_READ)
				break;
			if (err == SSL_ERROR_ZERO_RETURN) {
				gconn_close(c, NULL);
				return;
			}
			c->srv->stats.tls_failed++;
			snprintf(buf, sizeof(buf), "tls: %s",
			    tls_error(why, sizeof(why)));
			gconn_close(c, buf);
			return;
		}
		if (gconn_h2_recv(c, (const uint8_t *)buf, k) == -1)
			return;
	}
}

static void
gconn_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
	struct gconn *c = h->data;

	if (n < 0) {
		gconn_close(c, n == UV_EOF ? NULL : uv_strerror((int)n));
		return;
	}
	if (n == 0 || c->closing)
		return;
	if (c->srv->lim.idle_ms)
		uv_timer_again(&c->idle);
	if (c->ssl)
		gconn_tls_recv(c, buf->base, n);
	else
		gconn_h2_recv(c, (const uint8_t *)buf->base, n);
	gconn_flush(c);
}

static void
gconn_idle(uv_timer_t *t)
{
	struct gconn *c = t->data;

	if (c->nstreaming > 0)
		return;		/* a subscriber: quiet is normal */
	log_info("event=grpc_conn_closed peer=%s reason=\"idle\"", c->peer);
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
	    nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
	    NULL, 0);
	gconn_flush(c);
	gconn_close(c, NULL);
}

static int
gconn_start_h2(struct gconn *c)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->srv->lim.max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384 },
	};

	if (nghttp2_session_server_new(&c->h2, c->srv->cbs, c) != 0)
		return -1;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
	    CONN_WINDOW) != 0)
		return -1;
	return 0;
}

static void
peer_name(uv_tcp_t *tcp, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	char host[48] = "?";
	int port = 0;

	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	    host, port);
}

static void
grpc_accept(uv_stream_t *ls, int status)
{
	struct grpc_server *s = ls->data;
	struct gconn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->srv = s;
	s->nalive++;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->idle);
	c->tcp.data = c->idle.data = c;
	c->handles = 2;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
		gconn_close(c, "accept failed");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_name(&c->tcp, c->peer, sizeof(c->peer));
	if (s->nconns > s->lim.max_conns) {
		s->stats.conns_refused++;
		log_warn("event=grpc_conn_refused peer=%s reason=max_conns "
		    "max=%u", c->peer, s->lim.max_conns);
		gconn_close(c, NULL);
		return;
	}
	s->stats.conns++;
	if (s->ssl) {
		c->ssl = SSL_new(s->ssl);
		c->rbio = BIO_new(BIO_s_mem());
		c->wbio = BIO_new(BIO_s_mem());
		if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			gconn_close(c, "tls setup failed");
			return;
		}
		SSL_set_bio(c->ssl, c->rbio, c->wbio);
		SSL_set_accept_state(c->ssl);
	}
	if (gconn_start_h2(c) == -1) {
		gconn_close(c, "http2 setup failed");
		return;
	}
	if (s->lim.idle_ms)
		uv_timer_start(&c->idle, gconn_idle, s->lim.idle_ms,
		    s->lim.idle_ms);
	uv_read_start((uv_stream_t *)&c->tcp, gconn_alloc, gconn_read);
	if (!s->ssl)
		gconn_flush(c);	/* our SETTINGS; with TLS, after the handshake */
}

int
grpc_server_listen(uv_loop_t *loop, const struct sockaddr *addr,
    const struct grpc_method *methods, size_t n,
    const struct grpc_limits *lim, SSL_CTX *ssl, void *ctx,
    struct grpc_server **out, char *err, size_t errlen)
{
	struct grpc_server *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	s->loop = loop;
	s->methods = methods;
	s->nmethods = n;
	s->lim = *lim;
	s->ctx = ctx;
	if (ssl) {
		SSL_CTX_up_ref(ssl);
		s->ssl = ssl;
	}
	nghttp2_session_callbacks_new(&s->cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs,
	    on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs,
	    on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs,
	    on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs,
	    on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(s->cbs,
	    on_frame_send);
	uv_tcp_init(loop, &s->tcp);
	s->tcp.data = s;
	if ((rc = uv_tcp_bind(&s->tcp, addr, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&s->tcp, 511, grpc_accept)) != 0) {
		snprintf(err, errlen, "%s", uv_strerror(rc));
		grpc_server_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

void
grpc_server_set_ssl(struct grpc_server *s, SSL_CTX *ssl)
{
	if (s->ssl)
		SSL_CTX_free(s->ssl);
	SSL_CTX_up_ref(ssl);
	s->ssl = ssl;
}

int
grpc_server_addr(struct grpc_server *s, struct sockaddr_storage *ss)
{
	int len = sizeof(*ss);

	return uv_tcp_getsockname(&s->tcp, (struct sockaddr *)ss, &len);
}

const struct grpc_stats *
grpc_server_stats(struct grpc_server *s)
{
	return &s->stats;
}

static void
grpc_server_release(struct grpc_server *s)
{
	nghttp2_session_callbacks_del(s->cbs);
	if (s->ssl)
		SSL_CTX_free(s->ssl);
	free(s);
}

/* libuv runs close callbacks last-closed first, so the listener's comes
 * before its connections': the server waits for them, whose streams'
 * on_close and buffer accounting still use it. */
static void
grpc_server_free(uv_handle_t *h)
{
	struct grpc_server *s = h->data;

	s->tcp_closed = 1;
	if (s->nalive == 0)
		grpc_server_release(s);
}

void
grpc_server_drain(struct grpc_server *s)
{
	struct gconn *c, *next;
	struct gstream *st;

	if (s->closing || s->draining)
		return;
	s->draining = 1;
	s->tcp_closing = 1;
	uv_close((uv_handle_t *)&s->tcp, grpc_server_free);
	for (c = s->conns; c; c = next) {
		next = c->next;
		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(c->h2),
		    NGHTTP2_NO_ERROR, NULL, 0);
		for (st = c->streams; st; st = st->next)
			if (!st->streaming && st->m != NULL && !st->done)
				gstream_fail(c, st, GRPC_UNAVAILABLE,
				    "server stopping");
		if (c->nstreaming == 0)
			c->drained = 1;
		gconn_flush(c);
	}
}

void
grpc_server_close(struct grpc_server *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	while (s->conns) {
		struct gconn *c = s->conns;

		nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(c->h2),
		    NGHTTP2_NO_ERROR, NULL, 0);
		gconn_flush(c);
		gconn_close(c, NULL);
	}
	if (!s->tcp_closing)
		uv_close((uv_handle_t *)&s->tcp, grpc_server_free);
	s->tcp_closing = 1;
}
