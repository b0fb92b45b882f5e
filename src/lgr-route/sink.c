/* sink: parse a sink SPEC, match envelopes against its filter, and run
 * the thread that moves its ring's frames to its destination. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "frame.h"
#include "grpccli.h"
#include "opt.h"
#include "log.h"
#include "pbwire.h"
#include "sig.h"
#include "sink.h"

#define SINK_BATCH (256 * 1024)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

extern char **environ;

static char *sink_make_name(const struct sink *s);

static const struct {
	const char *name;
	int field;		/* v2 Envelope oneof field */
} kinds[] = {
	{ "log", PB_ENV_LOG }, { "counter", PB_ENV_COUNTER },
	{ "gauge", PB_ENV_GAUGE }, { "timer", PB_ENV_TIMER },
	{ "event", PB_ENV_EVENT },
};

static int
sink_parse_filter(struct sink *s, char *word, char *err, size_t errlen)
{
	struct sink_filter *f = &s->f;
	char *v, *item, *save;
	size_t i;

	if (strncmp(word, "source_id=", 10) == 0) {
		for (item = strtok_r(word + 10, ",", &save); item;
		    item = strtok_r(NULL, ",", &save)) {
			if (f->nids == SINK_MAX_IDS) {
				snprintf(err, errlen, "at most %d source ids",
				    SINK_MAX_IDS);
				return -1;
			}
			f->ids[f->nids] = item;
			f->id_len[f->nids++] = strlen(item);
		}
		if (f->nids == 0) {
			snprintf(err, errlen, "source_id= wants ID[,ID...]");
			return -1;
		}
		return 0;
	}
	if (strncmp(word, "kind=", 5) == 0) {
		for (item = strtok_r(word + 5, ",", &save); item;
		    item = strtok_r(NULL, ",", &save)) {
			for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
				if (strcmp(item, kinds[i].name) == 0)
					break;
			if (i == sizeof(kinds) / sizeof(kinds[0])) {
				snprintf(err, errlen, "unknown kind '%s' (log, "
				    "counter, gauge, timer, event)", item);
				return -1;
			}
			f->kinds |= 1u << kinds[i].field;
		}
		if (f->kinds == 0) {
			snprintf(err, errlen, "kind= wants KIND[,KIND...]");
			return -1;
		}
		return 0;
	}
	if (strncmp(word, "tag.", 4) == 0 && (v = strchr(word, '=')) != NULL &&
	    v > word + 4) {
		if (f->ntags == SINK_MAX_TAGS) {
			snprintf(err, errlen, "at most %d tag filters",
			    SINK_MAX_TAGS);
			return -1;
		}
		f->tag_key[f->ntags] = word + 4;
		f->tag_klen[f->ntags] = v - word - 4;
		f->tag_val[f->ntags] = v + 1;
		f->tag_vlen[f->ntags++] = strlen(v + 1);
		return 0;
	}
	snprintf(err, errlen, "unknown filter '%s' (source_id=, kind=, "
	    "tag.NAME=)", word);
	return -1;
}

static int
sink_parse_dest(struct sink *s, char *dest, char *err, size_t errlen)
{
	static const struct {
		const char *scheme;
		enum sink_dest d;
	} schemes[] = {
		{ "file:", DEST_FILE }, { "fd:", DEST_FD },
		{ "exec:", DEST_EXEC }, { "unix:", DEST_UNIX },
		{ "tcp:", DEST_TCP }, { "grpc://", DEST_GRPC },
		{ "grpcs://", DEST_GRPCS },
	};
	struct sockaddr_storage ss;
	size_t i, n;
	uint64_t fd;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		n = strlen(schemes[i].scheme);
		if (strncmp(dest, schemes[i].scheme, n) == 0)
			break;
	}
	if (i == sizeof(schemes) / sizeof(schemes[0])) {
		snprintf(err, errlen, "unknown destination '%s' (file:, fd:, "
		    "exec:, unix:, tcp:, grpc://, grpcs://)", dest);
		return -1;
	}
	s->dest = schemes[i].d;
	s->target = dest + n;
	if (*s->target == '\0') {
		snprintf(err, errlen, "'%s' names nothing", dest);
		return -1;
	}
	switch (s->dest) {
	case DEST_FD:
		if (parse_u64(s->target, &fd) == -1 || fd > 1023 ||
		    fcntl((int)fd, F_GETFD) == -1) {
			snprintf(err, errlen, "'%s' is not an open fd", dest);
			return -1;
		}
		break;
	case DEST_TCP:
		if (addr_parse(s->target, &ss, err, errlen) == -1)
			return -1;
		break;
	case DEST_GRPC:
	case DEST_GRPCS: {
		/* HOST:PORT[,HOST:PORT...]; names resolve when connecting. */
		const char *a = s->target;

		for (;;) {
			size_t len = strcspn(a, ",");
			const char *colon = memrchr(a, ':', len);

			if (len == 0 || colon == NULL || colon == a ||
			    colon + 1 == a + len ||
			    strspn(colon + 1, "0123456789") != (size_t)(a + len -
			    colon - 1) || a + len - colon - 1 > 5 ||
			    atoi(colon + 1) > 65535) {
				snprintf(err, errlen, "'%s' is not HOST:PORT"
				    "[,HOST:PORT...]", s->target);
				return -1;
			}
			if (a[len] == '\0')
				break;
			a += len + 1;
		}
		break;
	}
	case DEST_UNIX:
		if (strlen(s->target) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(err, errlen, "unix socket path too long");
			return -1;
		}
		break;
	default:
		break;
	}
	return 0;
}

struct sink *
sink_parse(const char *spec, const struct sink_conf *conf, char *err,
    size_t errlen)
{
	struct sink *s = calloc(1, sizeof(*s));
	char *p, *word, *dest = NULL;

	if (s == NULL || (s->spec = strdup(spec)) == NULL ||
	    (s->spec_copy = strdup(spec)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto fail;
	}
	s->conf = conf;
	p = s->spec_copy;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		word = p;
		p += strcspn(p, " \t");
		if (memchr(word, ':', p - word) != NULL) {
			/* DEST: from here to the end, trailing blanks cut. */
			size_t n = strlen(word);

			while (n > 0 && (word[n - 1] == ' ' || word[n - 1] == '\t'))
				word[--n] = '\0';
			dest = word;
			break;
		}
		if (*p != '\0')
			*p++ = '\0';
		if (sink_parse_filter(s, word, err, errlen) == -1)
			goto fail;
	}
	if (dest == NULL) {
		snprintf(err, errlen, "no destination in '%s'", spec);
		goto fail;
	}
	if (sink_parse_dest(s, dest, err, errlen) == -1)
		goto fail;
	if ((s->name = sink_make_name(s)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto fail;
	}
	return s;
fail:
	if (s) {
		free(s->spec);
		free(s->spec_copy);
		free(s->name);
		free(s);
	}
	return NULL;
}

int
sink_match(const struct sink *s, const uint8_t *env, size_t len)
{
	const struct sink_filter *f = &s->f;
	const char *v;
	size_t i, n;

	if (f->kinds) {
		int k = envelope_peek_kind(env, len);

		if (k <= 0 || !(f->kinds & (1u << k)))
			return 0;
	}
	if (f->nids) {
		int rc = envelope_peek_source_id(env, len, &v, &n);

		if (rc == -1)
			return 0;
		if (rc == 0 || v == NULL)
			n = 0;	/* no source_id: matches only an empty ID */
		for (i = 0; i < f->nids; i++)
			if (f->id_len[i] == n && memcmp(f->ids[i], v, n) == 0)
				break;
		if (i == f->nids)
			return 0;
	}
	for (i = 0; i < f->ntags; i++) {
		if (envelope_peek_tag(env, len, f->tag_key[i], f->tag_klen[i],
		    &v, &n) != 1 || n != f->tag_vlen[i] ||
		    memcmp(v, f->tag_val[i], n) != 0)
			return 0;
	}
	return 1;
}

/* The destination as a log field value, made once at parse time. */
static const char *
sink_name(const struct sink *s)
{
	return s->name;
}

static char *
sink_make_name(const struct sink *s)
{
	static const char *schemes[] = { "file:", "fd:", "exec:", "unix:",
		"tcp:", "grpc://", "grpcs://" };
	size_t n = strlen(schemes[s->dest]) + strlen(s->target) + 1;
	char *buf = malloc(n), *c;

	if (buf == NULL)
		return NULL;
	snprintf(buf, n, "%s%s", schemes[s->dest], s->target);
	for (c = buf; *c; c++)
		if (*c == '"')
			*c = '\'';
	return buf;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int
sink_spawn(struct sink *s)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t mask, dfl;
	char *argv[] = { "sh", "-c", (char *)s->target, NULL };
	int p[2], rc;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	/* Its own process group, so stopping it stops what sh started. */
	/* Its own process group, so stopping it stops what sh started; and
	 * the signals as a fresh program has them, not lgr-route's (SIGPIPE
	 * ignored, the sink thread's mask). */
	sigemptyset(&mask);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &mask);
	posix_spawnattr_setsigdefault(&at, &dfl);
	rc = posix_spawn(&s->child, "/bin/sh", &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (rc != 0) {
		close(p[1]);
		errno = rc;
		return -1;
	}
	log_info("event=exec_started sink=\"%s\" pid=%d", sink_name(s),
	    (int)s->child);
	return p[1];
}

static void
sink_reap(struct sink *s)
{
	int st;

	if (s->child <= 0)
		return;
	if (waitpid(s->child, &st, 0) == s->child) {
		if (WIFEXITED(st))
			log_info("event=exec_exited sink=\"%s\" pid=%d status=%d",
			    sink_name(s), (int)s->child, WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			log_info("event=exec_exited sink=\"%s\" pid=%d signal=%d",
			    sink_name(s), (int)s->child, WTERMSIG(st));
	}
	s->child = 0;
}

static int
sink_connect(struct sink *s)
{
	struct sockaddr_storage ss;
	struct sockaddr_un un;
	char err[256];
	socklen_t len;
	int fd;

	if (s->dest == DEST_UNIX) {
		memset(&un, 0, sizeof(un));
		un.sun_family = AF_UNIX;
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", s->target);
		memcpy(&ss, &un, sizeof(un));
		len = sizeof(un);
	} else {
		if (addr_parse(s->target, &ss, err, sizeof(err)) == -1) {
			errno = EINVAL;
			return -1;
		}
		len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
		    sizeof(struct sockaddr_in);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
sink_open(struct sink *s)
{
	uint64_t n;

	switch (s->dest) {
	case DEST_FILE:
		return open(s->target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0644);
	case DEST_FD:
		parse_u64(s->target, &n);
		return fcntl((int)n, F_DUPFD_CLOEXEC, 3);
	case DEST_EXEC:
		return sink_spawn(s);
	case DEST_UNIX:
	case DEST_TCP:
		return sink_connect(s);
	default:
		errno = ENOTSUP;
		return -1;
	}
}

/* The destination failed: what the batch held is lost, counted. */
static void
sink_fail(struct sink *s, struct frame_writer *w, int *fd, const char *what)
{
	uint64_t lost = w->frames - w->flushed;

	log_warn("event=sink_failed sink=\"%s\" what=%s error=\"%s\" lost=%llu",
	    sink_name(s), what, strerror(errno), (unsigned long long)lost);
	atomic_fetch_add(&s->lost, lost);
	w->len = 0;
	w->frames = w->flushed;
	if (*fd != -1)
		close(*fd);
	*fd = -1;
	atomic_store(&s->fd, -1);
	if (s->dest == DEST_EXEC)
		sink_reap(s);
}

/* grpc:// and grpcs://: lib/grpccli moves the ring to the servers. */
static void
sink_grpc(struct sink *s)
{
	const char *addrs[GRPCCLI_MAX_TARGETS];
	struct grpccli_opts o;
	char *list, *save, *a;
	size_t n = 0;

	memset(&o, 0, sizeof(o));
	list = strdup(s->target);
	if (list == NULL)
		return;
	for (a = strtok_r(list, ",", &save); a && n < GRPCCLI_MAX_TARGETS;
	    a = strtok_r(NULL, ",", &save))
		addrs[n++] = a;
	o.addrs = addrs;
	o.naddrs = n;
	o.ssl = s->dest == DEST_GRPCS ? s->conf->ssl : NULL;
	o.server_name = s->conf->tls_server_name;
	o.name = sink_name(s);
	o.batch_max = s->conf->batch_max;
	o.flush_ms = s->conf->flush_ms;
	o.backoff_min_ms = GRPCCLI_BACKOFF_MIN_MS;
	o.backoff_max_ms = GRPCCLI_BACKOFF_MAX_MS;
	o.max_message = GRPCCLI_MAX_MESSAGE;
	o.queue = GRPCCLI_QUEUE;
	o.keepalive_ms = GRPCCLI_KEEPALIVE_MS;
	o.connect_ms = GRPCCLI_CONNECT_MS;
	/* Leave the client time to give up cleanly inside lgr-route's own
	 * grace, so a dead server never needs the thread cancelled. */
	o.drain_ms = s->conf->grace_ms / 2 < GRPCCLI_DRAIN_MS ?
	    s->conf->grace_ms / 2 : GRPCCLI_DRAIN_MS;
	if (o.drain_ms == 0)
		o.drain_ms = 1;
	s->grpc = &s->gstats;
	grpccli_run(&o, &s->ring, &s->gstats);
	free(list);
}

static void *
sink_thread(void *arg)
{
	struct sink *s = arg;
	struct frame_writer w;
	unsigned backoff = BACKOFF_MIN_MS;
	int fd = -1, opened = 0;
	struct timespec since;	/* when fd was opened */
	size_t cap = s->conf->max_frame + FRAME_HEADER;

	sig_block_here();	/* signals are main's to handle */
	if (s->dest == DEST_GRPC || s->dest == DEST_GRPCS) {
		sink_grpc(s);
		return NULL;
	}
	if (frame_writer_init(&w, -1, cap > SINK_BATCH ? cap : SINK_BATCH) == -1)
		return NULL;
	for (;;) {
		int n;

		if (fd == -1) {
			/* Stopping: one try if it never opened, none after a
			 * failure; what is left is dropped and counted. */
			if (opened && atomic_load(&s->stopping))
				break;
			fd = sink_open(s);
			atomic_store(&s->fd, fd);
			opened = 1;
			if (fd == -1 && atomic_load(&s->stopping))
				break;
			if (fd == -1) {
				log_warn("event=sink_open_failed sink=\"%s\" "
				    "error=\"%s\" retry_ms=%u", sink_name(s),
				    strerror(errno), backoff);
				sleep_ms(backoff);
				backoff = backoff * 2 > BACKOFF_MAX_MS ?
				    BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			w.fd = fd;
			clock_gettime(CLOCK_MONOTONIC, &since);
			if (s->dest == DEST_EXEC || s->dest == DEST_TCP ||
			    s->dest == DEST_UNIX)
				log_info("event=sink_connected sink=\"%s\"",
				    sink_name(s));
		}
		n = ring_pop_into(&s->ring, &w, 4096);
		if (n == -1 || (n == 0 && frame_flush(&w) == -1)) {
			struct timespec now;

			sink_fail(s, &w, &fd, "write");
			/* A destination that fails soon after it opened (a
			 * child that exits at once, a closed pipe) is
			 * retried with backoff, not in a loop. */
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - since.tv_sec >= 2) {
				backoff = BACKOFF_MIN_MS;
			} else if (!atomic_load(&s->stopping)) {
				sleep_ms(backoff);
				backoff = backoff * 2 > BACKOFF_MAX_MS ?
				    BACKOFF_MAX_MS : backoff * 2;
			}
			continue;
		}
		atomic_store(&s->egress, w.flushed);
		if (n > 0)
			continue;
		atomic_store(&s->egress, w.flushed);
		if (atomic_exchange(&s->reopen, 0) && s->dest == DEST_FILE) {
			close(fd);
			fd = -1;
			log_info("event=sink_reopened sink=\"%s\"", sink_name(s));
			continue;
		}
		if (ring_wait(&s->ring, 100))
			break;
	}
	if (fd != -1) {
		atomic_store(&s->fd, -1);
		close(fd);
		if (s->dest == DEST_EXEC)
			sink_reap(s);
	}
	frame_writer_release(&w);
	return NULL;
}

int
sink_start(struct sink *s)
{
	int rc;

	atomic_store(&s->fd, -1);
	if (ring_init(&s->ring, s->conf->slots, s->conf->bytes) == -1)
		return -1;
	rc = pthread_create(&s->thread, NULL, sink_thread, s);
	if (rc != 0) {
		ring_release(&s->ring);
		errno = rc;
		return -1;
	}
	s->started = 1;
	log_info("event=sink_started sink=\"%s\"", sink_name(s));
	return 0;
}

uint64_t
sink_egress(struct sink *s)
{
	return s->grpc ? atomic_load(&s->grpc->egress) : atomic_load(&s->egress);
}

uint64_t
sink_dropped(struct sink *s)
{
	return atomic_load(&s->ring.dropped) + atomic_load(&s->lost) +
	    (s->grpc ? atomic_load(&s->grpc->dropped) : 0);
}

void
sink_begin_stop(struct sink *s, unsigned grace_ms)
{
	if (!s->started || s->stop_begun)
		return;
	s->stop_begun = 1;
	ring_publish(&s->ring);
	atomic_store(&s->stopping, 1);
	ring_close(&s->ring);
	clock_gettime(CLOCK_REALTIME, &s->deadline);
	s->deadline.tv_sec += grace_ms / 1000;
	s->deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000;
	if (s->deadline.tv_nsec >= 1000000000) {
		s->deadline.tv_sec++;
		s->deadline.tv_nsec -= 1000000000;
	}
}

static void
sink_end(struct sink *s)
{
	uint64_t in, out;

	in = ring_ingress(&s->ring);
	out = sink_egress(s);
	/* What never reached the destination is dropped. */
	log_info("event=sink_stopped sink=\"%s\" ingress=%llu egress=%llu "
	    "dropped=%llu", sink_name(s), (unsigned long long)in,
	    (unsigned long long)out, (unsigned long long)(in - out));
	ring_release(&s->ring);
}

int
sink_try_finish(struct sink *s)
{
	struct timespec now;

	if (!s->started)
		return 1;
	if (pthread_tryjoin_np(s->thread, NULL) == 0) {
		sink_end(s);
		s->started = 0;
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec > s->deadline.tv_sec || (now.tv_sec ==
	    s->deadline.tv_sec && now.tv_nsec >= s->deadline.tv_nsec)) {
		sink_stop(s, 0);	/* past its grace: cut it off */
		return 1;
	}
	return 0;
}

void
sink_stop(struct sink *s, unsigned grace_ms)
{
	if (s->started) {
		sink_begin_stop(s, grace_ms);
		if (pthread_timedjoin_np(s->thread, NULL, &s->deadline) != 0) {
			/* Its destination does not take what it holds. */
			log_warn("event=sink_stuck sink=\"%s\" grace_ms=%u",
			    sink_name(s), grace_ms);
			if (s->child > 0)
				kill(-s->child, SIGTERM);
			pthread_cancel(s->thread);
			pthread_join(s->thread, NULL);
			if (atomic_load(&s->fd) != -1)
				close(atomic_load(&s->fd));
			if (s->child > 0) {
				kill(-s->child, SIGKILL);
				sink_reap(s);
			}
		}
		sink_end(s);
		s->started = 0;
	}
}

void
sink_free(struct sink *s)
{
	free(s->spec);
	free(s->spec_copy);
	free(s->name);
	free(s);
}
