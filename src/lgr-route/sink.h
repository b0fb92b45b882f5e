/* sink: one destination of lgr-route, with its own filter, its own ring
 * and its own thread, so a slow destination drops its own oldest frames
 * and never slows the others.
 *
 *   SPEC = [source_id=ID[,ID...]] [kind=KIND[,KIND...]] [tag.NAME=VALUE]... DEST
 *   DEST = file:PATH | fd:N | exec:COMMAND | unix:PATH | tcp:HOST:PORT
 *        | grpc://ADDRS | grpcs://ADDRS
 *
 * DEST starts at the first word holding ':' and runs to the end. */
#ifndef LGR_SINK_H
#define LGR_SINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "grpccli.h"
#include "ring.h"

#define SINK_MAX_IDS 32
#define SINK_MAX_TAGS 8

enum sink_dest {
	DEST_FILE, DEST_FD, DEST_EXEC, DEST_UNIX, DEST_TCP, DEST_GRPC,
	DEST_GRPCS,
};

struct sink_filter {
	const char *ids[SINK_MAX_IDS];	/* point into spec_copy */
	size_t id_len[SINK_MAX_IDS];
	size_t nids;
	unsigned kinds;		/* bit per v2 oneof field number; 0: any */
	const char *tag_key[SINK_MAX_TAGS], *tag_val[SINK_MAX_TAGS];
	size_t tag_klen[SINK_MAX_TAGS], tag_vlen[SINK_MAX_TAGS];
	size_t ntags;
};

/* Settings every sink shares, owned by main. */
struct sink_conf {
	size_t slots;		/* --sink-buffer */
	size_t bytes;		/* ring bytes */
	size_t max_frame;
	const char *tls_cert, *tls_key, *tls_ca, *tls_server_name;
	size_t batch_max;
	unsigned flush_ms;
	SSL_CTX *ssl;		/* grpcs:// client context */
	unsigned grace_ms;	/* --drain-timeout */
};

struct sink {
	char *spec;		/* as given: its identity across reloads */
	char *spec_copy;	/* parsed in place */
	struct sink_filter f;
	enum sink_dest dest;
	const char *target;	/* after the scheme */
	const struct sink_conf *conf;
	struct ring ring;
	pthread_t thread;
	int started;
	int from_file;		/* from --bindings: reloadable */
	int stop_begun;
	struct timespec deadline;	/* of the stop's grace */
	char *name;		/* DEST as a log field value */
	_Atomic int reopen;	/* file: reopen at the next chance */
	_Atomic int stopping;
	_Atomic uint64_t egress;	/* frames handed to the destination */
	_Atomic uint64_t lost;	/* frames lost on a failing destination */
	struct grpccli_stats gstats;	/* grpc:// and grpcs:// */
	struct grpccli_stats *grpc;	/* &gstats once it runs */
	pid_t child;		/* exec: */
	_Atomic int fd;		/* the destination's fd, -1 when closed */
	int metric_egress, metric_dropped;
	struct sink *next;
};

/* Parse SPEC into a new sink (not started). NULL with a one-line reason
 * in err. */
struct sink *sink_parse(const char *spec, const struct sink_conf *conf,
    char *err, size_t errlen);
/* 1 when the envelope (bytes of a frame) passes s's filter. */
int sink_match(const struct sink *s, const uint8_t *env, size_t len);
/* Start the sink's ring and thread. 0, or -1 with errno. */
int sink_start(struct sink *s);
/* Close the ring and let the thread write what it holds, for grace_ms
 * at most; returns at once. */
void sink_begin_stop(struct sink *s, unsigned grace_ms);
/* 1 when a stopping sink's thread is done (or was cut off, its grace
 * over), its counts logged; 0 while it still drains. Never blocks. */
int sink_try_finish(struct sink *s);
/* sink_begin_stop, then wait out the grace and cut off the destination
 * (kill the child, cancel the thread) if it has not taken everything. */
void sink_stop(struct sink *s, unsigned grace_ms);
void sink_free(struct sink *s);
/* Frames written to the destination so far. */
uint64_t sink_egress(struct sink *s);
/* Frames dropped so far: by the ring plus lost at the destination. */
uint64_t sink_dropped(struct sink *s);

#endif
