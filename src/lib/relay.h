/* relay: how lgr-recv hands a doppler's egress calls to lgr-ws, so one
 * gRPC port (8082) serves ingress and egress as a real doppler's does.
 *
 * lgr-recv owns the port and terminates HTTP/2 and TLS. For a call on one
 * of the egress paths (RELAY_PATHS) it opens a unix stream connection to
 * lgr-ws's relay socket, one per call, and the two speak frames (4-byte
 * big-endian length, then the bytes; see frame.h):
 *
 *   lgr-recv -> lgr-ws:  frame(path) frame(request message); then nothing
 *                        (closing the connection cancels the call)
 *   lgr-ws -> lgr-recv:  frame("STATUS MESSAGE") where STATUS is a gRPC
 *                        status in decimal: "0 " accepts the call, any
 *                        other ends it with that status and message;
 *                        then, once accepted, one frame per response
 *                        message, as the gRPC client must receive it;
 *                        the connection's end ends the call with OK
 *                        (after a final frame("STATUS MESSAGE") when
 *                        lgr-ws ends it with an error: a frame whose
 *                        first byte is 0xff followed by that text).
 *
 * Flow control is the socket's: lgr-recv stops reading while its HTTP/2
 * side is full, lgr-ws's per-subscriber queue then drops its oldest. */
#ifndef LGR_RELAY_H
#define LGR_RELAY_H

#define RELAY_V2_RECEIVER	"/loggregator.v2.Egress/Receiver"
#define RELAY_V2_BATCHED	"/loggregator.v2.Egress/BatchedReceiver"
#define RELAY_V1_SUBSCRIBE	"/plumbing.Doppler/Subscribe"
#define RELAY_V1_BATCH		"/plumbing.Doppler/BatchSubscribe"
#define RELAY_END_MARK		0xff	/* first byte of a late status frame */
#define RELAY_MAX_PATH		128

#endif
