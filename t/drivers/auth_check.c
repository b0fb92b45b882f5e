/* auth_check: the test driver of lib/auth. Asks questions of UAA
 * (admin TOKEN) and Cloud Controller (app TOKEN GUID) through lib/auth
 * and prints each answer on a line of its own, the result word then why:
 *
 *   ok uaa: scope doppler.firehose
 *   unauthorized app id is not a guid
 *
 * The questions are asked in the order given, each after the last answer
 * (--interval MS later); --repeat N asks the whole list N times, so the
 * cache should answer all but the first of each. With --parallel every
 * question is asked at once (identical ones should share one call), and
 * --cancel K then cancels the first K of them: they must never be
 * answered (the driver aborts if one is); with --cancel-next each answer
 * cancels the next asking, from inside the callback. --free-early frees
 * the library while the calls are out, --free-after K from inside the
 * K-th answer: nothing more is printed, and the sanitizers check that
 * nothing leaks or is used after it is freed. Exit 0 once every
 * answer is in and the loop has ended, 1 when lib/auth refuses the
 * options, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "auth.h"
#include "log.h"
#include "opt.h"

#define MAX_ASKS 10000

static const struct opt_prog prog = {
	.name = "auth_check",
	.usage = "auth_check [--uaa URL] [--cc URL] [--client ID] [--secret S]\n"
	    "       [--ca FILE] [--cert FILE] [--key FILE] [--insecure]\n"
	    "       [--timeout MS] [--ttl MS] [--max-entries N]\n"
	    "       [--max-pending N] [--repeat N] [--interval MS]\n"
	    "       [--parallel] [--cancel K] [--cancel-next] [--free-early]\n"
	    "       [--free-after K]\n"
	    "       admin TOKEN | app TOKEN GUID ...\n",
	.help =
	    "Ask UAA whether TOKEN is an admin's, or Cloud Controller whether\n"
	    "TOKEN may read app GUID, through lib/auth; print each answer.\n"
	    "\n"
	    "  --uaa URL, --cc URL       the checkers\n"
	    "  --client ID, --secret S   UAA client (basic auth)\n"
	    "  --ca FILE                 trust this CA (both)\n"
	    "  --cert FILE, --key FILE   client certificate for CC\n"
	    "  --insecure                skip certificate checks\n"
	    "  --timeout MS, --ttl MS, --max-entries N, --max-pending N\n"
	    "                            lib/auth's options (0: default)\n"
	    "  --repeat N                ask the questions N times\n"
	    "  --interval MS             wait MS between an answer and the\n"
	    "                            next question\n"
	    "  --parallel                ask everything at once\n"
	    "  --cancel K                with --parallel: cancel the first K\n"
	    "  --cancel-next             each answer cancels the next asking\n"
	    "  --free-early              free lib/auth before the answers\n"
	    "  --free-after K            free lib/auth in the K-th answer\n",
};

struct question {
	int admin;
	const char *token;
	const char *guid;
};

struct driver;

/* One asking of a question: its callback's arg. */
struct slot {
	struct driver *d;
	int asked;
	int answered;
};

struct driver {
	struct auth *auth;
	int freed;
	struct question *q;
	unsigned long nq;
	unsigned long total;	/* nq times --repeat */
	unsigned long asked;
	unsigned long answered;
	struct slot *slots;	/* one per asking */
	int cancel_next;
	unsigned long free_after;
	uint64_t interval_ms;
	uv_timer_t timer;	/* for --interval */
	int timer_open;
};

static const char *
result_word(enum auth_result r)
{
	switch (r) {
	case AUTH_OK:
		return "ok";
	case AUTH_UNAUTHORIZED:
		return "unauthorized";
	case AUTH_FORBIDDEN:
		return "forbidden";
	case AUTH_ERROR:
		return "error";
	}
	return "bogus";
}

static void
driver_free(struct driver *d)
{
	if (!d->freed)
		auth_free(d->auth);
	d->freed = 1;
	if (d->timer_open)
		uv_close((uv_handle_t *)&d->timer, NULL);
	d->timer_open = 0;
}

static void on_answer(void *arg, enum auth_result r, const char *why);

static void
ask(struct driver *d)
{
	unsigned long i = d->asked++;
	struct question *q = &d->q[i % d->nq];

	d->slots[i].d = d;
	d->slots[i].asked = 1;
	if (q->admin)
		auth_check_admin(d->auth, q->token, on_answer, &d->slots[i]);
	else
		auth_check_app(d->auth, q->token, q->guid, on_answer,
		    &d->slots[i]);
}

static void
on_timer(uv_timer_t *t)
{
	ask(t->data);
}

static void
on_answer(void *arg, enum auth_result r, const char *why)
{
	struct slot *s = arg;
	struct driver *d = s->d;

	if (!s->asked || s->answered) {
		fprintf(stderr, "auth_check: an answer not asked for\n");
		abort();
	}
	s->answered = 1;
	printf("%s %s\n", result_word(r), why != NULL ? why : "");
	fflush(stdout);
	if (d->cancel_next && s + 1 < d->slots + d->asked &&
	    s[1].asked && !s[1].answered) {
		auth_cancel(d->auth, &s[1]);
		s[1].asked = 0;	/* an answer now aborts */
		d->answered++;
	}
	d->answered++;
	if (d->free_after > 0 && d->answered >= d->free_after) {
		driver_free(d);
		return;
	}
	if (d->asked < d->total) {
		if (d->timer_open)
			uv_timer_start(&d->timer, on_timer, d->interval_ms, 0);
		else
			ask(d);
	} else if (d->answered == d->asked) {
		driver_free(d);
	}
}

/* The questions from the operands; exits 2 when they are not ones. */
static void
parse_questions(struct driver *d, int argc, char **argv)
{
	int i = 0;

	if (argc == 0)
		opt_usage_error("no question: admin TOKEN or app TOKEN GUID");
	if ((d->q = calloc(argc, sizeof(*d->q))) == NULL)
		opt_usage_error("out of memory");
	while (i < argc) {
		struct question *q = &d->q[d->nq++];

		if (strcmp(argv[i], "admin") == 0 && i + 1 < argc) {
			q->admin = 1;
			q->token = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "app") == 0 && i + 2 < argc) {
			q->token = argv[i + 1];
			q->guid = argv[i + 2];
			i += 3;
		} else {
			opt_usage_error("bad question at '%s': admin TOKEN or "
			    "app TOKEN GUID", argv[i]);
		}
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "cancel", required_argument, NULL, 'K' },
		{ "cancel-next", no_argument, NULL, 'N' },
		{ "cc", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' },
		{ "client", required_argument, NULL, 'i' },
		{ "free-after", required_argument, NULL, 'f' },
		{ "free-early", no_argument, NULL, 'F' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "interval", required_argument, NULL, 'n' },
		{ "key", required_argument, NULL, 'k' },
		{ "max-entries", required_argument, NULL, 'm' },
		{ "max-pending", required_argument, NULL, 'M' },
		{ "parallel", no_argument, NULL, 'p' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "secret", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "uaa", required_argument, NULL, 'u' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 },
	};
	struct auth_opts o = { 0 };
	struct driver d = { 0 };
	unsigned long cancel = 0, repeat = 1, i;
	int parallel = 0, free_early = 0, c, rc;
	char err[256];
	uv_loop_t loop;

	opt_init(&prog);
	while ((c = opt_next(argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'C':
			o.cc_url = optarg;
			break;
		case 'F':
			free_early = 1;
			break;
		case 'I':
			o.insecure = 1;
			break;
		case 'K':
			cancel = opt_u64(optarg, "--cancel", 0, MAX_ASKS);
			break;
		case 'M':
			o.max_pending = opt_u64(optarg, "--max-pending", 0,
			    100000);
			break;
		case 'N':
			d.cancel_next = 1;
			break;
		case 'T':
			o.ttl_ms = opt_u64(optarg, "--ttl", 0, 3600000);
			break;
		case 'a':
			o.ca_file = optarg;
			break;
		case 'c':
			o.cert_file = optarg;
			break;
		case 'f':
			d.free_after = opt_u64(optarg, "--free-after", 1,
			    MAX_ASKS);
			break;
		case 'i':
			o.uaa_client = optarg;
			break;
		case 'k':
			o.key_file = optarg;
			break;
		case 'm':
			o.max_entries = opt_u64(optarg, "--max-entries", 0,
			    1000000);
			break;
		case 'n':
			d.interval_ms = opt_u64(optarg, "--interval", 1, 60000);
			break;
		case 'p':
			parallel = 1;
			break;
		case 'r':
			repeat = opt_u64(optarg, "--repeat", 1, MAX_ASKS);
			break;
		case 's':
			o.uaa_secret = optarg;
			break;
		case 't':
			o.timeout_ms = opt_u64(optarg, "--timeout", 0, 600000);
			break;
		case 'u':
			o.uaa_url = optarg;
			break;
		}
	}
	parse_questions(&d, argc - optind, argv + optind);
	if (d.nq > MAX_ASKS / repeat)
		opt_usage_error("more than %d questions in all", MAX_ASKS);
	d.total = d.nq * repeat;
	if (cancel > d.total)
		opt_usage_error("--cancel %lu: only %lu questions", cancel,
		    d.total);
	if (cancel > 0 && !parallel)
		opt_usage_error("--cancel needs --parallel");

	if (uv_loop_init(&loop) != 0) {
		fprintf(stderr, "auth_check: uv_loop_init failed\n");
		return 1;
	}
	if ((d.slots = calloc(d.total, sizeof(*d.slots))) == NULL) {
		fprintf(stderr, "auth_check: out of memory\n");
		return 1;
	}
	if (auth_new(&loop, &o, &d.auth, err, sizeof(err)) == -1) {
		log_error("event=auth_new_failed reason=\"%s\"", err);
		free(d.slots);
		free(d.q);
		uv_loop_close(&loop);
		return 1;
	}
	if (d.interval_ms > 0 && !parallel) {
		uv_timer_init(&loop, &d.timer);
		d.timer.data = &d;
		d.timer_open = 1;
	}
	if (parallel) {
		while (d.asked < d.total)
			ask(&d);
		for (i = 0; i < cancel; i++) {
			auth_cancel(d.auth, &d.slots[i]);
			d.slots[i].asked = 0;	/* an answer now aborts */
		}
		d.answered = cancel;
		if (cancel == d.total)
			driver_free(&d);
	} else {
		ask(&d);
	}
	if (free_early)
		driver_free(&d);
	rc = uv_run(&loop, UV_RUN_DEFAULT);
	if (rc != 0 || uv_loop_close(&loop) != 0) {
		fprintf(stderr, "auth_check: the loop did not end cleanly\n");
		return 1;
	}
	free(d.slots);
	free(d.q);
	return 0;
}
