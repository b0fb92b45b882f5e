/* lgr-diode: frames in, frames out, through a ring that never makes its
 * writer wait. A reader thread (main) reads stdin into the ring; a writer
 * thread moves frames from the ring to stdout. When stdout is slower than
 * stdin the ring overwrites its oldest frames and counts them as dropped,
 * so whatever feeds the diode never feels back-pressure.
 *
 * Signals: SIGTERM and SIGINT stop reading, flush what the ring holds and
 * exit 0. SIGHUP is logged; nothing is reloadable. At exit the final
 * counts go to stderr, and ingress always equals egress plus dropped. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "ring.h"
#include "sig.h"

#define OUT_BATCH (256 * 1024)

static const struct opt_prog prog = {
	.name = "lgr-diode",
	.usage = "lgr-diode [--size N] [--bytes BYTES] [--max-frame BYTES]\n"
	    "[--metrics-interval SECONDS] [--source-id ID]\n",
	.help =
	    "Copy frames from stdin to stdout through a ring that never blocks\n"
	    "its writer; when full, the oldest frames are dropped and counted.\n"
	    "\n"
	    "  --size N                   frames the ring holds (default 10000)\n"
	    "  --bytes BYTES              bytes of frame data the ring holds\n"
	    "                             (default 16777216, at least 2 x --max-frame)\n"
	    "  --max-frame BYTES          longest frame accepted; longer ones are\n"
	    "                             skipped and counted (default 1048576)\n"
	    "  --metrics-interval SECONDS emit ingress/egress/dropped counters\n"
	    "                             into the output this often (default 0: off)\n"
	    "  --source-id ID             source_id of those counters (default lgr-diode)\n"
	    "  -h, --help                 print this help\n"
	    "  -V, --version              print the version\n",
};

struct diode {
	struct ring ring;
	struct frame_reader in;
	struct frame_writer out;
	struct metrics metrics;
	int m_ingress, m_egress, m_dropped, m_oversized;
	int64_t interval_ms;	/* 0: no self-metrics */
	size_t run_max;		/* bytes copied into the ring at once */
	uint64_t metric_frames;	/* self-metric frames written out */
	_Atomic int out_failed;
	int out_errno;
};

static int
diode_emit_metrics(struct diode *d)
{
	size_t before;

	/* Flush data first and the counters right after, so egress can be
	 * told apart from self-metric frames at every flush. */
	if (frame_flush(&d->out) == -1)
		return -1;
	metrics_set(&d->metrics, d->m_ingress, ring_ingress(&d->ring));
	metrics_set(&d->metrics, d->m_egress, d->out.flushed - d->metric_frames);
	metrics_set(&d->metrics, d->m_dropped,
	    atomic_load_explicit(&d->ring.dropped, memory_order_relaxed));
	metrics_set(&d->metrics, d->m_oversized, d->in.oversized);
	before = d->out.frames;
	if (metrics_emit(&d->metrics, time_now_ns(), &d->out) == -1 ||
	    frame_flush(&d->out) == -1)
		return -1;
	d->metric_frames += d->out.frames - before;
	return 0;
}

static void *
diode_writer(void *arg)
{
	struct diode *d = arg;
	int64_t next = 0;

	sig_block_here();
	if (d->interval_ms)
		next = time_mono_ms() + d->interval_ms;
	for (;;) {
		int n = ring_pop_into(&d->ring, &d->out, 4096);
		int64_t now = 0;

		if (n == -1)
			goto fail;
		if (d->interval_ms && (now = time_mono_ms()) >= next) {
			if (diode_emit_metrics(d) == -1)
				goto fail;
			next = now + d->interval_ms;
		}
		if (n > 0)
			continue;
		/* Idle: what is batched goes out before we sleep. */
		if (frame_flush(&d->out) == -1)
			goto fail;
		if (ring_wait(&d->ring, d->interval_ms ? (int)(next - now) : -1))
			break;
	}
	if (frame_flush(&d->out) == -1)
		goto fail;
	return NULL;
fail:
	d->out_errno = errno;
	atomic_store(&d->out_failed, 1);
	return NULL;
}

/* Read frames until end of input, a signal, bad input or a dead output.
 * Returns the exit status the reading side asks for. */
static int
diode_read(struct diode *d)
{
	const unsigned char *p;
	size_t len, count;

	for (;;) {
		int rc;

		if (!frame_reader_ready(&d->in))
			ring_publish(&d->ring);
		if (atomic_load_explicit(&d->out_failed, memory_order_relaxed))
			return 1;
		rc = frame_read_run(&d->in, &p, &len, &count, d->run_max);
		if (rc == 1) {
			ring_push_run(&d->ring, p, len, count);
			continue;
		}
		if (rc == 0)
			return 0;
		if (errno == EINTR) {
			if (sig_term())
				return 0;
			if (sig_hup_take())
				log_info("event=sighup action=none");
			continue;
		}
		if (errno == EBADMSG) {
			log_error("event=truncated_frame offset=%llu",
			    (unsigned long long)d->in.frame_offset);
			return 1;
		}
		log_error("event=read_failed error=\"%s\"", strerror(errno));
		return 1;
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "max-frame", required_argument, NULL, 'm' },
		{ "metrics-interval", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "source-id", required_argument, NULL, 'S' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	struct diode d;
	size_t size = 10000, bytes = 16 * 1024 * 1024;
	size_t max_frame = FRAME_MAX_DEFAULT;
	const char *source_id = "lgr-diode";
	int bytes_set = 0, c, status;
	uint64_t ingress, egress;
	pthread_t writer;

	memset(&d, 0, sizeof(d));
	opt_init(&prog);
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'b':
			bytes = opt_u64(optarg, "--bytes", 1024,
			    (uint64_t)1 << 36);
			bytes_set = 1;
			break;
		case 'i':
			d.interval_ms = (int64_t)(opt_double(optarg,
			    "--metrics-interval", 0, 86400) * 1000);
			break;
		case 'm':
			max_frame = opt_u64(optarg, "--max-frame", 16,
			    FRAME_MAX_LIMIT);
			break;
		case 's':
			size = opt_u64(optarg, "--size", 1, 100000000);
			break;
		case 'S':
			source_id = optarg;
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	if (bytes < 2 * (max_frame + FRAME_HEADER)) {
		if (bytes_set)
			opt_usage_error("--bytes must be at least twice "
			    "--max-frame plus 8 (%zu)",
			    2 * (max_frame + FRAME_HEADER));
		bytes = 2 * (max_frame + FRAME_HEADER);
	}

	if (ring_init(&d.ring, size, bytes) == -1 ||
	    frame_reader_init(&d.in, STDIN_FILENO, max_frame) == -1 ||
	    frame_writer_init(&d.out, STDOUT_FILENO,
	    max_frame + FRAME_HEADER > OUT_BATCH ? max_frame + FRAME_HEADER :
	    OUT_BATCH) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	/* A run may be any size up to half the ring; a sixteenth keeps the
	 * ring's oldest frames readable while a run goes in. */
	d.run_max = bytes / 16;
	metrics_init(&d.metrics, source_id, prog.name);
	d.m_ingress = metrics_add(&d.metrics, "ingress", NULL, NULL);
	d.m_egress = metrics_add(&d.metrics, "egress", NULL, NULL);
	d.m_dropped = metrics_add(&d.metrics, "dropped", "direction", "all");
	d.m_oversized = metrics_add(&d.metrics, "dropped", "reason",
	    "oversized");
	fd_grow_pipe(STDIN_FILENO);
	fd_grow_pipe(STDOUT_FILENO);
	sig_init();
	if ((errno = pthread_create(&writer, NULL, diode_writer, &d)) != 0) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}

	status = diode_read(&d);
	ring_publish(&d.ring);
	ring_close(&d.ring);
	pthread_join(writer, NULL);

	if (atomic_load(&d.out_failed)) {
		log_error("event=write_failed error=\"%s\"", strerror(d.out_errno));
		status = 1;
	}
	/* Frames never written out are dropped; say so in the counts. */
	ingress = ring_ingress(&d.ring);
	egress = d.out.flushed - d.metric_frames;
	log_info("event=stop ingress=%llu egress=%llu dropped=%llu "
	    "oversized=%llu", (unsigned long long)ingress,
	    (unsigned long long)egress, (unsigned long long)(ingress - egress),
	    (unsigned long long)d.in.oversized);
	ring_release(&d.ring);
	frame_reader_release(&d.in);
	frame_writer_release(&d.out);
	return status;
}
