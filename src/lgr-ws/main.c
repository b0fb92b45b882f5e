/* lgr-ws: Loggregator egress. Envelopes in from stdin (as a sink of
 * lgr-route: the doppler side) or from subscriptions on upstream dopplers
 * (the traffic controller and reverse log proxy side); out to
 * subscribers: v2 Egress and v1 Doppler gRPC streams (--grpc, or relayed
 * by lgr-recv through --relay), the traffic controller's websockets and
 * the gateway's server-sent events (--http). Every subscriber has its own
 * bounded queue; one that falls behind loses its own envelopes or, on a
 * websocket, is cut off. Nobody else notices. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"
#include "auth.h"
#include "frame.h"
#include "http.h"
#include "log.h"
#include "opt.h"
#include "tls.h"
#include "upcli.h"
#include "wsd.h"
#include "v2/envelope.pb-c.h"

#define MAX_LIST 64
#define CHUNK_MAX (256 * 1024)	/* bytes of frames the reader hands over */
#define CHUNKS_MAX 8		/* chunks waiting before the reader waits */
#define OUT_QUEUE_MAX (1 << 20)	/* own frames waiting for stdout */
/* A stop gives subscribers this long to take what they are owed; a
 * stalled one is then cut, what it held counted as dropped. */
#define STOP_DRAIN_MS 2000
#define FLUSH_EVERY 128		/* envelopes published between wake-ups */

static const struct opt_prog prog = {
	.name = "lgr-ws",
	.usage =
	    "lgr-ws [--grpc ADDR] [--relay PATH] [--http ADDR] [options] < FRAMES\n"
	    "lgr-ws --upstream ADDR[,ADDR...] [--grpc ADDR] [--http ADDR] [options]\n",
	.help =
	    "Serve envelopes to subscribers: v2 Egress and v1 Doppler gRPC\n"
	    "streams, traffic-controller websockets and v2 server-sent events.\n"
	    "Envelopes come from stdin, or with --upstream from subscriptions on\n"
	    "upstream dopplers (one per subscriber on each, merged).\n"
	    "\n"
	    "Servers:\n"
	    "  --grpc ADDR             serve loggregator.v2.Egress and plumbing.Doppler\n"
	    "  --tls-cert F, --tls-key F, --tls-ca F\n"
	    "                          TLS for --grpc; with --tls-ca, mutual TLS\n"
	    "  --relay PATH            take egress calls relayed by lgr-recv\n"
	    "                          --egress-relay on this unix socket\n"
	    "  --http ADDR             websockets /apps/ID/stream, /firehose/ID;\n"
	    "                          /v2/read (SSE), /set-cookie, recentlogs,\n"
	    "                          containermetrics\n"
	    "  --http-cert F, --http-key F   TLS for --http\n"
	    "  --cache URL             an lgr-cache base URL for recentlogs and\n"
	    "                          containermetrics (repeatable)\n"
	    "  --cookie-domain D       Domain of the /set-cookie cookie\n"
	    "\n"
	    "Upstreams:\n"
	    "  --upstream ADDRS        HOST:PORT list (comma-separated or repeated)\n"
	    "  --upstream-ca F, --upstream-cert F, --upstream-key F\n"
	    "                          mutual TLS to the upstreams\n"
	    "  --upstream-name NAME    name their certificates carry (doppler)\n"
	    "\n"
	    "Authorization (--http):\n"
	    "  --uaa URL               UAA for check_token (firehose, admin reads)\n"
	    "  --uaa-client ID         its client (doppler), --uaa-secret S\n"
	    "  --cc URL                Cloud Controller for log access\n"
	    "  --auth-ca F, --auth-cert F, --auth-key F   TLS to UAA and CC\n"
	    "  --auth-insecure         skip their certificate checks\n"
	    "  --no-auth               no checks; --http must be a loopback address\n"
	    "\n"
	    "Subscribers:\n"
	    "  --subscriber-buffer N   envelopes queued per subscriber (1000)\n"
	    "  --subscriber-bytes N    bytes queued per subscriber (4194304)\n"
	    "  --max-subscriptions N   at once, all kinds (2000)\n"
	    "  --slow-consumer-timeout S  websocket queue full this long: cut off (5)\n"
	    "  --ping-interval S       websocket pause between pings (15)\n"
	    "  --pong-timeout S        websocket wait for a pong (30)\n"
	    "  --heartbeat S           SSE heartbeat when idle (15)\n"
	    "  --stream-timeout S      SSE stream length before \"closing\" (840)\n"
	    "  --write-timeout S       a websocket write, an idle HTTP request, the\n"
	    "                          drain at stop: each at most this long (6)\n"
	    "\n"
	    "Other:\n"
	    "  --max-frame N           largest frame read from stdin (1048576)\n"
	    "  --metrics-interval S    self-metrics to stdout this often (60; 0 off)\n"
	    "  --source-id ID          of the self-metrics (lgr-ws)\n"
	    "  --notify-fd FD          write a newline to FD once serving\n",
};

static struct wsd wsd;

/* --- subscribers and feeds ---------------------------------------------- */

int
sub_init(struct wsd *d, struct sub *s, enum sub_form form,
    const struct sub_ops *ops, void *owner, const char *name)
{
	memset(s, 0, sizeof(*s));
	if (squeue_init(&s->q, d->sub_buffer, d->sub_bytes) == -1)
		return -1;
	s->form = form;
	s->ops = ops;
	s->owner = owner;
	s->d = d;
	snprintf(s->name, sizeof(s->name), "%s", name);
	return 0;
}

void
sub_release(struct sub *s)
{
	sub_filter_free(&s->f);
	squeue_release(&s->q);
}

int
sub_offer(struct wsd *d, struct sub *s, const uint8_t *p, size_t len)
{
	int n;

	if (s->evict) {
		n = squeue_push_evict(&s->q, p, len);
		if (n != 0)
			wsd_count(d, WSD_DROPPED, n < 0 ? 1 : (uint64_t)n);
		return n >= 0;
	}
	if (squeue_push(&s->q, p, len) == -1) {
		wsd_count(d, WSD_DROPPED, 1);
		if (s->ops->full)
			s->ops->full(s);
		return 0;
	}
	return 1;
}

int
feed_attach(struct wsd *d, struct sub *s, const char **why)
{
	int rc;

	if (d->stopping) {
		*why = "shutting down";
		return -1;
	}
	if (d->nsubs >= d->max_subs) {
		*why = "too many subscriptions";
		return -1;
	}
	rc = d->hub ? hub_attach(d->hub, s, why) : upfeed_attach(d->up, s, why);
	if (rc == 0)
		d->nsubs++;
	return rc;
}

void
feed_detach(struct wsd *d, struct sub *s)
{
	if (d->hub)
		hub_detach(d->hub, s);
	else if (d->up)		/* gone at a stop: its streams with it */
		upfeed_detach(d->up, s);
	d->nsubs--;
}

uv_loop_t *
wsd_loop(struct wsd *d)
{
	return d->loop;
}

void
wsd_count(struct wsd *d, enum wsd_counter c, uint64_t n)
{
	d->counters[c] += n;
}

/* --- our own frames on stdout ------------------------------------------------ */

struct owrite {
	uv_write_t req;
	uv_buf_t buf;
	unsigned char data[];
};

static void
out_written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* Frames to stdout; never blocks the loop on a pipe nobody reads: past
 * OUT_QUEUE_MAX they are dropped and counted. */
static void
out_bytes(struct wsd *d, const unsigned char *p, size_t n)
{
	struct owrite *w;

	if (n == 0)
		return;
	if (!d->out_pipe_ok) {
		if (fd_write_all(STDOUT_FILENO, p, n) == -1)
			d->out_dropped++;
		return;
	}
	if (d->out_pipe.write_queue_size > OUT_QUEUE_MAX ||
	    (w = malloc(sizeof(*w) + n)) == NULL) {
		d->out_dropped++;
		return;
	}
	memcpy(w->data, p, n);
	w->buf = uv_buf_init((char *)w->data, n);
	if (uv_write(&w->req, (uv_stream_t *)&d->out_pipe, &w->buf, 1,
	    out_written) < 0) {
		free(w);
		d->out_dropped++;
	}
}

void
wsd_event(struct wsd *d, const char *title, const char *body)
{
	Loggregator__V2__Envelope e = LOGGREGATOR__V2__ENVELOPE__INIT;
	Loggregator__V2__Event ev = LOGGREGATOR__V2__EVENT__INIT;
	Loggregator__V2__Envelope__TagsEntry origin =
	    LOGGREGATOR__V2__ENVELOPE__TAGS_ENTRY__INIT;
	Loggregator__V2__Envelope__TagsEntry *tags[] = { &origin };
	unsigned char *buf;
	size_t n;

	e.timestamp = time_now_ns();
	e.source_id = (char *)d->ms.source_id;
	origin.key = "origin";
	origin.value = (char *)d->ms.origin;
	e.tags = tags;
	e.n_tags = 1;
	ev.title = (char *)title;
	ev.body = (char *)body;
	e.message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
	e.event = &ev;
	n = loggregator__v2__envelope__get_packed_size(&e);
	if ((buf = malloc(FRAME_HEADER + n)) == NULL)
		return;
	frame_put_len(buf, (uint32_t)n);
	loggregator__v2__envelope__pack(&e, buf + FRAME_HEADER);
	out_bytes(d, buf, FRAME_HEADER + n);
	free(buf);
}

static void
emit_metrics(struct wsd *d)
{
	struct frame_writer w;
	int i;

	for (i = 0; i < WSD_NCOUNTERS; i++)
		metrics_set(&d->ms, d->mi[i], d->counters[i]);
	if (frame_writer_init(&w, -1, 64 * 1024) == -1)
		return;
	if (metrics_emit(&d->ms, time_now_ns(), &w) == 0)
		out_bytes(d, w.buf, w.len);
	w.len = 0;
	frame_writer_release(&w);
}

static void
on_metrics(uv_timer_t *t)
{
	emit_metrics(t->data);
}

static void wsd_stop(struct wsd *d, const char *why);

/* --- stdin --------------------------------------------------------------- */

static void *
reader_main(void *arg)
{
	struct wsd *d = arg;
	struct frame_reader r;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);	/* signals are the loop's */
	if (frame_reader_init(&r, STDIN_FILENO, d->max_frame) == -1) {
		pthread_mutex_lock(&d->mu);
		d->in_error = 1;
		pthread_mutex_unlock(&d->mu);
		uv_async_send(&d->async);
		return NULL;
	}
	for (;;) {
		const unsigned char *p;
		size_t len, count;
		struct chunk *c;
		int rc = frame_read_run(&r, &p, &len, &count, CHUNK_MAX);

		if (rc == -1 && errno == EINTR)
			continue;
		if (rc <= 0) {
			if (rc == -1)
				log_error("event=read_failed offset=%llu "
				    "error=\"%s\"",
				    (unsigned long long)r.frame_offset,
				    errno == EBADMSG ? "stream ends inside a "
				    "frame" : strerror(errno));
			pthread_mutex_lock(&d->mu);
			d->in_eof = 1;
			d->in_error = rc == -1;
			pthread_mutex_unlock(&d->mu);
			uv_async_send(&d->async);
			break;
		}
		if ((c = malloc(sizeof(*c) + len)) == NULL)
			continue;	/* dropped: lgr-route counts what it sends */
		c->next = NULL;
		c->len = len;
		memcpy(c->data, p, len);
		pthread_mutex_lock(&d->mu);
		while (d->nchunks >= CHUNKS_MAX && !d->stopping)
			pthread_cond_wait(&d->cv, &d->mu);
		*d->chunks_tail = c;
		d->chunks_tail = &c->next;
		d->nchunks++;
		pthread_mutex_unlock(&d->mu);
		uv_async_send(&d->async);
	}
	frame_reader_release(&r);
	return NULL;
}

/* Publish one slice of what the reader handed over, then let the loop
 * run: subscribers write out between slices (their wake-ups are idle
 * callbacks), so a burst fills their sockets and not only their queues. */
static void
input_slice(struct wsd *d)
{
	unsigned n = 0;

	while (d->cur != NULL && n < FLUSH_EVERY) {
		struct chunk *c = d->cur;
		const unsigned char *p = c->data + d->cur_off;

		if (d->cur_off + FRAME_HEADER > c->len) {
			d->cur = c->next;
			d->cur_off = 0;
			free(c);
			continue;
		}
		{
			size_t len = frame_get_len(p);

			if (!d->stopping)
				hub_publish(d->hub, p + FRAME_HEADER, len);
			d->counters[WSD_INGRESS]++;
			d->cur_off += FRAME_HEADER + len;
			n++;
		}
	}
	hub_flush(d->hub);
}

/* Take what the reader has queued, unless a run is still being
 * published. 1 when stdin has ended and all of it was published. */
static int
input_take(struct wsd *d)
{
	int eof;

	pthread_mutex_lock(&d->mu);
	d->cur = d->chunks;
	d->cur_off = 0;
	d->chunks = NULL;
	d->chunks_tail = &d->chunks;
	d->nchunks = 0;
	eof = d->in_eof && d->cur == NULL;
	if (d->in_error)
		d->status = 1;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return eof;
}

static void on_input_idle(uv_idle_t *i);

static void
input_run(struct wsd *d)
{
	if (d->cur == NULL && input_take(d)) {
		uv_idle_stop(&d->in_idle);
		if (!d->stopping)
			wsd_stop(d, "end of input");
		return;
	}
	if (d->cur == NULL) {
		uv_idle_stop(&d->in_idle);
		return;
	}
	input_slice(d);
	/* The next slice, or the next take, on the loop's next turn. */
	uv_idle_start(&d->in_idle, on_input_idle);
}

static void
on_input(uv_async_t *a)
{
	input_run(a->data);
}

static void
on_input_idle(uv_idle_t *i)
{
	input_run(i->data);
}

/* --- start and stop ------------------------------------------------------------ */

/* The hard deadline of a stop: whatever is still open is cut. */
static void
on_stop_timer(uv_timer_t *t)
{
	struct wsd *d = t->data;

	log_warn("event=stop_forced");
	uv_stop(d->loop);
}

/* Once every call has ended the gRPC server goes; the loop then ends by
 * itself when the HTTP side is done too. */
static void
on_done_timer(uv_timer_t *t)
{
	struct wsd *d = t->data;

	if (egress_open() && time_mono_ms() - d->stop_ms < STOP_DRAIN_MS)
		return;
	uv_close((uv_handle_t *)&d->done_timer, NULL);
	if (d->grpc)
		grpc_server_close(d->grpc);	/* cuts calls still open */
	d->grpc = NULL;
	egress_cut_relayed();
}

static void
close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
wsd_stop(struct wsd *d, const char *why)
{
	unsigned grace = d->write_timeout_ms + 1000;

	if (d->stopping)
		return;
	d->stopping = 1;
	d->stop_ms = time_mono_ms();
	log_info("event=stopping reason=\"%s\"", why);
	pthread_mutex_lock(&d->mu);
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (d->up)
		upfeed_free(d->up);	/* no more input is wanted */
	d->up = NULL;
	egress_stop_all(d);
	if (d->grpc)
		grpc_server_drain(d->grpc);
	if (d->http)
		http_stop(d->http);
	d->http = NULL;
	relay_close(d->relay);
	d->relay = NULL;
	/* Our own handles go; what is left is the subscribers' draining. */
	close_handle((uv_handle_t *)&d->sighup);
	close_handle((uv_handle_t *)&d->metrics_timer);
	if (d->hub) {
		close_handle((uv_handle_t *)&d->async);
		close_handle((uv_handle_t *)&d->in_idle);
	}
	uv_unref((uv_handle_t *)&d->sigterm);
	uv_unref((uv_handle_t *)&d->sigint);
	if (d->out_pipe_ok)
		uv_unref((uv_handle_t *)&d->out_pipe);
	uv_timer_start(&d->done_timer, on_done_timer, 0, 50);
	uv_timer_start(&d->stop_timer, on_stop_timer, grace, 0);
	uv_unref((uv_handle_t *)&d->stop_timer);
}

static void
on_term(uv_signal_t *s, int signo)
{
	wsd_stop(s->data, signo == SIGINT ? "SIGINT" : "SIGTERM");
}

static SSL_CTX *
load_grpc_tls(struct wsd *d)
{
	char err[256];
	SSL_CTX *ctx = tls_server_ctx(d->cert, d->key, d->ca, err, sizeof(err));

	if (ctx == NULL)
		log_error("event=tls_failed reason=\"%s\"", err);
	return ctx;
}

static void
on_hup(uv_signal_t *s, int signo)
{
	struct wsd *d = s->data;
	char err[256];

	(void)signo;
	if (d->grpc && d->cert) {
		SSL_CTX *ctx = load_grpc_tls(d);

		if (ctx != NULL) {
			grpc_server_set_ssl(d->grpc, ctx);
			SSL_CTX_free(d->grpc_ssl);
			d->grpc_ssl = ctx;
			log_info("event=reloaded what=grpc_tls");
		}
	}
	if (d->http && http_reload_tls(d->http, err, sizeof(err)) == -1)
		log_error("event=reload_failed what=http_tls reason=\"%s\"",
		    err);
}

/* Split "a,b,c" into list (pointers into s, which is modified). */
static void
add_list(char *s, const char **list, size_t *n, const char *flag)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",",
	    &save)) {
		if (*n == MAX_LIST)
			opt_usage_error("at most %d %s values", MAX_LIST, flag);
		list[(*n)++] = tok;
	}
}

static int
is_loopback(const char *spec)
{
	struct sockaddr_storage ss;
	char err[128];

	if (addr_parse(spec, &ss, err, sizeof(err)) == -1)
		return 0;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >>
		    24) == 127;
	if (ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->
		    sin6_addr);
	return 0;
}

static unsigned
secs_ms(const char *arg, const char *flag, double max)
{
	return (unsigned)(opt_double(arg, flag, 0.001, max) * 1000);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "auth-ca", required_argument, NULL, 1 },
		{ "auth-cert", required_argument, NULL, 2 },
		{ "auth-insecure", no_argument, NULL, 3 },
		{ "auth-key", required_argument, NULL, 4 },
		{ "cache", required_argument, NULL, 5 },
		{ "cc", required_argument, NULL, 6 },
		{ "cookie-domain", required_argument, NULL, 7 },
		{ "grpc", required_argument, NULL, 8 },
		{ "heartbeat", required_argument, NULL, 9 },
		{ "http", required_argument, NULL, 10 },
		{ "http-cert", required_argument, NULL, 11 },
		{ "http-key", required_argument, NULL, 12 },
		{ "max-frame", required_argument, NULL, 13 },
		{ "max-subscriptions", required_argument, NULL, 14 },
		{ "metrics-interval", required_argument, NULL, 15 },
		{ "no-auth", no_argument, NULL, 16 },
		{ "notify-fd", required_argument, NULL, 17 },
		{ "ping-interval", required_argument, NULL, 18 },
		{ "pong-timeout", required_argument, NULL, 19 },
		{ "relay", required_argument, NULL, 20 },
		{ "slow-consumer-timeout", required_argument, NULL, 21 },
		{ "source-id", required_argument, NULL, 22 },
		{ "stream-timeout", required_argument, NULL, 23 },
		{ "subscriber-buffer", required_argument, NULL, 24 },
		{ "subscriber-bytes", required_argument, NULL, 25 },
		{ "tls-ca", required_argument, NULL, 26 },
		{ "tls-cert", required_argument, NULL, 27 },
		{ "tls-key", required_argument, NULL, 28 },
		{ "uaa", required_argument, NULL, 29 },
		{ "uaa-client", required_argument, NULL, 30 },
		{ "uaa-secret", required_argument, NULL, 31 },
		{ "upstream", required_argument, NULL, 32 },
		{ "upstream-ca", required_argument, NULL, 33 },
		{ "upstream-cert", required_argument, NULL, 34 },
		{ "upstream-key", required_argument, NULL, 35 },
		{ "upstream-name", required_argument, NULL, 36 },
		{ "write-timeout", required_argument, NULL, 37 },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	struct wsd *d = &wsd;
	struct http_opts ho = { 0 };
	struct auth_opts ao = { .uaa_client = "doppler", .uaa_secret = "" };
	struct grpc_limits lim = {
		.max_message = 10 << 20,
		.max_streams = 1000,
		.max_conns = 500,
		.idle_ms = 600 * 1000,
		.buffer_budget = 64 << 20,
	};
	const char *upstream[MAX_LIST], *caches[MAX_LIST];
	size_t nup = 0, ncaches = 0;
	const char *grpc_addr = NULL, *relay_path = NULL, *source_id = "lgr-ws";
	const char *up_ca = NULL, *up_cert = NULL, *up_key = NULL;
	const char *up_name = "doppler";
	int c, no_auth = 0, notify_fd = -1;
	char err[256];

	opt_init(&prog);
	d->sub_buffer = 1000;
	d->sub_bytes = 4 << 20;
	d->max_subs = 2000;
	d->max_frame = FRAME_MAX_DEFAULT;
	d->interval_ms = 60 * 1000;
	d->write_timeout_ms = 6000;
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 1: ao.ca_file = optarg; break;
		case 2: ao.cert_file = optarg; break;
		case 3: ao.insecure = 1; break;
		case 4: ao.key_file = optarg; break;
		case 5: add_list(optarg, caches, &ncaches, "--cache"); break;
		case 6: ao.cc_url = optarg; break;
		case 7: ho.cookie_domain = optarg; break;
		case 8: grpc_addr = optarg; break;
		case 9: ho.heartbeat_ms = secs_ms(optarg, "--heartbeat", 3600); break;
		case 10: ho.addr = optarg; break;
		case 11: ho.cert_file = optarg; break;
		case 12: ho.key_file = optarg; break;
		case 13:
			d->max_frame = opt_u64(optarg, "--max-frame", 16,
			    FRAME_MAX_LIMIT);
			break;
		case 14:
			d->max_subs = opt_u64(optarg, "--max-subscriptions", 1,
			    1000000);
			break;
		case 15:
			d->interval_ms = (int64_t)(opt_double(optarg,
			    "--metrics-interval", 0, 86400) * 1000);
			break;
		case 16: no_auth = 1; break;
		case 17:
			notify_fd = (int)opt_u64(optarg, "--notify-fd", 3, 1023);
			break;
		case 18:
			ho.ping_ms = secs_ms(optarg, "--ping-interval", 3600);
			break;
		case 19:
			ho.pong_timeout_ms = secs_ms(optarg, "--pong-timeout",
			    3600);
			break;
		case 20: relay_path = optarg; break;
		case 21:
			ho.slow_ms = secs_ms(optarg, "--slow-consumer-timeout",
			    3600);
			break;
		case 22: source_id = optarg; break;
		case 23:
			ho.stream_max_ms = secs_ms(optarg, "--stream-timeout",
			    86400);
			break;
		case 24:
			d->sub_buffer = opt_u64(optarg, "--subscriber-buffer", 1,
			    10000000);
			break;
		case 25:
			d->sub_bytes = opt_u64(optarg, "--subscriber-bytes", 4096,
			    (uint64_t)1 << 32);
			break;
		case 26: d->ca = optarg; break;
		case 27: d->cert = optarg; break;
		case 28: d->key = optarg; break;
		case 29: ao.uaa_url = optarg; break;
		case 30: ao.uaa_client = optarg; break;
		case 31: ao.uaa_secret = optarg; break;
		case 32: add_list(optarg, upstream, &nup, "--upstream"); break;
		case 33: up_ca = optarg; break;
		case 34: up_cert = optarg; break;
		case 35: up_key = optarg; break;
		case 36: up_name = optarg; break;
		case 37:
			ho.write_timeout_ms = d->write_timeout_ms = secs_ms(optarg,
			    "--write-timeout", 3600);
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	if (!grpc_addr && !relay_path && !ho.addr)
		opt_usage_error("nothing to serve: give --grpc, --relay or --http");
	if ((d->cert == NULL) != (d->key == NULL))
		opt_usage_error("--tls-cert and --tls-key go together");
	if (d->ca && !d->cert)
		opt_usage_error("--tls-ca needs --tls-cert and --tls-key");
	if ((ho.cert_file == NULL) != (ho.key_file == NULL))
		opt_usage_error("--http-cert and --http-key go together");
	if ((up_cert == NULL) != (up_key == NULL))
		opt_usage_error("--upstream-cert and --upstream-key go together");
	if (relay_path && nup)
		opt_usage_error("--relay serves a doppler's own envelopes; "
		    "it does not go with --upstream");
	if (ho.addr) {
		if (no_auth && !is_loopback(ho.addr))
			opt_usage_error("--no-auth needs a loopback --http address "
			    "(127.0.0.0/8 or [::1]), not %s", ho.addr);
		if (!no_auth && (ao.uaa_url == NULL || ao.cc_url == NULL))
			opt_usage_error("--http needs --uaa and --cc, or --no-auth "
			    "on a loopback address");
	}
	if (notify_fd != -1 && fcntl(notify_fd, F_GETFD) == -1)
		opt_usage_error("--notify-fd %d is not open", notify_fd);
	if (d->sub_bytes < 2 * d->max_frame + 16)
		d->sub_bytes = 2 * d->max_frame + 16;
	{
		struct sockaddr_storage ss;
		size_t i;

		if (grpc_addr && addr_parse(grpc_addr, &ss, err, sizeof(err)) == -1)
			opt_usage_error("--grpc: %s", err);
		if (ho.addr && addr_parse(ho.addr, &ss, err, sizeof(err)) == -1)
			opt_usage_error("--http: %s", err);
		for (i = 0; i < nup; i++)
			if (strrchr(upstream[i], ':') == NULL)
				opt_usage_error("--upstream %s: not HOST:PORT",
				    upstream[i]);
	}

	signal(SIGPIPE, SIG_IGN);
	/* Authorization calls run on libuv's worker threads; a hanging UAA
	 * must not hold every one of the default four. */
	setenv("UV_THREADPOOL_SIZE", "16", 0);
	d->loop = uv_default_loop();
	metrics_init(&d->ms, source_id, prog.name);
	{
		static const struct { const char *n, *k, *v; } mdef[] = {
			[WSD_INGRESS] = { "ingress", NULL, NULL },
			[WSD_EGRESS_FIREHOSE] = { "egress", "endpoint", "firehose" },
			[WSD_EGRESS_STREAM] = { "egress", "endpoint", "stream" },
			[WSD_EGRESS_V2] = { "egress", "endpoint", "v2" },
			[WSD_EGRESS_V1GRPC] = { "egress", "endpoint", "v1" },
			[WSD_DROPPED] = { "dropped", "direction", "egress" },
			[WSD_SLOW_CONSUMER] = { "doppler_proxy.slow_consumer",
			    NULL, NULL },
			[WSD_REJECTED] = { "rejected_streams", NULL, NULL },
		};
		int i;

		for (i = 0; i < WSD_NCOUNTERS; i++)
			d->mi[i] = metrics_add(&d->ms, mdef[i].n, mdef[i].k,
			    mdef[i].v);
	}
	if (uv_guess_handle(STDOUT_FILENO) == UV_NAMED_PIPE &&
	    uv_pipe_init(d->loop, &d->out_pipe, 0) == 0 &&
	    uv_pipe_open(&d->out_pipe, STDOUT_FILENO) == 0)
		d->out_pipe_ok = 1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	d->chunks_tail = &d->chunks;

	if (nup) {
		struct upfeed_opts uo = {
			.addrs = upstream,
			.naddrs = nup,
			.server_name = up_name,
		};

		if (up_ca || up_cert) {
			uo.ssl = tls_client_ctx(up_cert, up_key, up_ca, err,
			    sizeof(err));
			if (uo.ssl == NULL) {
				log_error("event=tls_failed what=upstream "
				    "reason=\"%s\"", err);
				return 1;
			}
		}
		if ((d->up = upfeed_new(d, &uo, err, sizeof(err))) == NULL) {
			log_error("event=start_failed reason=\"%s\"", err);
			return 1;
		}
	} else if ((d->hub = hub_new(d)) == NULL) {
		log_error("event=start_failed reason=\"out of memory\"");
		return 1;
	}

	if (grpc_addr) {
		struct sockaddr_storage ss;
		char name[80];

		if (d->cert && (d->grpc_ssl = load_grpc_tls(d)) == NULL)
			return 1;
		addr_parse(grpc_addr, &ss, err, sizeof(err));
		if (grpc_server_listen(d->loop, (struct sockaddr *)&ss,
		    egress_methods, egress_nmethods, &lim, d->grpc_ssl, d,
		    &d->grpc, err, sizeof(err)) == -1) {
			log_error("event=listen_failed proto=grpc addr=%s "
			    "reason=\"%s\"", grpc_addr, err);
			return 1;
		}
		grpc_server_addr(d->grpc, &ss);
		log_info("event=listening proto=grpc addr=%s tls=%s",
		    addr_name(&ss, name, sizeof(name)), d->grpc_ssl == NULL ?
		    "off" : d->ca ? "mtls" : "on");
	}
	if (relay_path) {
		if ((d->relay = relay_listen(d, relay_path, err,
		    sizeof(err))) == NULL) {
			log_error("event=listen_failed proto=relay reason=\"%s\"",
			    err);
			return 1;
		}
		log_info("event=listening proto=relay path=%s", relay_path);
	}
	if (ho.addr) {
		if (!no_auth && auth_new(d->loop, &ao, &ho.auth, err,
		    sizeof(err)) == -1) {
			log_error("event=start_failed what=auth reason=\"%s\"",
			    err);
			return 1;
		}
		ho.caches = caches;
		ho.ncaches = ncaches;
		if (http_start(d, &ho, &d->http, err, sizeof(err)) == -1) {
			log_error("event=listen_failed proto=http addr=%s "
			    "reason=\"%s\"", ho.addr, err);
			return 1;
		}
	}

	uv_signal_init(d->loop, &d->sigterm);
	uv_signal_init(d->loop, &d->sigint);
	uv_signal_init(d->loop, &d->sighup);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	uv_signal_start(&d->sigterm, on_term, SIGTERM);
	uv_signal_start(&d->sigint, on_term, SIGINT);
	uv_signal_start(&d->sighup, on_hup, SIGHUP);
	uv_timer_init(d->loop, &d->stop_timer);
	uv_timer_init(d->loop, &d->done_timer);
	d->done_timer.data = d;
	uv_timer_init(d->loop, &d->metrics_timer);
	d->stop_timer.data = d->metrics_timer.data = d;
	if (d->interval_ms)
		uv_timer_start(&d->metrics_timer, on_metrics, d->interval_ms,
		    d->interval_ms);
	if (d->hub) {
		uv_async_init(d->loop, &d->async, on_input);
		d->async.data = d;
		uv_idle_init(d->loop, &d->in_idle);
		d->in_idle.data = d;
		if (pthread_create(&d->reader, NULL, reader_main, d) != 0) {
			log_error("event=start_failed reason=\"thread\"");
			return 1;
		}
		d->reader_started = 1;
	}
	if (notify_fd != -1) {
		(void)!write(notify_fd, "\n", 1);
		close(notify_fd);
	}
	uv_run(d->loop, UV_RUN_DEFAULT);

	if (d->interval_ms)
		emit_metrics(d);
	/* What is still queued for a stdout pipe goes out now, blocking. */
	if (d->out_pipe_ok) {
		int fl = fcntl(STDOUT_FILENO, F_GETFL);

		if (fl != -1)
			fcntl(STDOUT_FILENO, F_SETFL, fl & ~O_NONBLOCK);
		uv_run(d->loop, UV_RUN_NOWAIT);
	}
	log_info("event=stop ingress=%llu egress_v2=%llu egress_v1=%llu "
	    "egress_firehose=%llu egress_stream=%llu dropped=%llu "
	    "slow_consumers=%llu",
	    (unsigned long long)d->counters[WSD_INGRESS],
	    (unsigned long long)d->counters[WSD_EGRESS_V2],
	    (unsigned long long)d->counters[WSD_EGRESS_V1GRPC],
	    (unsigned long long)d->counters[WSD_EGRESS_FIREHOSE],
	    (unsigned long long)d->counters[WSD_EGRESS_STREAM],
	    (unsigned long long)d->counters[WSD_DROPPED],
	    (unsigned long long)d->counters[WSD_SLOW_CONSUMER]);
	fflush(stderr);
	_exit(d->status);	/* the reader thread may sit in read(2) */
}
