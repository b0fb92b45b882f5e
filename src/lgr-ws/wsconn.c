/* wsconn: a websocket session on a socket libmicrohttpd upgraded.
 *
 * wslay reads and answers the client (its frames are discarded; pings
 * get pongs, a close gets a close) and writes lgr-ws's own control
 * frames. Data frames do not go through wslay's queue, which copies every
 * message into a fresh allocation: the pump writes each envelope's frame
 * header and bytes straight from the subscriber queue into one output
 * buffer, and sends many frames with one system call. A frame bigger than
 * a quarter of that buffer goes out from the queue itself, behind its
 * header. wslay's frames go into the same buffer, only between whole
 * data frames (ws_send_cb refuses while a large frame is under way).
 *
 * Output state: out[0] always starts a frame; bytes are appended at
 * out_len and written from out_off; the buffer is reset only when all of
 * it is written, so a frame boundary is always known by walking from 0.
 *
 * Slow consumer (as the traffic controller: an envelope not taken within
 * slow_ms): the timer starts when the queue refuses an envelope, or when
 * the socket blocks while envelopes wait; it stops whenever an envelope
 * is taken from the queue. When it fires the client is cut off: the rest
 * of the queue is dropped, the frame being written is finished, close
 * 1000 follows. A write that makes no progress for write_timeout_ms ends
 * the session, and closing is bounded by write_timeout_ms too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "log.h"
#include "wsconn.h"

#define WS_OUT_CAP (64 * 1024)
#define WS_CTRL_RESERVE 256	/* kept free of data for wslay's frames */
#define WS_BIG (WS_OUT_CAP / 4)	/* larger payloads go out from the queue */
#define WS_READ_BUDGET (256 * 1024)	/* per wakeup, for fairness */
#define WS_MAX_RECV (64 * 1024)	/* a client has nothing to say */
#define WS_PUMP_ROUNDS 16	/* buffers written per wakeup */
#define WS_WSLAY_BACKLOG 8	/* wslay messages queued: stop reading */
#define WS_LINGER_BLIND_MS 1000	/* waiting for EOF alone after a close */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum ws_state {
	WS_NEW,		/* handshake not done */
	WS_OPEN,	/* streaming */
	WS_DRAIN,	/* shutdown: sending what is queued, then 1001 */
	WS_CLOSING,	/* close queued; writing what precedes it */
	WS_LINGER,	/* close sent, write side shut: reading until EOF */
	WS_DEAD,
};

struct wsconn {
	const struct wsconn_cfg *cfg;
	struct wsconn_list *list;
	struct wsconn *prev, *next;
	void *kick_arg;
	struct sub sub;
	int firehose;
	int attached;
	enum ws_state state;
	int fd;
	struct MHD_UpgradeResponseHandle *urh;
	wslay_event_context_ptr ws;
	uv_poll_t poll;
	int polling;		/* poll is initialized */
	int poll_events;
	uv_timer_t ping, slow, wtimer, deadline;
	uv_idle_t idle;
	int handles;		/* open uv handles; freed at 0 */
	char *extra;		/* read by libmicrohttpd already */
	size_t extra_len, extra_off;
	unsigned char *out;
	size_t out_len, out_off;
	const unsigned char *big;	/* payload sent from the queue's head */
	size_t big_len, big_off, big_hdr_at;
	int clear_after_big;	/* drop the queue once big is out */
	int wslay_blocked;	/* a wslay frame is partly in out */
	int ping_out;		/* a ping waits for its pong */
	int read_eof;
	int read_errno;
	size_t read_budget;
	uint64_t sent;
	char peer[64];
	char *xff;
	char *path;
};

static void ws_pump(struct wsconn *w);
static void ws_destroy(struct wsconn *w, const char *why);
static void ws_ping_cb(uv_timer_t *t);
static void ws_slow_cb(uv_timer_t *t);
static void ws_deadline_cb(uv_timer_t *t);
static void ws_to_closing(struct wsconn *w);

/* --- frames ------------------------------------------------------------ */

static size_t
ws_hdr_len(size_t len)
{
	if (len < 126)
		return 2;
	return len <= 0xffff ? 4 : 10;
}

/* A final unmasked binary frame's header. */
static void
ws_put_hdr(unsigned char *p, size_t len)
{
	int i;

	p[0] = 0x82;
	if (len < 126) {
		p[1] = (unsigned char)len;
	} else if (len <= 0xffff) {
		p[1] = 126;
		p[2] = (unsigned char)(len >> 8);
		p[3] = (unsigned char)len;
	} else {
		p[1] = 127;
		for (i = 0; i < 8; i++)
			p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
}

/* The end of the frame starting at pos, or out_len if it runs past it. */
static size_t
ws_frame_end(const struct wsconn *w, size_t pos)
{
	const unsigned char *p = w->out + pos;
	size_t have = w->out_len - pos, hl, len;
	int i;

	if (have < 2)
		return w->out_len;
	len = p[1] & 0x7f;
	hl = 2;
	if (len == 126) {
		hl = 4;
		if (have < hl)
			return w->out_len;
		len = (size_t)p[2] << 8 | p[3];
	} else if (len == 127) {
		hl = 10;
		if (have < hl)
			return w->out_len;
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
	}
	if (len > have - hl)
		return w->out_len;
	return pos + hl + len;
}

/* Drop every frame in out that has not started going out; keep the one
 * being written. */
static void
ws_truncate(struct wsconn *w)
{
	size_t pos = 0, end;

	if (w->wslay_blocked)
		return;		/* wslay will append the rest of its frame */
	while (pos < w->out_len) {
		end = ws_frame_end(w, pos);
		if (end > w->out_off) {
			w->out_len = pos >= w->out_off ? pos : end;
			break;
		}
		pos = end;
	}
	if (w->big != NULL && w->out_len <= w->big_hdr_at)
		w->big = NULL;	/* its header never went out */
}

void
ws_accept_key(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	out[0] = '\0';
	if (c == NULL)
		return;
	if (EVP_DigestInit_ex(c, EVP_sha1(), NULL) == 1 &&
	    EVP_DigestUpdate(c, key, strlen(key)) == 1 &&
	    EVP_DigestUpdate(c, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
	    EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 20)
		EVP_EncodeBlock((unsigned char *)out, md, 20);
	EVP_MD_CTX_free(c);
}

/* --- wslay callbacks ----------------------------------------------------- */

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct wsconn *w = user;
	ssize_t n;

	(void)flags;
	if (w->extra_off < w->extra_len) {
		n = (ssize_t)(w->extra_len - w->extra_off);
		if ((size_t)n > len)
			n = (ssize_t)len;
		memcpy(buf, w->extra + w->extra_off, (size_t)n);
		w->extra_off += (size_t)n;
		return n;
	}
	if (w->read_budget == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > w->read_budget)
		len = w->read_budget;
	do
		n = recv(w->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		w->read_budget -= (size_t)n;
		return n;
	}
	if (n == 0)
		w->read_eof = 1;
	else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	} else
		w->read_errno = errno;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/* wslay's frames go into out; never behind a large frame's header. */
static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct wsconn *w = user;
	size_t room = WS_OUT_CAP - w->out_len;

	(void)flags;
	if (w->big != NULL || room == 0) {
		w->wslay_blocked = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > room) {
		len = room;
		w->wslay_blocked = 1;
	}
	memcpy(w->out + w->out_len, data, len);
	w->out_len += len;
	return (ssize_t)len;
}

static void
ws_on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	struct wsconn *w = user;

	(void)ctx;
	/* Data frames are discarded; a pong restarts the ping cycle. */
	if (arg->opcode != WSLAY_PONG || !w->ping_out)
		return;
	w->ping_out = 0;
	if (w->state == WS_OPEN || w->state == WS_DRAIN)
		uv_timer_start(&w->ping, ws_ping_cb, w->cfg->ping_ms, 0);
}

/* --- timers -------------------------------------------------------------- */

static void
ws_slow_arm(struct wsconn *w)
{
	if (w->state == WS_OPEN && !uv_is_active((uv_handle_t *)&w->slow))
		uv_timer_start(&w->slow, ws_slow_cb, w->cfg->slow_ms, 0);
}

/* An envelope was taken from the queue. */
static void
ws_took(struct wsconn *w, uint64_t n)
{
	uv_timer_stop(&w->slow);
	w->sent += n;
	w->sub.egress += n;
	wsd_count(w->cfg->d, w->firehose ? WSD_EGRESS_FIREHOSE :
	    WSD_EGRESS_STREAM, n);
}

/* Stop taking envelopes and close with code (0: no payload) after the
 * frame being written. */
static void
ws_close_with(struct wsconn *w, uint16_t code, const char *reason)
{
	int r;

	if (w->state >= WS_CLOSING)
		return;
	ws_to_closing(w);
	ws_truncate(w);
	if (w->big != NULL)
		w->clear_after_big = 1;
	else
		squeue_clear(&w->sub.q);
	r = wslay_event_queue_close(w->ws, code, (const uint8_t *)reason,
	    reason ? strlen(reason) : 0);
	if (r != 0 && r != WSLAY_ERR_NO_MORE_MSG) {
		ws_destroy(w, "close_failed");
		return;
	}
	ws_pump(w);
}

static void
ws_slow_cb(uv_timer_t *t)
{
	struct wsconn *w = t->data;
	char body[1024];

	if (w->state != WS_OPEN)
		return;
	log_warn("event=slow_consumer sub=\"%s\" peer=%s path=\"%s\" "
	    "queued=%zu", w->sub.name, w->peer, w->path,
	    squeue_count(&w->sub.q));
	wsd_count(w->cfg->d, WSD_SLOW_CONSUMER, 1);
	/* The traffic controller's event text, field for field. */
	snprintf(body, sizeof(body), "Remote Address: %s\n"
	    "X-Forwarded-For: %s\nPath: %s\n\n"
	    "When Loggregator detects a slow connection, that connection is "
	    "disconnected to prevent back pressure on the system. This may be "
	    "due to improperly scaled nozzles, or slow user connections to "
	    "Loggregator", w->peer, w->xff ? w->xff : "", w->path);
	wsd_event(w->cfg->d, "Traffic Controller has disconnected slow consumer",
	    body);
	ws_close_with(w, WSLAY_CODE_NORMAL_CLOSURE, NULL);
}

static void
ws_ping_cb(uv_timer_t *t)
{
	struct wsconn *w = t->data;
	struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };

	if (w->state != WS_OPEN && w->state != WS_DRAIN)
		return;
	if (w->ping_out) {
		log_info("event=ws_keepalive_expired peer=%s path=\"%s\"",
		    w->peer, w->path);
		ws_close_with(w, WSLAY_CODE_POLICY_VIOLATION, "Client did not "
		    "respond to ping before keep-alive timeout expired.");
		return;
	}
	if (wslay_event_queue_msg(w->ws, &m) != 0) {
		ws_destroy(w, "ping_failed");
		return;
	}
	w->ping_out = 1;
	uv_timer_start(&w->ping, ws_ping_cb, w->cfg->pong_timeout_ms, 0);
	ws_pump(w);
}

static void
ws_wtimer_cb(uv_timer_t *t)
{
	ws_destroy(t->data, "write_timeout");
}

static void
ws_deadline_cb(uv_timer_t *t)
{
	ws_destroy(t->data, "close_timeout");
}

static void
ws_idle_cb(uv_idle_t *i)
{
	struct wsconn *w = i->data;

	uv_idle_stop(i);
	ws_pump(w);
}

/* --- the subscriber -------------------------------------------------------- */

static void
ws_wake(struct sub *s)
{
	struct wsconn *w = s->owner;

	if (w->state == WS_OPEN || w->state == WS_DRAIN)
		uv_idle_start(&w->idle, ws_idle_cb);
}

static void
ws_full(struct sub *s)
{
	ws_slow_arm(s->owner);
}

static const struct sub_ops ws_ops = { ws_wake, ws_full };

/* --- the pump ---------------------------------------------------------------- */

static int
ws_may_send_data(const struct wsconn *w)
{
	return (w->state == WS_OPEN || w->state == WS_DRAIN) &&
	    !wslay_event_get_close_received(w->ws);
}

/* Move wslay's frames, then data frames, into out. 0, or -1 when wslay
 * failed. */
static int
ws_fill(struct wsconn *w)
{
	const unsigned char *p;
	size_t len, hl, limit = WS_OUT_CAP - WS_CTRL_RESERVE;
	uint64_t n = 0;

	if (w->out_off == w->out_len && w->big == NULL)
		w->out_off = w->out_len = 0;
	w->wslay_blocked = 0;
	if (wslay_event_want_write(w->ws) && wslay_event_send(w->ws) != 0)
		return -1;
	if (!ws_may_send_data(w))
		return 0;
	while (w->big == NULL && !w->wslay_blocked &&
	    (p = squeue_peek(&w->sub.q, &len)) != NULL) {
		hl = ws_hdr_len(len);
		if (len > WS_BIG) {
			if (w->out_len + hl > WS_OUT_CAP)
				break;
			ws_put_hdr(w->out + w->out_len, len);
			w->big_hdr_at = w->out_len;
			w->out_len += hl;
			w->big = p;
			w->big_len = len;
			w->big_off = 0;
			break;
		}
		if (w->out_len >= limit || limit - w->out_len < hl + len)
			break;
		ws_put_hdr(w->out + w->out_len, len);
		memcpy(w->out + w->out_len + hl, p, len);
		w->out_len += hl + len;
		squeue_pop(&w->sub.q);
		n++;
	}
	if (n > 0)
		ws_took(w, n);
	return 0;
}

/* Write out and the large frame behind it. 1 when all is written, 0 when
 * the socket is full, -1 on an error (errno). */
static int
ws_flush(struct wsconn *w)
{
	struct iovec iov[2];
	struct msghdr mh;
	size_t a, b;
	ssize_t n;

	for (;;) {
		a = w->out_len - w->out_off;
		b = w->big != NULL ? w->big_len - w->big_off : 0;
		if (a == 0 && b == 0) {
			uv_timer_stop(&w->wtimer);
			return 1;
		}
		iov[0].iov_base = w->out + w->out_off;
		iov[0].iov_len = a;
		iov[1].iov_base = (void *)(w->big + w->big_off);
		iov[1].iov_len = b;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = a > 0 ? iov : iov + 1;
		mh.msg_iovlen = a > 0 && b > 0 ? 2 : 1;
		n = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (!uv_is_active((uv_handle_t *)&w->wtimer))
				uv_timer_start(&w->wtimer, ws_wtimer_cb,
				    w->cfg->write_timeout_ms, 0);
			if (squeue_count(&w->sub.q) > 0)
				ws_slow_arm(w);
			return 0;
		}
		uv_timer_start(&w->wtimer, ws_wtimer_cb,
		    w->cfg->write_timeout_ms, 0);
		if ((size_t)n <= a) {
			w->out_off += (size_t)n;
		} else {
			w->out_off = w->out_len;
			w->big_off += (size_t)n - a;
		}
		if (w->big != NULL && w->big_off == w->big_len) {
			w->big = NULL;
			squeue_pop(&w->sub.q);
			if (w->clear_after_big) {
				w->clear_after_big = 0;
				squeue_clear(&w->sub.q);
			} else
				ws_took(w, 1);
		}
		if (w->out_off == w->out_len && w->big == NULL)
			w->out_off = w->out_len = 0;
	}
}

static int
ws_more(const struct wsconn *w)
{
	if (wslay_event_want_write(w->ws))
		return 1;
	return ws_may_send_data(w) && squeue_count(&w->sub.q) > 0;
}

static void
ws_set_poll(struct wsconn *w, int events)
{
	if (events == w->poll_events)
		return;
	w->poll_events = events;
	if (events == 0)
		uv_poll_stop(&w->poll);
	else
		uv_poll_start(&w->poll, events, w->poll.poll_cb);
}

/* Stop streaming: the session only closes from here on. */
static void
ws_to_closing(struct wsconn *w)
{
	if (w->attached) {
		feed_detach(w->cfg->d, &w->sub);
		w->attached = 0;
	}
	uv_timer_stop(&w->ping);
	uv_timer_stop(&w->slow);
	w->state = WS_CLOSING;
	uv_timer_start(&w->deadline, ws_deadline_cb, w->cfg->write_timeout_ms,
	    0);
}

/* After I/O: the closing steps, then what to wait for. */
static void
ws_settle(struct wsconn *w)
{
	int ev = 0, pending;

	pending = w->out_len > w->out_off || w->big != NULL;
	if (w->state == WS_CLOSING && !pending &&
	    wslay_event_get_close_sent(w->ws)) {
		if (wslay_event_get_close_received(w->ws)) {
			ws_destroy(w, "closed");
			return;
		}
		/* Half-close so that the client reads the close frame
		 * rather than a reset, then wait for its close. */
		shutdown(w->fd, SHUT_WR);
		w->state = WS_LINGER;
		if (!wslay_event_want_read(w->ws) &&
		    w->cfg->write_timeout_ms > WS_LINGER_BLIND_MS)
			/* Only EOF can end it now: the stream past a bad
			 * frame cannot be parsed for the client's close. */
			uv_timer_start(&w->deadline, ws_deadline_cb,
			    WS_LINGER_BLIND_MS, 0);
	}
	if (w->state == WS_LINGER) {
		ws_set_poll(w, UV_READABLE);
		return;
	}
	if (wslay_event_get_queued_msg_count(w->ws) < WS_WSLAY_BACKLOG)
		ev |= UV_READABLE;
	if (pending || (wslay_event_want_write(w->ws) && w->wslay_blocked))
		ev |= UV_WRITABLE;
	ws_set_poll(w, ev);
}

static void
ws_pump(struct wsconn *w)
{
	int round, r;

	for (round = 0; round < WS_PUMP_ROUNDS; round++) {
		if (w->state == WS_DRAIN && w->big == NULL &&
		    squeue_count(&w->sub.q) == 0) {
			ws_close_with(w, WSLAY_CODE_GOING_AWAY, NULL);
			return;
		}
		if (ws_fill(w) == -1) {
			ws_destroy(w, "wslay_send_failed");
			return;
		}
		r = ws_flush(w);
		if (r == -1) {
			ws_destroy(w, "write_error");
			return;
		}
		if (r == 0 || !ws_more(w))
			break;
	}
	if (round == WS_PUMP_ROUNDS)
		uv_idle_start(&w->idle, ws_idle_cb);
	ws_settle(w);
}

/* --- reading --------------------------------------------------------------- */

/* wslay has stopped reading (a frame over the limit, a protocol error):
 * discard what comes until EOF. 0, or -1 when the session ended. */
static int
ws_discard(struct wsconn *w)
{
	char junk[4096];
	ssize_t n;

	while (w->read_budget > 0) {
		n = recv(w->fd, junk, sizeof(junk), 0);
		if (n > 0) {
			w->read_budget -= (size_t)n < w->read_budget ?
			    (size_t)n : w->read_budget;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		ws_destroy(w, w->state == WS_LINGER ? "closed" :
		    "client_went_away");
		return -1;
	}
	return 0;
}

static void
ws_read(struct wsconn *w)
{
	w->read_budget = WS_READ_BUDGET;
	if (!wslay_event_want_read(w->ws)) {
		if (ws_discard(w) == 0)
			ws_settle(w);
		return;
	}
	if (wslay_event_recv(w->ws) != 0) {
		ws_destroy(w, wslay_event_get_close_received(w->ws) &&
		    wslay_event_get_close_sent(w->ws) ? "closed" :
		    w->read_eof ? "client_went_away" : "read_error");
		return;
	}
	if (w->state == WS_LINGER && wslay_event_get_close_received(w->ws)) {
		ws_destroy(w, "closed");
		return;
	}
	if (w->state < WS_CLOSING && !wslay_event_want_read(w->ws)) {
		/* The client closed, or wslay gave up on it and queued a
		 * close (1009 for a frame over the limit, 1002 ...). */
		if (!wslay_event_get_close_received(w->ws))
			log_info("event=ws_bad_client peer=%s path=\"%s\"",
			    w->peer, w->path);
		ws_to_closing(w);
	}
	ws_pump(w);
}

static void
ws_poll_cb(uv_poll_t *p, int status, int events)
{
	struct wsconn *w = p->data;

	if (status < 0) {
		ws_destroy(w, "poll_error");
		return;
	}
	if (w->state == WS_DEAD)
		return;
	if (events & UV_READABLE) {
		ws_read(w);
		if (w->state == WS_DEAD)
			return;
	}
	if (events & UV_WRITABLE)
		ws_pump(w);
}

/* --- life -------------------------------------------------------------------- */

static void
ws_handle_closed(uv_handle_t *h)
{
	struct wsconn *w = h->data;

	if (--w->handles > 0)
		return;
	free(w->extra);
	free(w->out);
	free(w->xff);
	free(w->path);
	free(w);
}

static void
ws_unlink(struct wsconn *w)
{
	struct wsconn_list *l = w->list;

	if (l == NULL)
		return;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->list = NULL;
	if (--l->n == 0 && l->empty != NULL)
		l->empty(l->arg);
}

static void
ws_close_handles(struct wsconn *w)
{
	uv_close((uv_handle_t *)&w->ping, ws_handle_closed);
	uv_close((uv_handle_t *)&w->slow, ws_handle_closed);
	uv_close((uv_handle_t *)&w->wtimer, ws_handle_closed);
	uv_close((uv_handle_t *)&w->deadline, ws_handle_closed);
	uv_close((uv_handle_t *)&w->idle, ws_handle_closed);
	if (w->polling)
		uv_close((uv_handle_t *)&w->poll, ws_handle_closed);
}

static void
ws_destroy(struct wsconn *w, const char *why)
{
	if (w->state == WS_DEAD)
		return;
	w->state = WS_DEAD;
	if (w->attached)
		feed_detach(w->cfg->d, &w->sub);
	w->attached = 0;
	sub_release(&w->sub);
	log_info("event=ws_end peer=%s path=\"%s\" reason=%s sent=%llu",
	    w->peer, w->path, why, (unsigned long long)w->sent);
	ws_close_handles(w);	/* the poll stops before the fd goes */
	if (w->ws != NULL)
		wslay_event_context_free(w->ws);
	w->ws = NULL;
	if (w->urh != NULL) {
		MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
		w->urh = NULL;
		w->cfg->kick(w->kick_arg);
	}
	ws_unlink(w);
}

struct wsconn *
wsconn_new(const struct wsconn_cfg *cfg, struct wsconn_list *list,
    void *kick_arg, int firehose, const char *peer, const char *xff,
    const char *path)
{
	uv_loop_t *loop = wsd_loop(cfg->d);
	struct wsconn *w;
	char name[96];

	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->path = strdup(path);
	w->xff = xff != NULL ? strdup(xff) : NULL;
	if (w->path == NULL || (xff != NULL && w->xff == NULL))
		goto fail;
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	snprintf(name, sizeof(name), "ws %s %s", peer, path);
	if (sub_init(cfg->d, &w->sub, SUB_V1, &ws_ops, w, name) == -1)
		goto fail;
	w->sub.evict = 0;	/* a full queue is the client's problem */
	w->cfg = cfg;
	w->kick_arg = kick_arg;
	w->firehose = firehose;
	w->fd = -1;
	uv_timer_init(loop, &w->ping);
	uv_timer_init(loop, &w->slow);
	uv_timer_init(loop, &w->wtimer);
	uv_timer_init(loop, &w->deadline);
	uv_idle_init(loop, &w->idle);
	w->ping.data = w->slow.data = w->wtimer.data = w->deadline.data = w;
	w->idle.data = w;
	w->handles = 5;
	w->list = list;
	w->next = list->head;
	if (list->head != NULL)
		list->head->prev = w;
	list->head = w;
	list->n++;
	return w;
fail:
	free(w->path);
	free(w->xff);
	free(w);
	errno = ENOMEM;
	return NULL;
}

struct sub *
wsconn_sub(struct wsconn *w)
{
	return &w->sub;
}

int
wsconn_attach(struct wsconn *w, const char **why)
{
	if (feed_attach(w->cfg->d, &w->sub, why) == -1)
		return -1;
	w->attached = 1;
	return 0;
}

void
wsconn_free(struct wsconn *w)
{
	if (w->state != WS_NEW)
		return;
	w->state = WS_DEAD;
	if (w->attached)
		feed_detach(w->cfg->d, &w->sub);
	w->attached = 0;
	sub_release(&w->sub);
	ws_close_handles(w);
	ws_unlink(w);
}

/* Shutdown: send what the queue holds, then close 1001. */
static void
ws_stop(struct wsconn *w)
{
	if (w->state != WS_OPEN)
		return;
	if (w->attached) {
		feed_detach(w->cfg->d, &w->sub);
		w->attached = 0;
	}
	uv_timer_stop(&w->slow);
	w->state = WS_DRAIN;
	uv_timer_start(&w->deadline, ws_deadline_cb, w->cfg->write_timeout_ms,
	    0);
	ws_pump(w);
}

void
wsconn_stop_all(struct wsconn_list *list)
{
	struct wsconn *w, *next;

	list->stopping = 1;
	for (w = list->head; w != NULL; w = next) {
		next = w->next;
		ws_stop(w);
	}
}

void
wsconn_kill_all(struct wsconn_list *list)
{
	struct wsconn *w, *next;

	for (w = list->head; w != NULL; w = next) {
		next = w->next;
		if (w->state != WS_NEW)
			ws_destroy(w, "shutdown");
	}
}

static const struct wslay_event_callbacks ws_callbacks = {
	ws_recv_cb, ws_send_cb, NULL, NULL, NULL, NULL, ws_on_msg,
};

void
wsconn_upgraded(struct wsconn *w, int fd,
    struct MHD_UpgradeResponseHandle *urh, const char *extra, size_t n)
{
	struct wslay_event_msg ping = { WSLAY_PING, NULL, 0 };
	int fl;

	w->fd = fd;
	w->urh = urh;
	w->state = WS_OPEN;
	if (uv_poll_init(wsd_loop(w->cfg->d), &w->poll, fd) != 0) {
		ws_destroy(w, "poll_init_failed");
		return;
	}
	w->poll.data = w;
	w->poll.poll_cb = ws_poll_cb;
	w->polling = 1;
	w->handles++;
	fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		ws_destroy(w, "nonblock_failed");
		return;
	}
	w->out = malloc(WS_OUT_CAP);
	if (n > 0) {
		w->extra = malloc(n);
		if (w->extra != NULL)
			memcpy(w->extra, extra, n);
		w->extra_len = n;
	}
	if (w->out == NULL || (n > 0 && w->extra == NULL) ||
	    wslay_event_context_server_init(&w->ws, &ws_callbacks, w) != 0) {
		ws_destroy(w, "out_of_memory");
		return;
	}
	/* Client frames are never kept: no buffering, and a limit on each
	 * frame (wslay answers a longer one with close 1009). */
	wslay_event_config_set_no_buffering(w->ws, 1);
	wslay_event_config_set_max_recv_msg_length(w->ws, WS_MAX_RECV);
	log_info("event=ws_open peer=%s path=\"%s\"", w->peer, w->path);
	if (wslay_event_queue_msg(w->ws, &ping) != 0) {
		ws_destroy(w, "ping_failed");
		return;
	}
	w->ping_out = 1;
	uv_timer_start(&w->ping, ws_ping_cb, w->cfg->pong_timeout_ms, 0);
	if (w->list != NULL && w->list->stopping) {
		ws_stop(w);
		return;
	}
	if (n > 0)
		ws_read(w);
	else
		ws_pump(w);
}
