/* arena: a bump allocator for building and decoding envelopes. Everything
 * allocated from it lives until arena_reset or arena_release; nothing is
 * freed one by one. Total size is capped at creation, so a hostile message
 * cannot take more memory than the flag allows.
 *
 * a->pb is a ProtobufCAllocator backed by the arena: pass it to
 * protobuf_c_message_unpack and never call free_unpacked on the result. */
#ifndef LGR_ARENA_H
#define LGR_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;	/* chunk being filled */
	size_t chunk_size;
	size_t total;		/* bytes in all chunks */
	size_t limit;		/* ceiling on total */
	int failed;		/* an allocation failed since the last reset */
	ProtobufCAllocator pb;
};

/* limit is the most the arena may hold in all; 0 or -1 with errno. */
int arena_init(struct arena *a, size_t chunk_size, size_t limit);
void arena_release(struct arena *a);
/* Forget every allocation; keep the first chunk for reuse. */
void arena_reset(struct arena *a);

/* Aligned to 16. NULL with errno ENOMEM past the limit. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
