/* grpccli_send: the test driver of lib/grpccli. Frames from stdin go into
 * a ring, as lgr-route's sinks get them, and a second thread sends the
 * ring to the addresses given with grpccli_run. At the end of input the
 * ring is closed; when grpccli_run returns, the counts go to stderr:
 *
 *   grpccli_send: level=info event=stop ingress=N egress=N dropped=N
 *       ring_dropped=N batches=N connects=N disconnects=N ...
 *
 * ingress == egress + dropped + ring_dropped always. SIGTERM ends the
 * input as end of file does. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "grpccli.h"
#include "log.h"
#include "opt.h"
#include "ring.h"
#include "sig.h"
#include "tls.h"

static const struct opt_prog prog = {
	.name = "grpccli_send",
	.usage = "grpccli_send [--tls] [--ca FILE] [--cert FILE] [--key FILE]\n"
	    "       [--server-name NAME] [--name NAME] [--batch N]\n"
	    "       [--flush-ms MS] [--backoff-min MS] [--backoff-max MS]\n"
	    "       [--max-message BYTES] [--queue N] [--keepalive-ms MS]\n"
	    "       [--connect-ms MS] [--drain-ms MS] [--size N]\n"
	    "       [--bytes BYTES] ADDR...\n",
	.help =
	    "Send the frames on stdin to ADDR... with lib/grpccli.\n"
	    "\n"
	    "  --tls                TLS, trusting the system's CAs\n"
	    "  --ca FILE            TLS, trusting the CA in FILE\n"
	    "  --cert FILE, --key FILE  present this client certificate\n"
	    "  --server-name NAME   name the server's certificate must carry\n"
	    "  --name NAME          sink=NAME in log lines\n"
	    "  --size N, --bytes BYTES  the ring (default 100000, 67108864)\n"
	    "  the others set grpccli's option of that name (0: default)\n",
};

struct sender {
	struct grpccli_opts o;
	struct grpccli_stats st;
	struct ring ring;
	int rc;
	int err;
};

static void *
sender_run(void *arg)
{
	struct sender *s = arg;

	sig_block_here();
	s->rc = grpccli_run(&s->o, &s->ring, &s->st);
	s->err = errno;
	return NULL;
}

/* Read stdin into the ring until its end or SIGTERM. 0, or 1. */
static int
sender_read(struct sender *s, struct frame_reader *in)
{
	const unsigned char *p;
	size_t len, count;

	for (;;) {
		int rc;

		if (!frame_reader_ready(in))
			ring_publish(&s->ring);
		rc = frame_read_run(in, &p, &len, &count, s->ring.nbytes / 16);
		if (rc == 1) {
			ring_push_run(&s->ring, p, len, count);
			continue;
		}
		if (rc == 0)
			return 0;
		if (errno == EINTR) {
			if (sig_term())
				return 0;
			continue;
		}
		log_error("event=read_failed error=\"%s\"", strerror(errno));
		return 1;
	}
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
		{ "batch", required_argument, NULL, 'n' },
		{ "bytes", required_argument, NULL, 'y' },
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "connect-ms", required_argument, NULL, 'C' },
		{ "drain-ms", required_argument, NULL, 'd' },
		{ "flush-ms", required_argument, NULL, 'f' },
		{ "keepalive-ms", required_argument, NULL, 'K' },
		{ "key", required_argument, NULL, 'k' },
		{ "max-message", required_argument, NULL, 'm' },
		{ "name", required_argument, NULL, 'N' },
		{ "queue", required_argument, NULL, 'q' },
		{ "server-name", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'z' },
		{ "tls", no_argument, NULL, 't' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	const char *ca = NULL, *cert = NULL, *key = NULL;
	size_t size = 100000, bytes = 64u * 1024 * 1024;
	struct frame_reader in;
	struct sender *s;
	char err[256];
	pthread_t th;
	uint64_t ingress, ring_dropped;
	int tls = 0, c, status;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return 1;
	opt_init(&prog);
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'B':
			s->o.backoff_max_ms = ms_arg(optarg, "--backoff-max");
			break;
		case 'C':
			s->o.connect_ms = ms_arg(optarg, "--connect-ms");
			break;
		case 'K':
			s->o.keepalive_ms = ms_arg(optarg, "--keepalive-ms");
			break;
		case 'N':
			s->o.name = optarg;
			break;
		case 'a':
			ca = optarg;
			tls = 1;
			break;
		case 'b':
			s->o.backoff_min_ms = ms_arg(optarg, "--backoff-min");
			break;
		case 'c':
			cert = optarg;
			break;
		case 'd':
			s->o.drain_ms = ms_arg(optarg, "--drain-ms");
			break;
		case 'f':
			s->o.flush_ms = ms_arg(optarg, "--flush-ms");
			break;
		case 'k':
			key = optarg;
			break;
		case 'm':
			s->o.max_message = opt_u64(optarg, "--max-message", 0,
			    1u << 30);
			break;
		case 'n':
			s->o.batch_max = opt_u64(optarg, "--batch", 0, 1000000);
			break;
		case 'q':
			s->o.queue = (unsigned)opt_u64(optarg, "--queue", 0,
			    100000);
			break;
		case 's':
			s->o.server_name = optarg;
			break;
		case 't':
			tls = 1;
			break;
		case 'y':
			bytes = opt_u64(optarg, "--bytes", 1024,
			    (uint64_t)1 << 32);
			break;
		case 'z':
			size = opt_u64(optarg, "--size", 1, 100000000);
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind >= argc)
		opt_usage_error("no address given");
	s->o.addrs = (const char *const *)argv + optind;
	s->o.naddrs = argc - optind;
	if (grpccli_check(&s->o, err, sizeof(err)) == -1)
		opt_usage_error("%s", err);
	if (tls) {
		s->o.ssl = tls_client_ctx(cert, key, ca, err, sizeof(err));
		if (s->o.ssl == NULL) {
			log_error("event=tls_failed reason=\"%s\"", err);
			free(s);
			return 1;
		}
	}
	if (ring_init(&s->ring, size, bytes) == -1 ||
	    frame_reader_init(&in, STDIN_FILENO,
	    bytes / 2 - FRAME_HEADER) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	sig_init();
	if ((errno = pthread_create(&th, NULL, sender_run, s)) != 0) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	status = sender_read(s, &in);
	ring_publish(&s->ring);
	ring_close(&s->ring);
	pthread_join(th, NULL);
	if (s->rc == -1) {
		log_error("event=send_failed error=\"%s\"", strerror(s->err));
		status = 1;
	}
	ingress = ring_ingress(&s->ring);
	ring_dropped = atomic_load(&s->ring.dropped);
	log_info("event=stop ingress=%llu egress=%llu dropped=%llu "
	    "ring_dropped=%llu popped=%llu batches=%llu connects=%llu "
	    "disconnects=%llu connect_failures=%llu stream_failures=%llu",
	    (unsigned long long)ingress,
	    (unsigned long long)atomic_load(&s->st.egress),
	    (unsigned long long)atomic_load(&s->st.dropped),
	    (unsigned long long)ring_dropped,
	    (unsigned long long)atomic_load(&s->st.popped),
	    (unsigned long long)atomic_load(&s->st.batches),
	    (unsigned long long)atomic_load(&s->st.connects),
	    (unsigned long long)atomic_load(&s->st.disconnects),
	    (unsigned long long)atomic_load(&s->st.connect_failures),
	    (unsigned long long)atomic_load(&s->st.stream_failures));
	if (s->o.ssl != NULL)
		SSL_CTX_free(s->o.ssl);
	frame_reader_release(&in);
	ring_release(&s->ring);
	free(s);
	return status;
}
