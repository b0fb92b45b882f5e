/* relay: lgr-recv's side of the egress hand-off (see lib/relay.h). Each
 * egress call on lgr-recv's gRPC port gets its own unix connection to
 * lgr-ws's relay socket; frames from lgr-ws become the call's response
 * messages, and the call's end closes the connection.
 *
 * Flow control: while a call holds more than RELAY_HIGH_WATER bytes not
 * yet taken by HTTP/2, its unix connection is not read, so lgr-ws feels a
 * slow client as a full socket and lgr-recv's memory stays bounded. */
#ifndef LGR_RECV_RELAY_H
#define LGR_RECV_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "grpcsrv.h"
#include "../lib/relay.h"	/* the protocol; this file has its name */

#define RELAY_HIGH_WATER (1024 * 1024)

struct relay {
	uv_loop_t *loop;
	const char *sock;	/* lgr-ws's relay socket; borrowed */
	size_t max_message;	/* largest frame taken from lgr-ws */
	uint64_t calls;		/* calls handed to lgr-ws */
	uint64_t unavailable;	/* calls lgr-ws could not be reached for */
	uint64_t messages;	/* response messages relayed */
	unsigned open;		/* calls open now */
};

/* sock and loop are borrowed for the life of the relay. */
void relay_init(struct relay *rl, uv_loop_t *loop, const char *sock,
    size_t max_message);

/* grpc_method hooks. relay_open starts the hand-off of the call on path
 * (one of the RELAY_V* paths) with its request message and returns
 * GRPC_OK, or GRPC_RESOURCE_EXHAUSTED when out of memory; the outcome
 * arrives later through grpc_call_finish. relay_writable and
 * relay_closed take the arg relay_open gave the call. */
int relay_open(struct relay *rl, const char *path, struct grpc_call *call,
    const uint8_t *msg, size_t len, const char **why);
void relay_writable(void *ctx, struct grpc_call *call, void *arg);
void relay_closed(void *ctx, struct grpc_call *call, void *arg);

#endif
