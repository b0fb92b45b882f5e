/* lgr-route: frames in on stdin, out to sinks. Each sink has a filter
 * read from the frame's bytes, its own ring and its own thread: a sink
 * that cannot keep up drops its own oldest frames, and every other sink
 * still gets everything. Sinks come from --sink and --to, and from a
 * bindings file, one SPEC a line, reloaded on SIGHUP: added sinks start,
 * removed sinks flush and stop, unchanged sinks are not touched.
 *
 * Signals: SIGTERM and SIGINT stop reading; every sink writes what its
 * ring holds (up to --drain-timeout) and the counts go to stderr; exit 0.
 * SIGHUP reloads the bindings file and reopens file: sinks. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "sig.h"
#include "sink.h"
#include "tls.h"

#define MAX_FIXED 64

static const struct opt_prog prog = {
	.name = "lgr-route",
	.usage =
	    "lgr-route [--sink SPEC]... [--to DEST]... [--bindings FILE]\n"
	    "[--sink-buffer N] [--sink-bytes BYTES] [--max-frame BYTES]\n"
	    "[--drain-timeout SECONDS] [--metrics-interval SECONDS]\n"
	    "[--source-id ID] [--tls-cert FILE --tls-key FILE] [--tls-ca FILE]\n"
	    "[--tls-server-name NAME] [--batch-size N] [--batch-interval MS]\n",
	.help =
	    "Copy each frame on stdin to every sink whose filter it passes.\n"
	    "\n"
	    "SPEC is [source_id=ID[,ID...]] [kind=log|counter|gauge|timer|event[,...]]\n"
	    "[tag.NAME=VALUE]... DEST, and DEST is one of file:PATH, fd:N,\n"
	    "exec:COMMAND, unix:PATH, tcp:HOST:PORT, grpc://ADDRS, grpcs://ADDRS.\n"
	    "\n"
	    "  --sink SPEC              a sink; repeatable\n"
	    "  --to DEST                a sink with no filter; repeatable\n"
	    "  --bindings FILE          one SPEC a line (# comments), reloaded on SIGHUP\n"
	    "  --sink-buffer N          frames each sink's ring holds (default 10000)\n"
	    "  --sink-bytes BYTES       bytes each sink's ring holds (default 16777216)\n"
	    "  --max-frame BYTES        longest frame accepted (default 1048576)\n"
	    "  --drain-timeout SECONDS  how long a stopping sink may take (default 5)\n"
	    "  --metrics-interval SECONDS  route self-metrics this often (default 0: off)\n"
	    "  --source-id ID           source_id of self-metrics (default lgr-route)\n"
	    "  --tls-cert FILE, --tls-key FILE  client certificate for grpcs://\n"
	    "  --tls-ca FILE            CA that signs the servers of grpcs://\n"
	    "  --tls-server-name NAME   name grpcs:// servers must have (default doppler)\n"
	    "  --batch-size N           envelopes per gRPC batch (default 100)\n"
	    "  --batch-interval MS      send a partial gRPC batch after MS (default 100)\n"
	    "  -h, --help               print this help\n"
	    "  -V, --version            print the version\n",
};

struct route {
	struct sink_conf conf;
	struct sink *sinks;	/* every running sink */
	struct sink *retiring;	/* removed by a reload, still draining */
	const char *bindings;
	unsigned grace_ms;
	int64_t interval_ms;
	struct metrics metrics;
	int m_ingress;
	uint64_t ingress;
};

static void
route_add(struct route *rt, struct sink *s)
{
	s->next = rt->sinks;
	rt->sinks = s;
	s->metric_egress = metrics_add(&rt->metrics, "egress", "sink", s->spec);
	s->metric_dropped = metrics_add(&rt->metrics, "dropped", "sink",
	    s->spec);
}

/* Read the bindings file into specs (caller frees each and the array).
 * -1 with a reason logged when it cannot be read or a line is bad. */
static int
route_read_bindings(struct route *rt, char ***specs, size_t *n)
{
	char line[8192], err[512];
	FILE *f = fopen(rt->bindings, "r");
	unsigned lineno = 0;
	size_t cap = 0;

	*specs = NULL;
	*n = 0;
	if (f == NULL) {
		log_error("event=bindings_failed file=%s error=\"%s\"",
		    rt->bindings, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *hash;
		struct sink *probe;
		size_t len;

		lineno++;
		if ((hash = strchr(p, '#')) != NULL && (hash == p ||
		    hash[-1] == ' ' || hash[-1] == '\t'))
			*hash = '\0';
		p += strspn(p, " \t\r\n");
		len = strlen(p);
		while (len > 0 && strchr(" \t\r\n", p[len - 1]))
			p[--len] = '\0';
		if (len == 0)
			continue;
		probe = sink_parse(p, &rt->conf, err, sizeof(err));
		if (probe == NULL) {
			log_error("event=bindings_failed file=%s line=%u "
			    "reason=\"%s\"", rt->bindings, lineno, err);
			goto fail;
		}
		sink_free(probe);	/* only checked, never started */
		if (*n == cap) {
			char **more;

			cap = cap ? cap * 2 : 16;
			more = realloc(*specs, cap * sizeof(**specs));
			if (more == NULL)
				goto fail;
			*specs = more;
		}
		if (((*specs)[(*n)++] = strdup(p)) == NULL)
			goto fail;
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	while (*n > 0)
		free((*specs)[--*n]);
	free(*specs);
	*specs = NULL;
	return -1;
}

static int
route_start(struct route *rt, const char *spec, int from_file)
{
	char err[512];
	struct sink *s = sink_parse(spec, &rt->conf, err, sizeof(err));

	if (s == NULL) {
		log_error("event=sink_failed spec=\"%s\" reason=\"%s\"", spec, err);
		return -1;
	}
	s->from_file = from_file;
	if (sink_start(s) == -1) {
		log_error("event=sink_failed spec=\"%s\" error=\"%s\"", spec,
		    strerror(errno));
		sink_free(s);
		return -1;
	}
	route_add(rt, s);
	return 0;
}

/* SIGHUP: apply the bindings file. A file that does not read or parse
 * whole changes nothing. */
static void
route_reload(struct route *rt)
{
	struct sink **pp, *s;
	char **specs;
	size_t n, i, added = 0, removed = 0;

	for (s = rt->sinks; s; s = s->next)
		if (s->dest == DEST_FILE)
			atomic_store(&s->reopen, 1);
	if (rt->bindings == NULL)
		return;
	if (route_read_bindings(rt, &specs, &n) == -1) {
		log_warn("event=bindings_kept file=%s", rt->bindings);
		return;
	}
	for (pp = &rt->sinks; (s = *pp) != NULL;) {
		for (i = 0; i < n; i++)
			if (specs[i] && strcmp(specs[i], s->spec) == 0)
				break;
		if (!s->from_file || i < n) {
			if (s->from_file && i < n) {
				free(specs[i]);	/* unchanged: keep running */
				specs[i] = NULL;
			}
			pp = &s->next;
			continue;
		}
		/* It drains on its own thread; the others go on. */
		*pp = s->next;
		sink_begin_stop(s, rt->grace_ms);
		s->next = rt->retiring;
		rt->retiring = s;
		removed++;
	}
	for (i = 0; i < n; i++) {
		if (specs[i] == NULL)
			continue;
		if (route_start(rt, specs[i], 1) == 0)
			added++;
		free(specs[i]);
	}
	free(specs);
	log_info("event=bindings_loaded file=%s added=%zu removed=%zu",
	    rt->bindings, added, removed);
}

/* Free the removed sinks that are done draining; never blocks. */
static void
route_reap(struct route *rt)
{
	struct sink **pp = &rt->retiring, *s;

	while ((s = *pp) != NULL) {
		if (sink_try_finish(s)) {
			*pp = s->next;
			sink_free(s);
		} else {
			pp = &s->next;
		}
	}
}

static void
route_dispatch(struct route *rt, const unsigned char *p, size_t len)
{
	struct sink *s;

	for (s = rt->sinks; s; s = s->next)
		if (sink_match(s, p, len))
			ring_push(&s->ring, p - FRAME_HEADER, len + FRAME_HEADER);
}

static void
route_publish(struct route *rt)
{
	struct sink *s;

	for (s = rt->sinks; s; s = s->next)
		ring_publish(&s->ring);
}

/* Self-metrics are routed like any frame read. */
static void
route_metrics(struct route *rt, struct frame_writer *mw)
{
	const unsigned char *p = mw->buf;
	struct sink *s;

	metrics_set(&rt->metrics, rt->m_ingress, rt->ingress);
	for (s = rt->sinks; s; s = s->next) {
		metrics_set(&rt->metrics, s->metric_egress, sink_egress(s));
		metrics_set(&rt->metrics, s->metric_dropped, sink_dropped(s));
	}
	mw->len = 0;
	if (metrics_emit(&rt->metrics, time_now_ns(), mw) == -1)
		return;
	while (p < mw->buf + mw->len) {
		uint32_t n = frame_get_len(p);

		route_dispatch(rt, p + FRAME_HEADER, n);	/* not ingress */
		p += FRAME_HEADER + n;
	}
	mw->len = 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "batch-interval", required_argument, NULL, 'I' },
		{ "batch-size", required_argument, NULL, 'B' },
		{ "bindings", required_argument, NULL, 'b' },
		{ "drain-timeout", required_argument, NULL, 'd' },
		{ "max-frame", required_argument, NULL, 'm' },
		{ "metrics-interval", required_argument, NULL, 'i' },
		{ "sink", required_argument, NULL, 's' },
		{ "sink-buffer", required_argument, NULL, 'n' },
		{ "sink-bytes", required_argument, NULL, 'z' },
		{ "source-id", required_argument, NULL, 'S' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "tls-server-name", required_argument, NULL, 'N' },
		{ "to", required_argument, NULL, 't' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	static struct route rt;
	char *fixed[MAX_FIXED];
	size_t nfixed = 0, i, min_bytes;
	const char *source_id = "lgr-route";
	struct frame_reader in;
	struct frame_writer mw;
	int c, status = 0, bytes_set = 0;
	int64_t next_metrics = 0;
	struct sink *s;

	opt_init(&prog);
	rt.conf.slots = 10000;
	rt.conf.bytes = 16 << 20;
	rt.conf.max_frame = FRAME_MAX_DEFAULT;
	rt.conf.batch_max = 100;
	rt.conf.flush_ms = 100;
	rt.conf.tls_server_name = "doppler";
	rt.grace_ms = 5000;
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'A':
			rt.conf.tls_ca = optarg;
			break;
		case 'b':
			rt.bindings = optarg;
			break;
		case 'B':
			rt.conf.batch_max = opt_u64(optarg, "--batch-size", 1,
			    100000);
			break;
		case 'c':
			rt.conf.tls_cert = optarg;
			break;
		case 'd':
			rt.grace_ms = (unsigned)(opt_double(optarg,
			    "--drain-timeout", 0, 3600) * 1000);
			break;
		case 'i':
			rt.interval_ms = (int64_t)(opt_double(optarg,
			    "--metrics-interval", 0, 86400) * 1000);
			break;
		case 'I':
			rt.conf.flush_ms = opt_u64(optarg, "--batch-interval", 1,
			    60000);
			break;
		case 'k':
			rt.conf.tls_key = optarg;
			break;
		case 'm':
			rt.conf.max_frame = opt_u64(optarg, "--max-frame", 16,
			    FRAME_MAX_LIMIT);
			break;
		case 'n':
			rt.conf.slots = opt_u64(optarg, "--sink-buffer", 1,
			    100000000);
			break;
		case 'N':
			rt.conf.tls_server_name = optarg;
			break;
		case 's':
		case 't':
			if (nfixed == MAX_FIXED)
				opt_usage_error("at most %d --sink and --to",
				    MAX_FIXED);
			fixed[nfixed++] = optarg;
			break;
		case 'S':
			source_id = optarg;
			break;
		case 'z':
			rt.conf.bytes = opt_u64(optarg, "--sink-bytes", 1024,
			    (uint64_t)1 << 36);
			bytes_set = 1;
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	rt.conf.grace_ms = rt.grace_ms;
	if (nfixed == 0 && rt.bindings == NULL)
		opt_usage_error("no sinks: give --sink, --to or --bindings");
	if ((rt.conf.tls_cert == NULL) != (rt.conf.tls_key == NULL))
		opt_usage_error("--tls-cert and --tls-key go together");
	min_bytes = 2 * (rt.conf.max_frame + FRAME_HEADER);
	if (rt.conf.bytes < min_bytes) {
		if (bytes_set)
			opt_usage_error("--sink-bytes must be at least twice "
			    "--max-frame plus 8 (%zu)", min_bytes);
		rt.conf.bytes = min_bytes;
	}
	/* Check every spec before starting anything. */
	for (i = 0; i < nfixed; i++) {
		char err[512];

		s = sink_parse(fixed[i], &rt.conf, err, sizeof(err));
		if (s == NULL)
			opt_usage_error("%s", err);
		sink_stop(s, 0);
	}

	{
		char err[512];

		/* grpcs:// sinks share one client context. */
		rt.conf.ssl = tls_client_ctx(rt.conf.tls_cert, rt.conf.tls_key,
		    rt.conf.tls_ca, err, sizeof(err));
		if (rt.conf.ssl == NULL) {
			log_error("event=tls_load_failed reason=\"%s\"", err);
			return 1;
		}
	}
	metrics_init(&rt.metrics, source_id, prog.name);
	rt.m_ingress = metrics_add(&rt.metrics, "ingress", NULL, NULL);
	sig_init();
	if (frame_reader_init(&in, STDIN_FILENO, rt.conf.max_frame) == -1 ||
	    frame_writer_init(&mw, -1, 64 * 1024) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	fd_grow_pipe(STDIN_FILENO);
	for (i = 0; i < nfixed; i++)
		if (route_start(&rt, fixed[i], 0) == -1)
			return 1;
	if (rt.bindings) {
		char **specs;
		size_t n;

		if (route_read_bindings(&rt, &specs, &n) == -1)
			return 1;
		for (i = 0; i < n; i++) {
			if (route_start(&rt, specs[i], 1) == -1)
				return 1;
			free(specs[i]);
		}
		free(specs);
	}
	if (rt.interval_ms)
		next_metrics = time_mono_ms() + rt.interval_ms;

	for (;;) {
		const unsigned char *p;
		size_t len;
		int rc;

		if (!frame_reader_ready(&in)) {
			route_publish(&rt);
			if (rt.interval_ms && time_mono_ms() >= next_metrics) {
				route_metrics(&rt, &mw);
				route_publish(&rt);
				next_metrics = time_mono_ms() + rt.interval_ms;
			}
		}
		if (!frame_reader_ready(&in)) {
			/* Signals are flags: look before every read, so a
			 * steady input cannot hide them. */
			if (sig_term()) {
				log_info("event=signal signal=TERM action=stop");
				break;
			}
			if (sig_hup_take())
				route_reload(&rt);
			route_reap(&rt);
			/* With self-metrics on, wait for input no longer
			 * than the next round is due. */
			if (rt.interval_ms) {
				struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
				int64_t wait = next_metrics - time_mono_ms();

				if (wait > 0 && poll(&pfd, 1, (int)wait) <= 0)
					continue;
			}
		}
		rc = frame_read(&in, &p, &len);
		if (rc == 1) {
			rt.ingress++;
			route_dispatch(&rt, p, len);
			continue;
		}
		if (rc == 0)
			break;
		if (errno == EINTR) {
			if (sig_term()) {
				log_info("event=signal signal=TERM action=stop");
				break;
			}
			if (sig_hup_take())
				route_reload(&rt);
			continue;
		}
		if (errno == EBADMSG)
			log_error("event=truncated_frame offset=%llu",
			    (unsigned long long)in.frame_offset);
		else
			log_error("event=read_failed error=\"%s\"", strerror(errno));
		status = 1;
		break;
	}
	route_publish(&rt);
	/* Every sink drains at once; then each gets what is left of its
	 * grace. */
	for (s = rt.sinks; s; s = s->next)
		sink_begin_stop(s, rt.grace_ms);
	while ((s = rt.sinks) != NULL) {
		rt.sinks = s->next;
		sink_stop(s, rt.grace_ms);
		sink_free(s);
	}
	while ((s = rt.retiring) != NULL) {
		rt.retiring = s->next;
		sink_stop(s, rt.grace_ms);
		sink_free(s);
	}
	log_info("event=stop ingress=%llu oversized=%llu",
	    (unsigned long long)rt.ingress, (unsigned long long)in.oversized);
	frame_reader_release(&in);
	frame_writer_release(&mw);
	return status;
}
