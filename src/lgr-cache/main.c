/* lgr-cache: frames in on stdin, kept in memory per source id, answered
 * over HTTP: the newest logs of each source (the traffic controller's
 * recentlogs), the latest container metric of each app instance
 * (containermetrics) and log-cache's read and meta API.
 *
 * Threads: one reads stdin and stores; libmicrohttpd's pool answers
 * requests; the main thread only waits for signals and timers.
 *
 * Signals: SIGTERM and SIGINT stop serving (open requests get a second
 * to finish) and exit 0. SIGHUP reads the TLS certificate and key again.
 * The end of stdin stops the program too: as an exec: sink of lgr-route
 * it sees the end when lgr-route stops. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "store.h"

#define RUN_MAX (256 * 1024)	/* bytes of frames stored under one lock */
#define TICK_MS 1000		/* housekeeping: expiry, retired servers */
#define STOP_GRACE_MS 1000

static const struct opt_prog prog = {
	.name = "lgr-cache",
	.usage = "lgr-cache [--http ADDR] [--recent-logs N] [--recent-envelopes N]\n"
	    "       [--max-sources N] [--max-bytes BYTES] [--metrics-ttl SECONDS]\n"
	    "       [--max-frame BYTES] [--http-threads N] [--max-connections N]\n"
	    "       [--max-response-bytes BYTES] [--idle-timeout SECONDS]\n"
	    "       [--tls-cert FILE --tls-key FILE] [--metrics-interval SECONDS]\n"
	    "       [--source-id ID] [--notify-fd FD]\n",
	.help =
	    "Keep the newest envelopes of each source id from the frames on\n"
	    "stdin and serve them over HTTP: /apps/{id}/recentlogs and\n"
	    "/apps/{id}/containermetrics (multipart v1 envelopes, as the\n"
	    "traffic controller answered), /api/v1/read/{source-id},\n"
	    "/api/v1/meta and /api/v1/info (log-cache's JSON).\n"
	    "\n"
	    "  --http ADDR              listen on ADDR (default :8080)\n"
	    "  --recent-logs N          log envelopes kept per source (default 100)\n"
	    "  --recent-envelopes N     envelopes of other kinds kept per source\n"
	    "                           (default 100)\n"
	    "  --max-sources N          sources kept; past it the least recently\n"
	    "                           written goes (default 100000)\n"
	    "  --max-bytes BYTES        memory the store may take in all\n"
	    "                           (default 268435456)\n"
	    "  --metrics-ttl SECONDS    container metrics older than this are\n"
	    "                           gone (default 120)\n"
	    "  --max-frame BYTES        longest frame accepted (default 1048576)\n"
	    "  --http-threads N         threads answering requests (default 2)\n"
	    "  --max-connections N      open HTTP connections (default 1024)\n"
	    "  --max-response-bytes BYTES  responses being sent, together;\n"
	    "                           past it requests get 503 (default 67108864)\n"
	    "  --idle-timeout SECONDS   close idle connections (default 30)\n"
	    "  --tls-cert FILE, --tls-key FILE  serve HTTPS with this certificate\n"
	    "  --metrics-interval SECONDS  write self-metrics to stdout this often\n"
	    "                           (default 0: off)\n"
	    "  --source-id ID           source_id of self-metrics (default lgr-cache)\n"
	    "  --notify-fd FD           write a newline to FD once serving\n"
	    "  -h, --help               print this help\n"
	    "  -V, --version            print the version\n",
};

struct reader {
	struct frame_reader in;
	struct store *store;
	pthread_t main;
	_Atomic uint64_t oversized;
	int status;		/* exit status the reading side asks for */
};

struct cache {
	struct store *store;
	struct api *api;
	struct reader rd;
	struct metrics metrics;
	struct frame_writer out;
	int m_ingress, m_stored, m_evicted, m_evicted_src, m_expired;
	int m_requests, m_busy, m_dropped, m_oversized, m_bytes;
	int64_t interval_ms;
	int metrics_failed;
};

/* The reading thread: frames into the store until the end of stdin. */
static void *
reader_run(void *arg)
{
	struct reader *rd = arg;
	const unsigned char *p;
	size_t len, count;
	int rc;

	for (;;) {
		rc = frame_read_run(&rd->in, &p, &len, &count, RUN_MAX);
		atomic_store_explicit(&rd->oversized, rd->in.oversized,
		    memory_order_relaxed);
		if (rc == 1) {
			store_put_run(rd->store, p, len, count);
			continue;
		}
		if (rc == 0) {
			rd->status = 0;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EBADMSG)
			log_error("event=truncated_frame offset=%" PRIu64,
			    rd->in.frame_offset);
		else
			log_error("event=read_failed error=\"%s\"",
			    strerror(errno));
		rd->status = 1;
		break;
	}
	pthread_kill(rd->main, SIGUSR1);
	return NULL;
}

static void
emit_metrics(struct cache *c)
{
	struct store_counts n;

	if (c->metrics_failed)
		return;
	store_counts(c->store, &n);
	metrics_set(&c->metrics, c->m_ingress, n.ingress);
	metrics_set(&c->metrics, c->m_stored, n.stored);
	metrics_set(&c->metrics, c->m_evicted, n.evicted);
	metrics_set(&c->metrics, c->m_evicted_src, n.evicted_sources);
	metrics_set(&c->metrics, c->m_expired, n.expired);
	metrics_set(&c->metrics, c->m_requests, api_requests(c->api));
	metrics_set(&c->metrics, c->m_busy, api_busy(c->api));
	metrics_set(&c->metrics, c->m_dropped, n.dropped);
	metrics_set(&c->metrics, c->m_oversized,
	    atomic_load(&c->rd.oversized));
	metrics_set(&c->metrics, c->m_bytes, n.bytes);
	if (metrics_emit(&c->metrics, time_now_ns(), &c->out) == -1 ||
	    frame_flush(&c->out) == -1) {
		log_warn("event=metrics_failed error=\"%s\"", strerror(errno));
		c->metrics_failed = 1;
	}
}

static void
metrics_setup(struct cache *c, const char *source_id)
{
	metrics_init(&c->metrics, source_id, prog.name);
	c->m_ingress = metrics_add(&c->metrics, "ingress", NULL, NULL);
	c->m_stored = metrics_add(&c->metrics, "stored", NULL, NULL);
	c->m_evicted = metrics_add(&c->metrics, "evicted", NULL, NULL);
	c->m_evicted_src = metrics_add(&c->metrics, "evicted_sources", NULL,
	    NULL);
	c->m_expired = metrics_add(&c->metrics, "expired", NULL, NULL);
	c->m_requests = metrics_add(&c->metrics, "requests", NULL, NULL);
	c->m_busy = metrics_add(&c->metrics, "dropped", "reason", "busy");
	c->m_dropped = metrics_add(&c->metrics, "dropped", "reason",
	    "invalid");
	c->m_oversized = metrics_add(&c->metrics, "dropped", "reason",
	    "oversized");
	c->m_bytes = metrics_add(&c->metrics, "bytes", NULL, NULL);
}

/* Wait for signals and timers until told to stop; the exit status. */
static int
cache_loop(struct cache *c, const sigset_t *set)
{
	int64_t now, next_tick, next_metrics = 0, wait;
	struct timespec ts;
	char err[256];
	int sig;

	next_tick = time_mono_ms() + TICK_MS;
	if (c->interval_ms)
		next_metrics = time_mono_ms() + c->interval_ms;
	for (;;) {
		now = time_mono_ms();
		if (now >= next_tick) {
			store_expire(c->store, time_now_ns());
			api_tick(c->api);
			next_tick = now + TICK_MS;
		}
		if (c->interval_ms && now >= next_metrics) {
			emit_metrics(c);
			next_metrics = now + c->interval_ms;
		}
		wait = next_tick - now;
		if (c->interval_ms && next_metrics - now < wait)
			wait = next_metrics - now;
		if (wait < 0)
			wait = 0;
		ts.tv_sec = wait / 1000;
		ts.tv_nsec = (wait % 1000) * 1000000;
		sig = sigtimedwait(set, NULL, &ts);
		if (sig == -1)
			continue;	/* EAGAIN: a timer is due; EINTR */
		switch (sig) {
		case SIGHUP:
			if (api_reload_tls(c->api, err, sizeof(err)) == -1)
				log_error("event=tls_reload_failed error=\"%s\"",
				    err);
			else
				log_info("event=sighup action=tls_reload");
			break;
		case SIGUSR1:
			return c->rd.status;	/* the end of stdin */
		default:
			log_info("event=signal signal=%d action=stop", sig);
			return 0;
		}
	}
}

static size_t
size_arg(const char *arg, const char *flag, uint64_t min, uint64_t max)
{
	return (size_t)opt_u64(arg, flag, min, max);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "http", required_argument, NULL, 'a' },
		{ "http-threads", required_argument, NULL, 'T' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "max-bytes", required_argument, NULL, 'b' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "max-frame", required_argument, NULL, 'm' },
		{ "max-response-bytes", required_argument, NULL, 'R' },
		{ "max-sources", required_argument, NULL, 's' },
		{ "metrics-interval", required_argument, NULL, 'i' },
		{ "metrics-ttl", required_argument, NULL, 't' },
		{ "notify-fd", required_argument, NULL, 'n' },
		{ "recent-envelopes", required_argument, NULL, 'e' },
		{ "recent-logs", required_argument, NULL, 'l' },
		{ "source-id", required_argument, NULL, 'S' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	struct store_opts so = {
		.recent_logs = 100, .recent_other = 100,
		.max_sources = 100000, .max_bytes = 256u * 1024 * 1024,
		.ttl_ns = 120 * INT64_C(1000000000),
		.max_frame = FRAME_MAX_DEFAULT,
	};
	struct api_opts ao = {
		.addr = ":8080", .threads = 2, .max_conns = 1024,
		.idle_timeout_s = 30, .max_response_bytes = 64u * 1024 * 1024,
	};
	const char *source_id = "lgr-cache";
	struct store_counts n;
	struct cache c;
	sigset_t set;
	pthread_t reader;
	char err[256];
	int opt, notify_fd = -1, status;
	double ttl;

	memset(&c, 0, sizeof(c));
	opt_init(&prog);
	while ((opt = opt_next(argc, argv, "", longopts)) != -1) {
		switch (opt) {
		case 'a':
			ao.addr = optarg;
			break;
		case 'b':
			so.max_bytes = size_arg(optarg, "--max-bytes", 65536,
			    (uint64_t)1 << 40);
			break;
		case 'c':
			ao.cert_file = optarg;
			break;
		case 'C':
			ao.max_conns = (unsigned)opt_u64(optarg,
			    "--max-connections", 1, 100000);
			break;
		case 'e':
			so.recent_other = size_arg(optarg,
			    "--recent-envelopes", 0, 1000000);
			break;
		case 'i':
			c.interval_ms = (int64_t)(opt_double(optarg,
			    "--metrics-interval", 0, 86400) * 1000);
			break;
		case 'I':
			ao.idle_timeout_s = (unsigned)opt_u64(optarg,
			    "--idle-timeout", 1, 86400);
			break;
		case 'k':
			ao.key_file = optarg;
			break;
		case 'l':
			so.recent_logs = size_arg(optarg, "--recent-logs", 0,
			    1000000);
			break;
		case 'm':
			so.max_frame = size_arg(optarg, "--max-frame", 16,
			    FRAME_MAX_LIMIT);
			break;
		case 'n':
			notify_fd = (int)opt_u64(optarg, "--notify-fd", 3, 1023);
			break;
		case 'R':
			ao.max_response_bytes = size_arg(optarg,
			    "--max-response-bytes", 65536, (uint64_t)1 << 40);
			break;
		case 's':
			so.max_sources = size_arg(optarg, "--max-sources", 1,
			    100000000);
			break;
		case 'S':
			source_id = optarg;
			break;
		case 't':
			ttl = opt_double(optarg, "--metrics-ttl", 0.001,
			    86400 * 365);
			so.ttl_ns = (int64_t)(ttl * 1e9);
			break;
		case 'T':
			ao.threads = (unsigned)opt_u64(optarg,
			    "--http-threads", 1, 64);
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	if ((ao.cert_file == NULL) != (ao.key_file == NULL))
		opt_usage_error("--tls-cert and --tls-key go together");
	if (notify_fd != -1 && fcntl(notify_fd, F_GETFD) == -1)
		opt_usage_error("--notify-fd %d is not open", notify_fd);
	if (ao.max_conns < ao.threads)
		opt_usage_error("--max-connections must be at least "
		    "--http-threads");
	ao.ttl_ns = so.ttl_ns;

	/* Signals go to the main thread's sigtimedwait only: block them
	 * before any thread starts, so every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((c.store = store_new(&so)) == NULL ||
	    frame_reader_init(&c.rd.in, STDIN_FILENO, so.max_frame) == -1 ||
	    frame_writer_init(&c.out, STDOUT_FILENO, 64 * 1024) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	if (api_start(c.store, &ao, &c.api, err, sizeof(err)) == -1) {
		log_error("event=listen_failed error=\"%s\"", err);
		return 1;
	}
	metrics_setup(&c, source_id);
	fd_grow_pipe(STDIN_FILENO);
	c.rd.store = c.store;
	c.rd.main = pthread_self();
	atomic_init(&c.rd.oversized, 0);
	if ((errno = pthread_create(&reader, NULL, reader_run, &c.rd)) != 0) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	log_info("event=listening proto=http addr=%s tls=%s recent_logs=%zu "
	    "recent_envelopes=%zu max_sources=%zu max_bytes=%zu "
	    "metrics_ttl_ms=%" PRId64, api_name(c.api),
	    ao.cert_file != NULL ? "on" : "off", so.recent_logs,
	    so.recent_other, so.max_sources, so.max_bytes,
	    so.ttl_ns / 1000000);
	if (notify_fd != -1) {
		(void)!write(notify_fd, "\n", 1);
		close(notify_fd);
	}

	status = cache_loop(&c, &set);
	api_stop(c.api, STOP_GRACE_MS);
	if (c.interval_ms)
		emit_metrics(&c);
	store_counts(c.store, &n);
	log_info("event=stop ingress=%" PRIu64 " stored=%" PRIu64
	    " evicted=%" PRIu64 " evicted_sources=%" PRIu64 " expired=%"
	    PRIu64 " dropped=%" PRIu64 " oversized=%" PRIu64 " requests=%"
	    PRIu64 " busy=%" PRIu64 " sources=%" PRIu64 " bytes=%" PRIu64,
	    n.ingress, n.stored, n.evicted, n.evicted_sources, n.expired,
	    n.dropped, (uint64_t)atomic_load(&c.rd.oversized),
	    api_requests(c.api), api_busy(c.api), n.sources, n.bytes);
	/* The reader may still be blocked in read(2); exit rather than
	 * join it. The store's memory goes with the process. */
	api_free(c.api);
	frame_writer_release(&c.out);
	return status;
}
