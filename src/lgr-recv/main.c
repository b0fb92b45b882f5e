/* lgr-recv: Loggregator ingress. Listens for dropsonde v1 envelopes over
 * UDP, the v2 gRPC Ingress service (Sender, BatchSender, Send) and the v1
 * DopplerIngestor/Pusher over HTTP/2 (h2c, TLS or mTLS), and statsd over
 * UDP; writes every envelope it accepts to stdout as a frame. With
 * --egress-relay, the egress calls on its gRPC port (v2 Egress, v1
 * Doppler) go to lgr-ws over a unix socket (relay.c), so a doppler serves
 * both on one port.
 *
 * Bad input is counted by reason, logged once a second in sum, and
 * skipped; a malformed gRPC message fails its call alone.
 *
 * Signals: SIGTERM and SIGINT stop listening, flush and exit 0. SIGHUP
 * reloads the TLS certificate, key and CA for new connections. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "addr.h"
#include "arena.h"
#include "conv.h"
#include "envelope.h"
#include "frame.h"
#include "grpcsrv.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "pbwire.h"
#include "relay.h"
#include "statsd.h"
#include "tls.h"

#define MAX_LISTEN 16
#define MAX_TAGS 32
#define OUT_BATCH (256 * 1024)
#define UDP_BUF (2 * 1024 * 1024)	/* 32 datagrams a recvmmsg */
#define DRAIN_MS 10000		/* the longest a stop waits for lgr-ws */

static const struct opt_prog prog = {
	.name = "lgr-recv",
	.usage =
	    "lgr-recv [--udp ADDR]... [--grpc ADDR]... [--statsd ADDR]...\n"
	    "[--tls-cert FILE --tls-key FILE [--tls-ca FILE]]\n"
	    "[--grpc-max-message BYTES] [--grpc-max-streams N]\n"
	    "[--grpc-max-conns N] [--idle-timeout SECONDS] [--tag K=V]...\n"
	    "[--max-frame BYTES] [--metrics-interval SECONDS]\n"
	    "[--source-id ID] [--statsd-max-keys N] [--egress-relay PATH]\n"
	    "[--notify-fd FD]\n",
	.help =
	    "Receive envelopes from the network and write them to stdout as\n"
	    "frames.\n"
	    "\n"
	    "  --udp ADDR              dropsonde v1 envelopes, one per datagram\n"
	    "                          (metron: 127.0.0.1:3457)\n"
	    "  --grpc ADDR             gRPC: loggregator.v2.Ingress Sender,\n"
	    "                          BatchSender, Send and plumbing.DopplerIngestor\n"
	    "                          Pusher (metron: 127.0.0.1:3458, doppler: :8082)\n"
	    "  --statsd ADDR           statsd lines (statsd-injector: 127.0.0.1:8125)\n"
	    "  --tls-cert FILE         serve gRPC over TLS with this certificate\n"
	    "  --tls-key FILE          and this key\n"
	    "  --tls-ca FILE           and require client certificates from this CA\n"
	    "  --grpc-max-message BYTES  largest gRPC message (default 4194304)\n"
	    "  --grpc-max-streams N    concurrent calls per connection (default 100)\n"
	    "  --grpc-max-conns N      gRPC connections at once (default 500)\n"
	    "  --idle-timeout SECONDS  close a gRPC connection idle this long\n"
	    "                          (default 600; 0: never)\n"
	    "  --tag K=V               add tag K=V to envelopes that lack K\n"
	    "  --max-frame BYTES       largest envelope written (default 1048576)\n"
	    "  --metrics-interval SECONDS  emit self-metrics this often (default 0: off)\n"
	    "  --source-id ID          source_id of self-metrics (default lgr-recv)\n"
	    "  --statsd-max-keys N     statsd running values kept (default 10000)\n"
	    "  --egress-relay PATH     serve the egress calls (v2 Egress Receiver,\n"
	    "                          BatchedReceiver, v1 Doppler Subscribe,\n"
	    "                          BatchSubscribe) on the --grpc ports by\n"
	    "                          handing each to lgr-ws on this unix socket\n"
	    "  --notify-fd FD          write a newline to FD once listening\n"
	    "  -h, --help              print this help\n"
	    "  -V, --version           print the version\n",
};

enum drop_reason {
	DROP_BAD_DATAGRAM,	/* not a dropsonde envelope */
	DROP_INVALID_ENVELOPE,	/* body does not match its event type */
	DROP_TRUNCATED,		/* datagram over 64 KiB */
	DROP_BAD_STATSD,	/* statsd line that does not parse */
	DROP_STATSD_FULL,	/* statsd table full */
	DROP_BAD_GRPC,		/* envelopes in gRPC messages refused */
	DROP_BAD_V1,		/* Pusher payload that is not dropsonde */
	DROP_TOO_LARGE,		/* over --max-frame */
	DROP_NREASONS
};

static const char *drop_names[DROP_NREASONS] = {
	"bad_datagram", "invalid_envelope", "truncated", "bad_statsd_line",
	"statsd_table_full", "bad_grpc_message", "bad_v1_payload", "too_large",
};

enum proto { P_UDP, P_GRPC, P_STATSD, P_NPROTO };
static const char *proto_names[P_NPROTO] = { "udp", "grpc", "statsd" };

struct recv;

struct udp_listener {
	uv_udp_t h;
	struct recv *r;
	int statsd;
};

struct recv {
	uv_loop_t *loop;
	struct frame_writer out;
	struct arena arena;	/* reset for every message */
	size_t max_frame;
	struct pb_tag tags[MAX_TAGS];
	size_t ntags;
	size_t tags_extra;	/* most bytes the tags can add */
	struct conv_agent agent;
	unsigned char *scratch;	/* an envelope before its tags */
	struct statsd statsd;
	const char *cert, *key, *ca;
	SSL_CTX *ssl;
	struct grpc_server *grpc[MAX_LISTEN];
	size_t ngrpc;
	struct grpc_method methods[8];	/* ingress, then egress */
	size_t nmethods;
	const char *relay_sock;	/* --egress-relay, or NULL */
	struct relay relay;
	struct udp_listener udp[MAX_LISTEN];
	size_t nudp;
	uv_signal_t sigterm, sigint, sighup;
	uv_prepare_t flush;
	uv_timer_t report, metrics_timer;
	int64_t interval_ms;
	struct metrics metrics;
	int m_ingress[P_NPROTO], m_dropped[DROP_NREASONS];
	int m_relay_calls, m_relay_unavailable, m_relay_messages;
	uint64_t ingress[P_NPROTO];
	uint64_t dropped[DROP_NREASONS];
	uint64_t reported[DROP_NREASONS];
	int status;
	int draining;		/* stopping, relayed calls still open */
	int out_closed;		/* stdout closed by the drain */
	int64_t drain_deadline;
	uv_timer_t drain_timer;
};

static void
recv_drop(struct recv *r, enum drop_reason why, uint64_t n)
{
	r->dropped[why] += n;
}

/* Write one envelope out, adding the --tag tags it lacks. The bytes are
 * passed along as they are; only tag entries are appended. */
static int
recv_out(struct recv *r, const uint8_t *env, size_t len, enum proto p)
{
	unsigned char *dst;
	ssize_t n;

	if (len > r->max_frame) {
		recv_drop(r, DROP_TOO_LARGE, 1);
		return 0;
	}
	if (r->ntags == 0) {
		if (frame_write(&r->out, env, len) == -1)
			goto fail;
		r->ingress[p]++;
		return 0;
	}
	dst = frame_reserve(&r->out, len + r->tags_extra);
	if (dst == NULL)
		goto fail;
	n = envelope_add_tags(env, len, r->tags, r->ntags, dst,
	    len + r->tags_extra);
	if (n < 0) {
		recv_drop(r, DROP_BAD_GRPC, 1);
		return 0;
	}
	if ((size_t)n > r->max_frame) {
		recv_drop(r, DROP_TOO_LARGE, 1);
		return 0;
	}
	frame_commit(&r->out, (size_t)n);
	r->ingress[p]++;
	return 0;
fail:
	log_error("event=write_failed error=\"%s\"", strerror(errno));
	r->status = 1;
	uv_stop(r->loop);
	return -1;
}

/* Pack an envelope built here (converted or parsed), then write it. */
static int
recv_out_built(struct recv *r, Loggregator__V2__Envelope *e, enum proto p)
{
	size_t len;

	if (envelope_keep_sign(e, &r->arena) == -1)
		return -1;
	len = loggregator__v2__envelope__get_packed_size(e);
	if (len > r->max_frame) {
		recv_drop(r, DROP_TOO_LARGE, 1);
		return 0;
	}
	loggregator__v2__envelope__pack(e, r->scratch);
	return recv_out(r, r->scratch, len, p);
}

/* gRPC methods. */

static int
grpc_sender(void *ctx, const uint8_t *msg, size_t len, const char **why)
{
	struct recv *r = ctx;

	arena_reset(&r->arena);
	if (envelope_unpack(&r->arena, msg, len) == NULL) {
		recv_drop(r, DROP_BAD_GRPC, 1);
		*why = "malformed loggregator.v2.Envelope";
		return GRPC_INVALID_ARGUMENT;
	}
	recv_out(r, msg, len, P_GRPC);
	return GRPC_OK;
}

static int
grpc_batch(void *ctx, const uint8_t *msg, size_t len, const char **why)
{
	struct recv *r = ctx;
	const uint8_t *p = msg, *env;
	size_t n, count = 0;
	int rc;

	/* All or nothing, as Go's unmarshal of the whole batch. */
	while ((rc = pb_batch_next(&p, msg + len, &env, &n)) == 1) {
		arena_reset(&r->arena);
		if (envelope_unpack(&r->arena, env, n) == NULL)
			break;
		count++;
	}
	if (rc != 0) {
		/* Every envelope of a refused batch is dropped. */
		while (pb_batch_next(&p, msg + len, &env, &n) == 1)
			count++;
		recv_drop(r, DROP_BAD_GRPC, count + 1);
		*why = "malformed loggregator.v2.EnvelopeBatch";
		return GRPC_INVALID_ARGUMENT;
	}
	p = msg;
	while (pb_batch_next(&p, msg + len, &env, &n) == 1)
		recv_out(r, env, n, P_GRPC);
	return GRPC_OK;
}

static int
grpc_pusher(void *ctx, const uint8_t *msg, size_t len, const char **why)
{
	struct recv *r = ctx;
	const uint8_t *p = msg;
	const uint8_t *payload = NULL;
	size_t plen = 0;
	struct pb_field f;
	Events__Envelope *v1;
	Loggregator__V2__Envelope *v2;
	int rc;

	while ((rc = pb_next(&p, msg + len, &f)) == 1)
		if (f.num == 1 && f.wire == PB_WIRE_LEN) {
			payload = f.data;
			plen = f.len;
		}
	if (rc != 0) {
		recv_drop(r, DROP_BAD_GRPC, 1);
		*why = "malformed plumbing.EnvelopeData";
		return GRPC_INVALID_ARGUMENT;
	}
	/* Doppler skips payloads it cannot read; the stream goes on. */
	arena_reset(&r->arena);
	v1 = conv_v1_unpack(&r->arena, payload ? payload : (const uint8_t *)"",
	    plen);
	if (v1 == NULL || conv_v1_to_v2(v1, 1, &r->arena, &v2) == -1) {
		recv_drop(r, DROP_BAD_V1, 1);
		return GRPC_OK;
	}
	recv_out_built(r, v2, P_GRPC);
	return GRPC_OK;
}

static int
grpc_unimplemented(void *ctx, const uint8_t *msg, size_t len,
    const char **why)
{
	(void)ctx;
	(void)msg;
	(void)len;
	*why = "method not implemented";
	return GRPC_UNIMPLEMENTED;
}

static const struct grpc_method ingress_methods[] = {
	{ .path = "/loggregator.v2.Ingress/Sender", .on_message = grpc_sender },
	{ .path = "/loggregator.v2.Ingress/BatchSender",
	    .on_message = grpc_batch },
	{ .path = "/loggregator.v2.Ingress/Send", .unary = 1,
	    .on_message = grpc_batch },
	{ .path = "/plumbing.DopplerIngestor/Pusher", .on_message = grpc_pusher },
};

/* Without --egress-relay: what lgr-recv has always answered. */
static const struct grpc_method egress_unimplemented[] = {
	{ .path = RELAY_V2_RECEIVER, .on_message = grpc_unimplemented },
	{ .path = RELAY_V2_BATCHED, .on_message = grpc_unimplemented },
};

/* on_open is told no path, so each egress method has its own. */
static int
relay_v2_receiver(void *ctx, struct grpc_call *call, const uint8_t *msg,
    size_t len, const char **why)
{
	return relay_open(&((struct recv *)ctx)->relay, RELAY_V2_RECEIVER,
	    call, msg, len, why);
}

static int
relay_v2_batched(void *ctx, struct grpc_call *call, const uint8_t *msg,
    size_t len, const char **why)
{
	return relay_open(&((struct recv *)ctx)->relay, RELAY_V2_BATCHED,
	    call, msg, len, why);
}

static int
relay_v1_subscribe(void *ctx, struct grpc_call *call, const uint8_t *msg,
    size_t len, const char **why)
{
	return relay_open(&((struct recv *)ctx)->relay, RELAY_V1_SUBSCRIBE,
	    call, msg, len, why);
}

static int
relay_v1_batch(void *ctx, struct grpc_call *call, const uint8_t *msg,
    size_t len, const char **why)
{
	return relay_open(&((struct recv *)ctx)->relay, RELAY_V1_BATCH,
	    call, msg, len, why);
}

#define RELAY_METHOD(p, fn) { .path = (p), .server_stream = 1, \
	.on_open = (fn), .on_writable = relay_writable, .on_close = relay_closed }

static const struct grpc_method egress_relayed[] = {
	RELAY_METHOD(RELAY_V2_RECEIVER, relay_v2_receiver),
	RELAY_METHOD(RELAY_V2_BATCHED, relay_v2_batched),
	RELAY_METHOD(RELAY_V1_SUBSCRIBE, relay_v1_subscribe),
	RELAY_METHOD(RELAY_V1_BATCH, relay_v1_batch),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The gRPC servers' method table: ingress, and egress as --egress-relay
 * says. */
static void
recv_methods(struct recv *r)
{
	const struct grpc_method *eg = r->relay_sock ? egress_relayed :
	    egress_unimplemented;
	size_t neg = r->relay_sock ? NELEM(egress_relayed) :
	    NELEM(egress_unimplemented);

	memcpy(r->methods, ingress_methods, sizeof(ingress_methods));
	memcpy(r->methods + NELEM(ingress_methods), eg, neg * sizeof(*eg));
	r->nmethods = NELEM(ingress_methods) + neg;
}

/* UDP: dropsonde and statsd. */

static void
udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char chunk[UDP_BUF];	/* one loop thread; used at once */

	(void)h;
	(void)hint;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void
udp_dropsonde(struct recv *r, const uint8_t *p, size_t n)
{
	Events__Envelope *v1;
	Loggregator__V2__Envelope *v2;

	arena_reset(&r->arena);
	v1 = conv_v1_unpack(&r->arena, p, n);
	if (v1 == NULL) {
		recv_drop(r, DROP_BAD_DATAGRAM, 1);
		return;
	}
	if (conv_v1_agent_to_v2(v1, &r->agent, &r->arena, &v2) == -1) {
		recv_drop(r, errno == ENOMEM ? DROP_TOO_LARGE :
		    DROP_INVALID_ENVELOPE, 1);
		return;
	}
	recv_out_built(r, v2, P_UDP);
}

static int
statsd_emit(void *ctx, Loggregator__V2__Envelope *e)
{
	return recv_out_built(ctx, e, P_STATSD);
}

static void
udp_statsd(struct recv *r, const char *p, size_t n)
{
	uint64_t bad = r->statsd.bad_lines + r->statsd.bad_tags +
	    r->statsd.bad_text, full = r->statsd.table_full;

	arena_reset(&r->arena);
	statsd_datagram(&r->statsd, p, n, time_now_ns(), &r->arena,
	    statsd_emit, r);
	recv_drop(r, DROP_BAD_STATSD, r->statsd.bad_lines + r->statsd.bad_tags +
	    r->statsd.bad_text - bad);
	recv_drop(r, DROP_STATSD_FULL, r->statsd.table_full - full);
}

static void
udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
    const struct sockaddr *addr, unsigned flags)
{
	struct udp_listener *u = h->data;

	if (flags & UV_UDP_MMSG_FREE)
		return;
	if (n < 0) {
		log_warn("event=udp_error error=\"%s\"", uv_strerror((int)n));
		return;
	}
	if (addr == NULL)
		return;		/* nothing more this time */
	if (flags & UV_UDP_PARTIAL) {
		recv_drop(u->r, DROP_TRUNCATED, 1);
		return;
	}
	if (u->statsd)
		udp_statsd(u->r, buf->base, (size_t)n);
	else
		udp_dropsonde(u->r, (const uint8_t *)buf->base, (size_t)n);
}

/* Loop hooks. */

/* Before the loop sleeps, what was batched goes out. */
static void
on_flush(uv_prepare_t *h)
{
	struct recv *r = h->data;

	if (r->out_closed)
		return;
	if (r->out.len && frame_flush(&r->out) == -1) {
		log_error("event=write_failed error=\"%s\"", strerror(errno));
		r->status = 1;
		uv_stop(r->loop);
	}
}

/* Once a second, one log line per reason that dropped anything. */
static void
on_report(uv_timer_t *t)
{
	struct recv *r = t->data;
	int i;

	for (i = 0; i < DROP_NREASONS; i++) {
		if (r->dropped[i] == r->reported[i])
			continue;
		log_warn("event=dropped reason=%s count=%llu total=%llu",
		    drop_names[i],
		    (unsigned long long)(r->dropped[i] - r->reported[i]),
		    (unsigned long long)r->dropped[i]);
		r->reported[i] = r->dropped[i];
	}
}

static void
on_metrics(uv_timer_t *t)
{
	struct recv *r = t->data;
	int i;

	for (i = 0; i < P_NPROTO; i++)
		metrics_set(&r->metrics, r->m_ingress[i], r->ingress[i]);
	for (i = 0; i < DROP_NREASONS; i++)
		metrics_set(&r->metrics, r->m_dropped[i], r->dropped[i]);
	if (r->relay_sock) {
		metrics_set(&r->metrics, r->m_relay_calls, r->relay.calls);
		metrics_set(&r->metrics, r->m_relay_unavailable,
		    r->relay.unavailable);
		metrics_set(&r->metrics, r->m_relay_messages, r->relay.messages);
	}
	if (metrics_emit(&r->metrics, time_now_ns(), &r->out) == -1) {
		log_error("event=write_failed error=\"%s\"", strerror(errno));
		r->status = 1;
		uv_stop(r->loop);
	}
}

static void
recv_stop_all(struct recv *r)
{
	size_t i;

	for (i = 0; i < r->ngrpc; i++)
		grpc_server_close(r->grpc[i]);
	for (i = 0; i < r->nudp; i++)
		uv_close((uv_handle_t *)&r->udp[i].h, NULL);
	r->ngrpc = r->nudp = 0;
	uv_close((uv_handle_t *)&r->sigterm, NULL);
	uv_close((uv_handle_t *)&r->sigint, NULL);
	uv_close((uv_handle_t *)&r->sighup, NULL);
	uv_close((uv_handle_t *)&r->report, NULL);
	uv_close((uv_handle_t *)&r->metrics_timer, NULL);
}

/* While draining: stop once lgr-ws has ended every relayed call, or at
 * the deadline. */
static void
on_drain_check(uv_timer_t *t)
{
	struct recv *r = t->data;

	if (r->relay.open == 0 || time_mono_ms() >= r->drain_deadline) {
		if (r->relay.open > 0)
			log_warn("event=drain_timeout relay_calls_open=%u",
			    r->relay.open);
		uv_close((uv_handle_t *)&r->drain_timer, NULL);
		recv_stop_all(r);
	}
}

/* A doppler stopping: ingress ends and stdout is closed, so the stages
 * after lgr-recv flush and lgr-ws, at the end of its input, sends its
 * subscribers what it holds and ends their calls; those calls are
 * relayed through this process, so its connections stay up until then. */
static void
recv_drain(struct recv *r)
{
	size_t i;

	r->draining = 1;
	log_info("event=draining relay_calls_open=%u", r->relay.open);
	for (i = 0; i < r->ngrpc; i++)
		grpc_server_drain(r->grpc[i]);
	for (i = 0; i < r->nudp; i++)
		uv_close((uv_handle_t *)&r->udp[i].h, NULL);
	r->nudp = 0;
	uv_timer_stop(&r->metrics_timer);
	if (frame_flush(&r->out) == -1) {
		log_error("event=write_failed error=\"%s\"", strerror(errno));
		r->status = 1;
	}
	r->out.len = 0;
	close(STDOUT_FILENO);
	r->out_closed = 1;
	r->drain_deadline = time_mono_ms() + DRAIN_MS;
	uv_timer_init(r->loop, &r->drain_timer);
	r->drain_timer.data = r;
	uv_timer_start(&r->drain_timer, on_drain_check, 50, 50);
}

static void
on_term(uv_signal_t *s, int signo)
{
	struct recv *r = s->data;

	if (r->draining) {
		recv_stop_all(r);	/* a second signal: stop at once */
		return;
	}
	log_info("event=signal signal=%s action=stop", signo == SIGINT ?
	    "INT" : "TERM");
	if (r->relay_sock != NULL && r->relay.open > 0) {
		recv_drain(r);
		return;
	}
	recv_stop_all(r);
}

static SSL_CTX *
recv_load_tls(struct recv *r)
{
	char err[512];
	SSL_CTX *ctx = tls_server_ctx(r->cert, r->key, r->ca, err, sizeof(err));

	if (ctx == NULL)
		log_error("event=tls_load_failed reason=\"%s\"", err);
	return ctx;
}

static void
on_hup(uv_signal_t *s, int signo)
{
	struct recv *r = s->data;
	SSL_CTX *ctx;
	size_t i;

	(void)signo;
	if (r->cert == NULL) {
		log_info("event=signal signal=HUP action=none");
		return;
	}
	ctx = recv_load_tls(r);
	if (ctx == NULL) {
		log_warn("event=signal signal=HUP action=kept_old_certificates");
		return;
	}
	for (i = 0; i < r->ngrpc; i++)
		grpc_server_set_ssl(r->grpc[i], ctx);
	SSL_CTX_free(r->ssl);
	r->ssl = ctx;
	log_info("event=signal signal=HUP action=reloaded_certificates");
}

/* Setup. */

static void
recv_add_tag(struct recv *r, const char *kv)
{
	const char *eq = strchr(kv, '=');
	struct pb_tag *t;
	size_t i, klen;

	if (eq == NULL || eq == kv)
		opt_usage_error("--tag wants K=V, not '%s'", kv);
	klen = eq - kv;
	for (i = 0; i < r->ntags; i++)
		if (r->tags[i].klen == klen && memcmp(r->tags[i].key, kv, klen) == 0)
			break;
	if (i == MAX_TAGS)
		opt_usage_error("at most %d --tag options", MAX_TAGS);
	t = &r->tags[i];
	t->key = kv;
	t->klen = klen;
	t->value = eq + 1;
	t->vlen = strlen(eq + 1);
	if (i == r->ntags)
		r->ntags++;
	/* The udp-forwarder fills these v1 fields from its settings. */
	if (klen == 10 && memcmp(kv, "deployment", 10) == 0)
		r->agent.deployment = eq + 1;
	else if (klen == 3 && memcmp(kv, "job", 3) == 0)
		r->agent.job = eq + 1;
	else if (klen == 5 && memcmp(kv, "index", 5) == 0)
		r->agent.index = eq + 1;
	else if (klen == 2 && memcmp(kv, "ip", 2) == 0)
		r->agent.ip = eq + 1;
}

static void
recv_listen_udp(struct recv *r, const char *spec, int statsd)
{
	struct udp_listener *u = &r->udp[r->nudp];
	struct sockaddr_storage ss;
	char err[256], name[80];
	int rc, size = 8 << 20;

	if (addr_parse(spec, &ss, err, sizeof(err)) == -1) {
		log_error("event=listen_failed proto=%s addr=%s reason=\"%s\"",
		    statsd ? "statsd" : "udp", spec, err);
		exit(1);
	}
	u->r = r;
	u->statsd = statsd;
	u->h.data = u;
	uv_udp_init_ex(r->loop, &u->h, ss.ss_family | UV_UDP_RECVMMSG);
	rc = uv_udp_bind(&u->h, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_udp_recv_start(&u->h, udp_alloc, udp_recv);
	if (rc != 0) {
		log_error("event=listen_failed proto=%s addr=%s reason=\"%s\"",
		    statsd ? "statsd" : "udp", spec, uv_strerror(rc));
		exit(1);
	}
	uv_recv_buffer_size((uv_handle_t *)&u->h, &size);
	rc = sizeof(ss);
	uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &rc);
	log_info("event=listening proto=%s addr=%s", statsd ? "statsd" : "udp",
	    addr_name(&ss, name, sizeof(name)));
	r->nudp++;
}

static void
recv_listen_grpc(struct recv *r, const char *spec,
    const struct grpc_limits *lim)
{
	struct sockaddr_storage ss;
	char err[256], name[80];

	if (addr_parse(spec, &ss, err, sizeof(err)) == -1 ||
	    grpc_server_listen(r->loop, (struct sockaddr *)&ss, r->methods,
	    r->nmethods, lim, r->ssl, r,
	    &r->grpc[r->ngrpc], err, sizeof(err)) == -1) {
		log_error("event=listen_failed proto=grpc addr=%s reason=\"%s\"",
		    spec, err);
		exit(1);
	}
	grpc_server_addr(r->grpc[r->ngrpc], &ss);
	log_info("event=listening proto=grpc addr=%s tls=%s%s%s",
	    addr_name(&ss, name, sizeof(name)),
	    r->ssl == NULL ? "off" : r->ca ? "mtls" : "on",
	    r->relay_sock ? " egress_relay=" : "",
	    r->relay_sock ? r->relay_sock : "");
	r->ngrpc++;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "egress-relay", required_argument, NULL, 'e' },
		{ "grpc", required_argument, NULL, 'g' },
		{ "grpc-max-conns", required_argument, NULL, 'C' },
		{ "grpc-max-message", required_argument, NULL, 'M' },
		{ "grpc-max-streams", required_argument, NULL, 'S' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "max-frame", required_argument, NULL, 'm' },
		{ "metrics-interval", required_argument, NULL, 'i' },
		{ "notify-fd", required_argument, NULL, 'n' },
		{ "source-id", required_argument, NULL, 's' },
		{ "statsd", required_argument, NULL, 'd' },
		{ "statsd-max-keys", required_argument, NULL, 'K' },
		{ "tag", required_argument, NULL, 't' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "udp", required_argument, NULL, 'u' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	static struct recv r;
	struct grpc_limits lim = {
		.max_message = 4 << 20,
		.max_streams = 100,
		.max_conns = 500,
		.idle_ms = 600 * 1000,
		.buffer_budget = 64 << 20,
	};
	const char *udp[MAX_LISTEN], *grpc[MAX_LISTEN], *statsd[MAX_LISTEN];
	const char *source_id = "lgr-recv";
	size_t nudp = 0, ngrpc = 0, nstatsd = 0, i, max_keys = 10000;
	int c, notify_fd = -1;

	opt_init(&prog);
	r.max_frame = FRAME_MAX_DEFAULT;
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'A':
			r.ca = optarg;
			break;
		case 'c':
			r.cert = optarg;
			break;
		case 'C':
			lim.max_conns = opt_u64(optarg, "--grpc-max-conns", 1,
			    100000);
			break;
		case 'e':
			r.relay_sock = optarg;
			break;
		case 'd':
		case 'g':
		case 'u':
			if ((c == 'd' ? nstatsd : c == 'g' ? ngrpc : nudp) ==
			    MAX_LISTEN)
				opt_usage_error("at most %d addresses per protocol",
				    MAX_LISTEN);
			if (c == 'd')
				statsd[nstatsd++] = optarg;
			else if (c == 'g')
				grpc[ngrpc++] = optarg;
			else
				udp[nudp++] = optarg;
			break;
		case 'i':
			r.interval_ms = (int64_t)(opt_double(optarg,
			    "--metrics-interval", 0, 86400) * 1000);
			break;
		case 'I':
			lim.idle_ms = opt_u64(optarg, "--idle-timeout", 0,
			    86400) * 1000;
			break;
		case 'k':
			r.key = optarg;
			break;
		case 'K':
			max_keys = opt_u64(optarg, "--statsd-max-keys", 1,
			    10000000);
			break;
		case 'm':
			r.max_frame = opt_u64(optarg, "--max-frame", 16,
			    FRAME_MAX_LIMIT);
			break;
		case 'M':
			lim.max_message = opt_u64(optarg, "--grpc-max-message",
			    1024, 64 << 20);
			break;
		case 'n':
			notify_fd = (int)opt_u64(optarg, "--notify-fd", 3, 1023);
			break;
		case 's':
			source_id = optarg;
			break;
		case 'S':
			lim.max_streams = opt_u64(optarg, "--grpc-max-streams",
			    1, 100000);
			break;
		case 't':
			recv_add_tag(&r, optarg);
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	if (nudp + ngrpc + nstatsd == 0)
		opt_usage_error("nothing to listen on: give --udp, --grpc or "
		    "--statsd");
	if ((r.cert == NULL) != (r.key == NULL))
		opt_usage_error("--tls-cert and --tls-key go together");
	if (r.ca && r.cert == NULL)
		opt_usage_error("--tls-ca needs --tls-cert and --tls-key");
	if (r.relay_sock && ngrpc == 0)
		opt_usage_error("--egress-relay needs --grpc");
	if (r.relay_sock && (r.relay_sock[0] == '\0' ||
	    strlen(r.relay_sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
		opt_usage_error("--egress-relay wants a unix socket path of 1 to "
		    "%zu bytes", sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (notify_fd != -1 && fcntl(notify_fd, F_GETFD) == -1)
		opt_usage_error("--notify-fd %d is not open", notify_fd);
	if (lim.buffer_budget < lim.max_message)
		lim.buffer_budget = lim.max_message;
	for (i = 0; i < nudp + ngrpc + nstatsd; i++) {
		const char *a = i < nudp ? udp[i] : i < nudp + ngrpc ?
		    grpc[i - nudp] : statsd[i - nudp - ngrpc];
		struct sockaddr_storage ss;
		char err[256];

		if (addr_parse(a, &ss, err, sizeof(err)) == -1)
			opt_usage_error("%s", err);
	}

	for (i = 0; i < r.ntags; i++)	/* field 9 entry: tag, len, key, value */
		r.tags_extra += 2 * PB_VARINT_MAX + 4 + r.tags[i].klen +
		    r.tags[i].vlen;
	r.loop = uv_default_loop();
	signal(SIGPIPE, SIG_IGN);
	if (frame_writer_init(&r.out, STDOUT_FILENO, r.max_frame +
	    r.tags_extra + FRAME_HEADER > OUT_BATCH ? r.max_frame +
	    r.tags_extra + FRAME_HEADER : OUT_BATCH) == -1 ||
	    arena_init(&r.arena, 64 * 1024, 32 * (size_t)lim.max_message) == -1 ||
	    (r.scratch = malloc(r.max_frame)) == NULL ||
	    statsd_init(&r.statsd, max_keys, max_keys * 256) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	if (r.cert && (r.ssl = recv_load_tls(&r)) == NULL)
		return 1;
	metrics_init(&r.metrics, source_id, prog.name);
	for (i = 0; i < P_NPROTO; i++)
		r.m_ingress[i] = metrics_add(&r.metrics, "ingress", "protocol",
		    proto_names[i]);
	for (i = 0; i < DROP_NREASONS; i++)
		r.m_dropped[i] = metrics_add(&r.metrics, "dropped", "reason",
		    drop_names[i]);
	if (r.relay_sock) {
		relay_init(&r.relay, r.loop, r.relay_sock, lim.max_message);
		r.m_relay_calls = metrics_add(&r.metrics, "relay_calls", NULL,
		    NULL);
		r.m_relay_unavailable = metrics_add(&r.metrics,
		    "relay_unavailable", NULL, NULL);
		r.m_relay_messages = metrics_add(&r.metrics, "relay_messages",
		    NULL, NULL);
	}
	recv_methods(&r);

	for (i = 0; i < nudp; i++)
		recv_listen_udp(&r, udp[i], 0);
	for (i = 0; i < nstatsd; i++)
		recv_listen_udp(&r, statsd[i], 1);
	for (i = 0; i < ngrpc; i++)
		recv_listen_grpc(&r, grpc[i], &lim);

	uv_signal_init(r.loop, &r.sigterm);
	uv_signal_init(r.loop, &r.sigint);
	uv_signal_init(r.loop, &r.sighup);
	r.sigterm.data = r.sigint.data = r.sighup.data = &r;
	uv_signal_start(&r.sigterm, on_term, SIGTERM);
	uv_signal_start(&r.sigint, on_term, SIGINT);
	uv_signal_start(&r.sighup, on_hup, SIGHUP);
	uv_prepare_init(r.loop, &r.flush);
	r.flush.data = &r;
	uv_prepare_start(&r.flush, on_flush);
	uv_unref((uv_handle_t *)&r.flush);
	uv_timer_init(r.loop, &r.report);
	uv_timer_init(r.loop, &r.metrics_timer);
	r.report.data = r.metrics_timer.data = &r;
	uv_timer_start(&r.report, on_report, 1000, 1000);
	if (r.interval_ms)
		uv_timer_start(&r.metrics_timer, on_metrics, r.interval_ms,
		    r.interval_ms);

	if (notify_fd != -1) {
		(void)!write(notify_fd, "\n", 1);
		close(notify_fd);
	}
	uv_run(r.loop, UV_RUN_DEFAULT);

	on_report(&r.report);
	if (!r.out_closed && frame_flush(&r.out) == -1) {
		log_error("event=write_failed error=\"%s\"", strerror(errno));
		r.status = 1;
	}
	{
		uint64_t dropped = 0;
		char relay[96] = "";

		for (i = 0; i < DROP_NREASONS; i++)
			dropped += r.dropped[i];
		if (r.relay_sock)
			snprintf(relay, sizeof(relay), " relay_calls=%llu "
			    "relay_unavailable=%llu relay_messages=%llu",
			    (unsigned long long)r.relay.calls,
			    (unsigned long long)r.relay.unavailable,
			    (unsigned long long)r.relay.messages);
		log_info("event=stop ingress_udp=%llu ingress_grpc=%llu "
		    "ingress_statsd=%llu dropped=%llu%s",
		    (unsigned long long)r.ingress[P_UDP],
		    (unsigned long long)r.ingress[P_GRPC],
		    (unsigned long long)r.ingress[P_STATSD],
		    (unsigned long long)dropped, relay);
	}
	return r.status;
}
