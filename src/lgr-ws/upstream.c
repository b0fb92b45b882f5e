/* upstream: the feed of a traffic controller or reverse log proxy. Each
 * subscriber gets its own stream on every upstream doppler (v1
 * BatchSubscribe for v1 subscribers, as the real traffic controller asks;
 * v2 BatchedReceiver for v2 ones, as the reverse log proxy asks), with
 * the subscriber's shard id and filter, so dopplers do the filtering and
 * the sharding; the batches that come back are merged into its queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "log.h"
#include "pbwire.h"
#include "relay.h"
#include "upcli.h"
#include "wsd.h"

struct upfeed {
	struct wsd *d;
	struct upcli *cli;
};

struct upfeed *
upfeed_new(struct wsd *d, const struct upfeed_opts *o, char *err,
    size_t errlen)
{
	struct upcli_opts co = {
		.addrs = o->addrs,
		.naddrs = o->naddrs,
		.ssl = o->ssl,
		.server_name = o->server_name,
	};
	struct upfeed *u = calloc(1, sizeof(*u));

	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->d = d;
	if (upcli_new(d->loop, &co, &u->cli, err, errlen) == -1) {
		free(u);
		return NULL;
	}
	return u;
}

void
upfeed_free(struct upfeed *u)
{
	if (u == NULL)
		return;
	upcli_close(u->cli);
	free(u);
}

/* One batch (EnvelopeBatch or BatchResponse: both repeated field 1) from
 * one upstream. */
static void
on_batch(void *arg, const uint8_t *msg, size_t len)
{
	struct sub *s = arg;
	struct wsd *d = s->d;
	const uint8_t *p = msg, *env;
	size_t n, got = 0;

	while (pb_batch_next(&p, msg + len, &env, &n) == 1) {
		wsd_count(d, WSD_INGRESS, 1);
		got += (size_t)sub_offer(d, s, env, n);
	}
	if (got > 0)
		s->ops->wake(s);
}

static void
on_state(void *arg, size_t i, int up, const char *why)
{
	struct sub *s = arg;

	log_info("event=upstream_%s sub=%s upstream=%zu%s%s%s",
	    up ? "up" : "down", s->name, i, why ? " reason=\"" : "",
	    why ? why : "", why ? "\"" : "");
}

int
upfeed_attach(struct upfeed *u, struct sub *s, const char **why)
{
	uint8_t *req;
	size_t len;
	struct upsub *us;

	if (s->form == SUB_V1)
		req = filter_to_subscription_request(&s->f, &len);
	else
		req = filter_to_egress_request(&s->f, &len);
	if (req == NULL) {
		*why = "out of memory";
		return -1;
	}
	us = upcli_subscribe(u->cli, s->form == SUB_V1 ? RELAY_V1_BATCH :
	    RELAY_V2_BATCHED, req, len, on_batch, on_state, s);
	free(req);
	if (us == NULL) {
		*why = "out of memory";
		return -1;
	}
	s->feed_state = us;
	return 0;
}

void
upfeed_detach(struct upfeed *u, struct sub *s)
{
	(void)u;
	if (s->feed_state != NULL)
		upsub_cancel(s->feed_state);
	s->feed_state = NULL;
}
