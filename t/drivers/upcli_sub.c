/* upcli_sub: the test driver of lib/upcli. Subscribes to PATH on every
 * ADDR with the request given in hex, and writes each response message
 * to stdout as a frame (4-byte big-endian length, then the bytes). Exits
 * 0 after --count messages in all, 1 at --timeout-ms, and then says on
 * stderr:
 *
 *   upcli_sub: level=info event=stop messages=N bytes=N connects=N
 *       disconnects=N connect_failures=N stream_failures=N ...
 *
 * Each state change of a stream is a line event=state sub=N
 * addr_index=N up=0|1 why="...". With --subs N it holds N subscriptions
 * at once; the one that brings the last message cancels them all from
 * inside its callback, as lgr-ws may. With --churn N, every N messages
 * one subscription is cancelled and opened anew, from inside a message
 * callback (often its own). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "frame.h"
#include "log.h"
#include "opt.h"
#include "sig.h"
#include "tls.h"
#include "upcli.h"

static const struct opt_prog prog = {
	.name = "upcli_sub",
	.usage = "upcli_sub [--ca FILE --cert FILE --key FILE] [--name NAME]\n"
	    "       --path PATH [--req-hex HEX] --count N --timeout-ms MS\n"
	    "       [--subs N] [--churn N] [--max-message BYTES]\n"
	    "       [--max-buffered BYTES]\n"
	    "       [--backoff-min MS] [--backoff-max MS] [--keepalive-ms MS]\n"
	    "       [--connect-ms MS] ADDR...\n",
	.help =
	    "Subscribe to PATH on every ADDR with lib/upcli; write each\n"
	    "message to stdout as a frame.\n"
	    "\n"
	    "  --ca FILE            TLS, trusting the CA in FILE\n"
	    "  --cert FILE, --key FILE  present this client certificate\n"
	    "  --name NAME          name the server's certificate must carry\n"
	    "  --path PATH          the method, e.g. "
	    "/loggregator.v2.Egress/BatchedReceiver\n"
	    "  --req-hex HEX        the request message (default empty)\n"
	    "  --count N            exit 0 after N messages\n"
	    "  --timeout-ms MS      exit 1 after MS\n"
	    "  --subs N             subscriptions at once (default 1)\n"
	    "  --churn N            renew a subscription every N messages\n"
	    "  the others set upcli's option of that name (0: default)\n",
};

#define MAX_SUBS 1000

struct driver;

/* What each subscription's callbacks get. */
struct sub_tag {
	struct driver *d;
	unsigned n;
};

struct driver {
	uv_loop_t loop;
	uv_timer_t timeout;
	struct upcli *cli;
	struct upcli_stats final;
	struct upsub *subs[MAX_SUBS];
	struct sub_tag tags[MAX_SUBS];
	unsigned nsubs;
	const char *path;
	uint8_t *req;
	size_t reqlen;
	uint64_t churn, churned;
	uint64_t want, got;
	int status;		/* -1 while running */
};

static void on_msg(void *arg, const uint8_t *msg, size_t len);

static void
driver_end(struct driver *d, int status)
{
	unsigned i;

	if (d->status != -1)
		return;
	d->status = status;
	d->final = *upcli_stats(d->cli);
	for (i = 0; i < d->nsubs; i++)
		upsub_cancel(d->subs[i]);
	upcli_close(d->cli);
	uv_close((uv_handle_t *)&d->timeout, NULL);
}

static void on_state(void *arg, size_t addr_index, int up, const char *why);

/* Cancel a subscription and open it again, from inside a callback. */
static void
driver_churn(struct driver *d)
{
	unsigned i = (unsigned)(d->churned++ % d->nsubs);

	upsub_cancel(d->subs[i]);
	d->subs[i] = upcli_subscribe(d->cli, d->path, d->req, d->reqlen,
	    on_msg, on_state, &d->tags[i]);
	if (d->subs[i] == NULL) {
		log_error("event=subscribe_failed error=\"%s\"",
		    strerror(errno));
		driver_end(d, 1);
	}
}

static void
on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct driver *d = ((struct sub_tag *)arg)->d;
	unsigned char hdr[FRAME_HEADER];

	if (d->status != -1) {
		log_error("event=late_message len=%zu", len);
		abort();	/* upcli promised no callback after cancel */
	}
	frame_put_len(hdr, (uint32_t)len);
	if (fd_write_all(STDOUT_FILENO, hdr, sizeof(hdr)) == -1 ||
	    fd_write_all(STDOUT_FILENO, msg, len) == -1) {
		log_error("event=write_failed error=\"%s\"", strerror(errno));
		driver_end(d, 1);
		return;
	}
	if (++d->got >= d->want)
		driver_end(d, 0);
	else if (d->churn != 0 && d->got % d->churn == 0)
		driver_churn(d);
}

static void
on_state(void *arg, size_t addr_index, int up, const char *why)
{
	struct sub_tag *t = arg;
	struct driver *d = t->d;

	if (d->status != -1) {
		log_error("event=late_state");
		abort();
	}
	log_info("event=state sub=%u addr_index=%zu up=%d why=\"%s\"", t->n,
	    addr_index, up, why);
}

static void
on_timeout(uv_timer_t *t)
{
	struct driver *d = t->data;

	log_warn("event=timeout got=%llu want=%llu",
	    (unsigned long long)d->got, (unsigned long long)d->want);
	driver_end(d, 1);
}

static int
hex_decode(const char *s, uint8_t **out, size_t *len)
{
	size_t n = strlen(s), i;
	uint8_t *p;

	if (n % 2 != 0)
		return -1;
	p = malloc(n / 2 + 1);
	if (p == NULL)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1 ||
		    strspn(s + 2 * i, "0123456789abcdefABCDEF") < 2) {
			free(p);
			return -1;
		}
		p[i] = (uint8_t)v;
	}
	*out = p;
	*len = n / 2;
	return 0;
}

static unsigned
ms_arg(const char *a, const char *flag)
{
	return (unsigned)opt_u64(a, flag, 0, 3600000);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "backoff-max", required_argument, NULL, 'B' },
		{ "backoff-min", required_argument, NULL, 'b' },
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "churn", required_argument, NULL, 'u' },
		{ "connect-ms", required_argument, NULL, 'C' },
		{ "count", required_argument, NULL, 'n' },
		{ "keepalive-ms", required_argument, NULL, 'K' },
		{ "key", required_argument, NULL, 'k' },
		{ "max-buffered", required_argument, NULL, 'M' },
		{ "max-message", required_argument, NULL, 'm' },
		{ "name", required_argument, NULL, 'N' },
		{ "path", required_argument, NULL, 'p' },
		{ "req-hex", required_argument, NULL, 'r' },
		{ "subs", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 't' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	const char *ca = NULL, *cert = NULL, *key = NULL, *path = NULL;
	const char *reqhex = "";
	struct upcli_opts o;
	struct driver *d;
	uint8_t *req;
	size_t reqlen;
	unsigned timeout_ms = 0, i;
	char err[256];
	int c, status;

	memset(&o, 0, sizeof(o));
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return 1;
	d->nsubs = 1;
	d->status = -1;
	opt_init(&prog);
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'B':
			o.backoff_max_ms = ms_arg(optarg, "--backoff-max");
			break;
		case 'C':
			o.connect_ms = ms_arg(optarg, "--connect-ms");
			break;
		case 'K':
			o.keepalive_ms = ms_arg(optarg, "--keepalive-ms");
			break;
		case 'M':
			o.max_buffered = opt_u64(optarg, "--max-buffered", 0,
			    (uint64_t)1 << 40);
			break;
		case 'N':
			o.server_name = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 'b':
			o.backoff_min_ms = ms_arg(optarg, "--backoff-min");
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'm':
			o.max_message = opt_u64(optarg, "--max-message", 0,
			    1u << 30);
			break;
		case 'n':
			d->want = opt_u64(optarg, "--count", 1, 1000000000);
			break;
		case 'p':
			path = optarg;
			break;
		case 'r':
			reqhex = optarg;
			break;
		case 's':
			d->nsubs = (unsigned)opt_u64(optarg, "--subs", 1,
			    MAX_SUBS);
			break;
		case 'u':
			d->churn = opt_u64(optarg, "--churn", 0, 1000000000);
			break;
		case 't':
			timeout_ms = ms_arg(optarg, "--timeout-ms");
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (path == NULL)
		opt_usage_error("no --path");
	if (d->want == 0)
		opt_usage_error("no --count");
	if (timeout_ms == 0)
		opt_usage_error("no --timeout-ms");
	if (optind >= argc)
		opt_usage_error("no address given");
	if (hex_decode(reqhex, &req, &reqlen) == -1)
		opt_usage_error("--req-hex: '%s' is not hex", reqhex);
	o.addrs = (const char *const *)argv + optind;
	o.naddrs = argc - optind;
	if (upcli_check(&o, err, sizeof(err)) == -1)
		opt_usage_error("%s", err);
	if (ca != NULL) {
		o.ssl = tls_client_ctx(cert, key, ca, err, sizeof(err));
		if (o.ssl == NULL) {
			log_error("event=tls_failed reason=\"%s\"", err);
			return 1;
		}
	}
	sig_init();
	if (uv_loop_init(&d->loop) != 0 ||
	    upcli_new(&d->loop, &o, &d->cli, err, sizeof(err)) == -1) {
		log_error("event=start_failed reason=\"%s\"", err);
		return 1;
	}
	uv_timer_init(&d->loop, &d->timeout);
	d->timeout.data = d;
	uv_timer_start(&d->timeout, on_timeout, timeout_ms, 0);
	d->path = path;
	d->req = req;
	d->reqlen = reqlen;
	for (i = 0; i < d->nsubs; i++) {
		d->tags[i].d = d;
		d->tags[i].n = i;
		d->subs[i] = upcli_subscribe(d->cli, path, req, reqlen, on_msg,
		    on_state, &d->tags[i]);
		if (d->subs[i] == NULL) {
			log_error("event=subscribe_failed error=\"%s\"",
			    strerror(errno));
			return 1;
		}
	}
	uv_run(&d->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d->loop) != 0) {
		log_error("event=loop_busy");	/* upcli left a handle */
		d->status = 1;
	}
	log_info("event=stop messages=%llu bytes=%llu connects=%llu "
	    "disconnects=%llu connect_failures=%llu stream_failures=%llu "
	    "streams_up=%llu conns_up=%llu",
	    (unsigned long long)d->final.messages,
	    (unsigned long long)d->final.bytes,
	    (unsigned long long)d->final.connects,
	    (unsigned long long)d->final.disconnects,
	    (unsigned long long)d->final.connect_failures,
	    (unsigned long long)d->final.stream_failures,
	    (unsigned long long)d->final.streams_up,
	    (unsigned long long)d->final.conns_up);
	if (o.ssl != NULL)
		SSL_CTX_free(o.ssl);
	status = d->status;
	free(req);
	free(d);
	return status;
}
